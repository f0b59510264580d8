// CUDA kernels of bias_act, bias_act_backward and bias_act_backward2.
//
// Mirrors csrc/cpu/bias_act.cpp: fastgan/bias_act.h plans the call (checks, dense reference, operands, output,
// layout [O][C][S]); this file supplies one element-wise kernel per (Kind, activation, YREF, dtype) and the bias
// gradient. Each thread walks memory offsets with an int64 grid-stride loop; the element at offset i has channel
// (i / S) % C, tracked along the walk without divisions (ChannelWalk, bias_act.h). Operands with inc == 0 (a
// broadcast gradient) are read at index 0, never materialised.
//
// Only the headers below are used on purpose: ATen/cuda/CUDAContext.h pulls in cuBLAS/cuSPARSE/cuSOLVER headers,
// which this file does not need.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <tuple>

#include "fastgan/bias_act.h"

namespace fastgan {
namespace {

enum class Kind { kFwd, kBwd, kBwd2 };

constexpr int kThreads = 256;
constexpr int kVecBytes = 16;  // one 128-bit load/store per operand per vector step

constexpr int num_inputs(Kind k) { return k == Kind::kFwd ? 1 : (k == Kind::kBwd ? 2 : 3); }

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <typename T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

// Kernel arguments, passed by value. in[0..N-1] are the operands (the last is the reference), dense with the
// layout of out when inc[k] == 1, a single value when inc[k] == 0.
template <typename scalar_t>
struct Args {
  using acc_t = at::opmath_type<scalar_t>;
  const scalar_t* in[3];
  int64_t inc[3];
  scalar_t* out;
  const scalar_t* bias;  // C values, or null when the element computation does not add a bias
  int64_t n;             // elements
  int64_t nvec;          // elements [0, nvec * V) go through the vector loop (0 when pointers are not aligned)
  int64_t C, S;          // layout: channel of offset i is (i / S) % C
  acc_t alpha, gain, clamp;
};

template <Kind K, int A, bool YREF, typename acc_t>
__device__ __forceinline__ acc_t elem(const acc_t* v, acc_t bv, acc_t alpha, acc_t gain, acc_t clamp) {
  if constexpr (K == Kind::kFwd) {
    return bias_act_fwd_elem<A>(v[0], bv, alpha, gain, clamp);
  } else if constexpr (K == Kind::kBwd) {
    return bias_act_bwd_elem<A, YREF>(v[0], v[1], bv, alpha, gain, clamp);
  } else {
    return bias_act_bwd2_elem<A, YREF>(v[0], v[1], v[2], bv, alpha, gain, clamp);
  }
}

template <Kind K, int A, bool YREF, typename scalar_t>
__global__ void __launch_bounds__(kThreads) bias_act_kernel(const Args<scalar_t> a) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int N = num_inputs(K);
  constexpr int V = kVecBytes / int(sizeof(scalar_t));
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;

  acc_t bcast[N];  // values of the broadcast (inc == 0) operands
#pragma unroll
  for (int k = 0; k < N; ++k) bcast[k] = a.inc[k] ? acc_t(0) : acc_t(a.in[k][0]);

  // Vector loop: V consecutive elements per step, 16-byte loads and stores.
  ChannelWalk vw(tid * V, stride * V, a.bias ? a.S : 1, a.bias ? a.C : 1);
  for (int64_t vi = tid; vi < a.nvec; vi += stride, vw.advance()) {
    const int64_t i0 = vi * V;
    acc_t x[V][N];
#pragma unroll
    for (int k = 0; k < N; ++k) {
      if (a.inc[k]) {
        const Vec<scalar_t, V> w = *reinterpret_cast<const Vec<scalar_t, V>*>(a.in[k] + i0);
#pragma unroll
        for (int j = 0; j < V; ++j) x[j][k] = acc_t(w.v[j]);
      } else {
#pragma unroll
        for (int j = 0; j < V; ++j) x[j][k] = bcast[k];
      }
    }
    acc_t bv[V];
    if (a.bias) {
      // Channel of i0, then stepped element by element (the V elements may straddle a channel boundary).
      int64_t r = vw.r, c = vw.c;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        bv[j] = acc_t(a.bias[c]);
        if (++r == a.S) {
          r = 0;
          if (++c == a.C) c = 0;
        }
      }
    } else {
#pragma unroll
      for (int j = 0; j < V; ++j) bv[j] = acc_t(0);
    }
    Vec<scalar_t, V> o;
#pragma unroll
    for (int j = 0; j < V; ++j) o.v[j] = scalar_t(elem<K, A, YREF>(x[j], bv[j], a.alpha, a.gain, a.clamp));
    *reinterpret_cast<Vec<scalar_t, V>*>(a.out + i0) = o;
  }

  // Scalar loop: the tail after the vectors, or everything when the pointers are not 16-byte aligned.
  ChannelWalk sw(a.nvec * V + tid, stride, a.bias ? a.S : 1, a.bias ? a.C : 1);
  for (int64_t i = a.nvec * V + tid; i < a.n; i += stride, sw.advance()) {
    acc_t x[N];
#pragma unroll
    for (int k = 0; k < N; ++k) x[k] = a.inc[k] ? acc_t(a.in[k][i]) : bcast[k];
    const acc_t bv = a.bias ? acc_t(a.bias[sw.c]) : acc_t(0);
    a.out[i] = scalar_t(elem<K, A, YREF>(x, bv, a.alpha, a.gain, a.clamp));
  }
}

// The device of an input, for the guard: none for a non-CUDA tensor, so that a tensor on the wrong device is
// reported by the plan's argument checks rather than by the guard.
inline c10::optional<c10::Device> cuda_device_of(const at::Tensor& t) {
  if (t.defined() && t.is_cuda()) return t.device();
  return c10::nullopt;
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % kVecBytes == 0; }

template <Kind K, int A, bool YREF, typename scalar_t>
void launch(const Args<scalar_t>& a, c10::DeviceIndex device) {
  constexpr int V = kVecBytes / int(sizeof(scalar_t));
  int sms = 0, threads_per_sm = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&threads_per_sm, cudaDevAttrMaxThreadsPerMultiProcessor, device));
  // Enough threads for the longer of the two loops, capped at one full wave (the loops are grid-stride).
  const int64_t work = std::max(a.nvec, a.n - a.nvec * V);
  const int64_t max_blocks = int64_t(sms) * std::max(1, threads_per_sm / kThreads);
  const int64_t blocks = std::clamp<int64_t>(ceil_div(work, kThreads), 1, std::max<int64_t>(1, max_blocks));
  bias_act_kernel<K, A, YREF, scalar_t>
      <<<unsigned(blocks), kThreads, 0, at::cuda::getCurrentCUDAStream(device).stream()>>>(a);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// The bias gradient: out summed over every dimension but the bias dimension.
//
// Two passes (the element-wise kernel, then ATen's sum over out viewed as [O, C, S]) rather than a fused reduction:
// the element-wise kernel stays one streaming map that is right for every layout, and the reduction reuses ATen's
// CUDA reduction, which already chooses a good strategy for each shape, from long rows (S large: NCHW, dim=1) to
// C-innermost (S == 1: channels-last, or (N, C) with dim=1), without atomics in this file. The price is one extra
// read of out; the sum is of the stored (rounded) values.
void bias_grad_sum(const at::Tensor& out, const BiasLayout& L, at::Tensor& bias_sum) {
  // out is dense with ref's strides (possibly permuted); what matters is memory order, which is [O][C][S].
  const at::Tensor v = out.as_strided({L.O, L.C, L.S}, {L.C * L.S, L.S, 1});
  const std::array<int64_t, 2> dims{0, 2};
  const auto st = out.scalar_type();
  if (st == at::kHalf || st == at::kBFloat16) {
    bias_sum.copy_(at::sum(v, at::IntArrayRef(dims), /*keepdim=*/false, at::kFloat));  // sum in float, then cast
  } else {
    at::sum_out(bias_sum, v, at::IntArrayRef(dims));  // float in float, double in double
  }
}

// Runs one of the three element computations over a plan; returns (out, bias_sum).
template <Kind K, size_t N>
std::tuple<at::Tensor, at::Tensor> run(BiasActPlan<N>& p) {
  const int64_t numel = p.out.numel();
  if (numel == 0) {
    p.bias_sum.zero_();
    return {p.out, p.bias_sum};
  }
  if (K == Kind::kBwd2 && !kActTable[p.args.act].has_2nd) {  // f'' == 0 (and the clamp mask is flat)
    p.out.zero_();
    p.bias_sum.zero_();
    return {p.out, p.bias_sum};
  }
  const c10::DeviceIndex device = p.out.device().index();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.out.scalar_type(), "fastgan_bias_act_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    constexpr int V = kVecBytes / int(sizeof(scalar_t));
    Args<scalar_t> a{};
    bool aligned = aligned16(p.out.data_ptr());
    for (size_t k = 0; k < 3; ++k) {
      if (k < N) {
        a.in[k] = p.in[k].t.template const_data_ptr<scalar_t>();
        a.inc[k] = p.in[k].inc;
        if (a.inc[k]) aligned = aligned && aligned16(a.in[k]);
      } else {
        a.in[k] = nullptr;
        a.inc[k] = 0;
      }
    }
    a.out = p.out.template data_ptr<scalar_t>();
    a.bias = p.bias.defined() ? p.bias.template const_data_ptr<scalar_t>() : nullptr;
    a.n = numel;
    a.nvec = aligned ? numel / V : 0;
    a.C = p.layout.C;
    a.S = p.layout.S;
    a.alpha = acc_t(p.args.alpha);
    a.gain = acc_t(p.args.gain);
    a.clamp = acc_t(p.args.clamp);
    dispatch_act(p.args.act, [&](auto tag) {
      constexpr int A = decltype(tag)::value;
      // No bwd2 kernels for activations without a second derivative, no YREF kernels without y_ok.
      if constexpr (K != Kind::kBwd2 || kActTable[A].has_2nd) {
        if constexpr (K != Kind::kFwd && kActTable[A].y_ok) {
          if (p.args.ref_is_y) {
            launch<K, A, true, scalar_t>(a, device);
            return;
          }
        }
        launch<K, A, false, scalar_t>(a, device);
      }
    });
  });
  if (p.args.bias_grad) bias_grad_sum(p.out, p.layout, p.bias_sum);
  return {p.out, p.bias_sum};
}

at::Tensor bias_act_cuda(const at::Tensor& x, const c10::optional<at::Tensor>& b, int64_t dim, c10::string_view act,
                         double alpha, double gain, double clamp) {
  const c10::cuda::OptionalCUDAGuard guard(cuda_device_of(x));
  auto p = plan_bias_act<1>({"x"}, {x}, b, dim, std::string(act), alpha, gain, clamp, false, false);
  return std::get<0>(run<Kind::kFwd>(p));
}

std::tuple<at::Tensor, at::Tensor> bias_act_backward_cuda(const at::Tensor& grad, const at::Tensor& ref,
                                                          const c10::optional<at::Tensor>& b, int64_t dim,
                                                          c10::string_view act, double alpha, double gain,
                                                          double clamp, bool ref_is_y, bool bias_grad) {
  const c10::cuda::OptionalCUDAGuard guard(cuda_device_of(ref));
  auto p = plan_bias_act<2>({"grad", "ref"}, {grad, ref}, b, dim, std::string(act), alpha, gain, clamp, ref_is_y,
                            bias_grad);
  return run<Kind::kBwd>(p);
}

std::tuple<at::Tensor, at::Tensor> bias_act_backward2_cuda(const at::Tensor& grad_grad, const at::Tensor& grad,
                                                           const at::Tensor& ref, const c10::optional<at::Tensor>& b,
                                                           int64_t dim, c10::string_view act, double alpha,
                                                           double gain, double clamp, bool ref_is_y,
                                                           bool bias_grad) {
  const c10::cuda::OptionalCUDAGuard guard(cuda_device_of(ref));
  auto p = plan_bias_act<3>({"grad_grad", "grad", "ref"}, {grad_grad, grad, ref}, b, dim, std::string(act), alpha,
                            gain, clamp, ref_is_y, bias_grad);
  return run<Kind::kBwd2>(p);
}

}  // namespace

void bias_act_inplace_cuda(at::Tensor& y, const c10::optional<at::Tensor>& b, int64_t dim, const std::string& act,
                           double alpha, double gain, double clamp) {
  const c10::cuda::OptionalCUDAGuard guard(cuda_device_of(y));
  auto p = plan_bias_act<1>({"y"}, {y}, b, dim, act, alpha, gain, clamp, false, false, /*inplace=*/true);
  run<Kind::kFwd>(p);
}

TORCH_LIBRARY_IMPL(fastgan, CUDA, m) {
  m.impl("bias_act", &bias_act_cuda);
  m.impl("bias_act_backward", &bias_act_backward_cuda);
  m.impl("bias_act_backward2", &bias_act_backward2_cuda);
}

}  // namespace fastgan
