// CUDA kernels of fastgan::minibatch_discrimination, minibatch_discrimination_backward and minibatch_discrimination_backward2 (Salimans et al.
// 2016), without the B x B x K x C tensor. Same semantics, checks and messages as csrc/cpu/minibatch_discrimination.cpp: the
// checks and the per-pair math (|a - b|, exp(-d), the sign terms) are fastgan/minibatch_discrimination.h, shared by both.
//
// One kernel, md_kernel<MODE>, walks "rows a against columns b" for one kernel slice k:
//   e_ij = exp(-sum_c |a_ikc - b_jkc|)
//   MODE 0 (forward)    out[i, k]     = sum_j e_ij
//   MODE 1 (backward)   dout[i, k, c] = -sum_j w_ij e_ij sign(a_ic - b_jc)
//   MODE 2 (2nd order)  u_ij = sum_c sign(a_ic - b_jc) (p_ic - q_jc);  dout[i, k, c] = sum_j w_ij e_ij u_ij sign(...);
//                       dg[i, k] = -sum_j e_ij u_ij (when dg is given)
// with w_ij = ga_i + gb_j (either weight may be absent: 0). The ops are compositions of launches (as in
// kernels/minibatch_discrimination.py): within the batch a = b = m, w = g_i + g_j, p = q = P (each row i walks all j, so it
// gathers both sides of every pair itself: no scatter, no atomics); with a reference batch r, dm is (a, b) = (m, r),
// ga = g [, (p, q) = (P, Q), dg], and dr the same kernel with the roles swapped, (a, b) = (r, m), gb = g
// [, (p, q) = (Q, P): u is unchanged by the swap, both of its factors change sign].
// Within the batch the pair (i, i) is never evaluated (like the CPU, which walks j > i): it contributes exactly 1 to
// the forward unless exclude_self, and 0 to every derivative (sign(0) = 0, u_ii = 0).
//
// Decomposition. Grid (ceil(NA / 16), min(K, 65535)): a CTA of 256 threads owns 16 rows i of one slice k (k loops
// with stride gridDim.y when K > 65535) and streams the other side in tiles of 64 rows j, each (and its own rows)
// staged through shared memory in the compute type, features in chunks of 16 (c-major tiles, C tails masked by the
// chunk width cc; rows past NA / NB are staged as 0 and masked out of every sum). B = 64, K = 50 gives 200 CTAs.
//   Phase A (per tile): thread (ty, tx) = (t / 16, t % 16) accumulates the distances (and u) of the pairs
//     (i0 + ty, j0 + tx + 16 q), q < 4, over all chunks in registers; then e, the row sum (forward / dg: kept per
//     thread over all tiles, reduced over the 16 tx lanes by shuffles once at the end) and, for the derivatives, the
//     pair weights E_ij (-w e or w e u; 0 for masked pairs) into shared memory.
//   Phase B (derivatives): outputs (i, c) of a chunk go 32 at a time to groups of 8 lanes; each lane sums
//     E_ij sign(a_ic - b_jc) over 8 of the 64 columns, the group reduces by shuffles, lane 0 adds the tile's sum to
//     dout (fp32 / fp64): the same thread owns that output for every tile, which it writes at the first tile and
//     updates in tile order after.
// Every sum runs in a fixed order (deterministic, no atomics); fp32 sums for fp16 / bf16, fp64 for fp64; int64 offsets;
// launches on the current stream under a device guard; zero-size calls return without launching (C = 0: every
// pair has e = 1, the forward is a count).
//
// Shared memory per CTA (fp32; twice that for fp64): forward 5.5 KiB, backward 10.3 KiB, second order 15.8 KiB. The
// row stride 72 = 64 + 8 of the (c, j) and (i, j) tiles puts 4 consecutive rows on banks 8 apart: phase B reads them
// without conflicts.
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
#include <cstdint>
#include <limits>
#include <tuple>

#include "fastgan/minibatch_discrimination.h"

namespace fastgan {
namespace {

constexpr int kThreads = 256;
constexpr int kBI = 16;                     // rows a per CTA
constexpr int kBJ = 64;                     // rows b per tile
constexpr int kCC = 16;                     // features per chunk
constexpr int kTX = kThreads / kBI;         // phase A: lanes per row (16), each kJQ columns j = tx + kTX q
constexpr int kJQ = kBJ / kTX;              // 4
constexpr int kLB = 8;                      // phase B: lanes per output (i, c), each kBJ / kLB columns j = l + kLB q
constexpr int kSlots = kThreads / kLB;      // outputs per pass (32)
constexpr int kLd = kBJ + 8;                // row stride of the (c, j) and (i, j) tiles
constexpr int64_t kMaxGridY = 65535;
static_assert(kBI * kTX == kThreads && kBJ % kTX == 0 && kBJ % kLB == 0, "tile shape");
static_assert(kTX <= 32 && 32 % kTX == 0 && 32 % kLB == 0, "shuffle groups must not straddle warps");

__host__ __device__ __forceinline__ int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

template <typename scalar_t>
struct MdArgs {
  using acc_t = at::opmath_type<scalar_t>;
  const scalar_t* a;   // (NA, K, C) contiguous: the rows this launch writes
  const scalar_t* b;   // (NB, K, C) contiguous: the rows it walks
  const scalar_t* p;   // MODE 2: like a
  const scalar_t* q;   // MODE 2: like b
  const scalar_t* ga;  // (NA, K) row weights, or null (0)
  const scalar_t* gb;  // (NB, K) column weights, or null (0)
  scalar_t* out;       // MODE 0: (NA, K)
  acc_t* dout;         // MODE 1, 2: (NA, K, C) in the compute type
  scalar_t* dg;        // MODE 2: (NA, K), or null
  int64_t NA, NB, K, C;
  bool self;  // a and b are the same rows (within the batch): the pair (i, i) is not evaluated
  bool excl;  // MODE 0 within the batch: the pair (i, i) adds 0 instead of 1
};

// Stages rows [r0, r0 + nr) (nr <= ROWS) of src[:, k, c0 : c0 + cc] into S[c][row] in the compute type; rows
// nr..ROWS-1 as 0. Consecutive threads read consecutive features of a row.
template <int ROWS, int LD, typename scalar_t, typename acc_t>
__device__ __forceinline__ void stage(acc_t (*S)[LD], const scalar_t* __restrict__ src, int64_t r0, int nr,
                                      int64_t k, int64_t K, int64_t C, int64_t c0, int cc) {
  for (int idx = threadIdx.x; idx < ROWS * cc; idx += kThreads) {
    const int r = idx / cc, c = idx - r * cc;
    S[c][r] = r < nr ? acc_t(src[((r0 + r) * K + k) * C + c0 + c]) : acc_t(0);
  }
}

template <int MODE, typename scalar_t>
__global__ void __launch_bounds__(kThreads) md_kernel(const MdArgs<scalar_t> P) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr bool kPQ = MODE == 2;
  constexpr bool kGrad = MODE >= 1;
  __shared__ acc_t aS[kCC][kBI];
  __shared__ acc_t bS[kCC][kLd];
  __shared__ acc_t pS[kPQ ? kCC : 1][kBI];
  __shared__ acc_t qS[kPQ ? kCC : 1][kLd];
  __shared__ acc_t eS[kGrad ? kBI : 1][kLd];  // E_ij of the tile
  __shared__ acc_t gS[kGrad ? kBJ : 1];       // column weights of the tile

  const int t = threadIdx.x;
  const int ty = t / kTX, tx = t % kTX;     // phase A
  const int lb = t % kLB, slot = t / kLB;   // phase B
  const int64_t NA = P.NA, NB = P.NB, K = P.K, C = P.C;
  const int64_t i0 = int64_t(blockIdx.x) * kBI;
  const int na = int(min64(kBI, NA - i0));
  const int64_t row = i0 + ty;
  const bool row_ok = ty < na;
  const int64_t nck = ceil_div(C, kCC);
  const bool rowsum = MODE == 0 || (MODE == 2 && P.dg != nullptr);

  for (int64_t k = blockIdx.y; k < K; k += gridDim.y) {
    acc_t ga = acc_t(0);
    if (kGrad && P.ga != nullptr && row_ok) ga = acc_t(P.ga[row * K + k]);
    acc_t racc = acc_t(0);  // this thread's share of the row sum (forward: e; dg: -e u)

    for (int64_t j0 = 0; j0 < NB; j0 += kBJ) {
      const int nb = int(min64(kBJ, NB - j0));
      // ---- phase A: distances (and u) of the thread's kJQ pairs, over all chunks ----
      acc_t dist[kJQ], u[kJQ];
#pragma unroll
      for (int q = 0; q < kJQ; ++q) dist[q] = u[q] = acc_t(0);
      for (int64_t ck = 0; ck < nck; ++ck) {
        const int64_t c0 = ck * kCC;
        const int cc = int(min64(kCC, C - c0));
        __syncthreads();  // every reader of the previous tile / chunk is done
        if (nck > 1 || j0 == 0) {  // one chunk: the rows stay staged for every tile of this k
          stage<kBI, kBI>(aS, P.a, i0, na, k, K, C, c0, cc);
          if constexpr (kPQ) stage<kBI, kBI>(pS, P.p, i0, na, k, K, C, c0, cc);
        }
        stage<kBJ, kLd>(bS, P.b, j0, nb, k, K, C, c0, cc);
        if constexpr (kPQ) stage<kBJ, kLd>(qS, P.q, j0, nb, k, K, C, c0, cc);
        if constexpr (kGrad) {
          if (ck == 0 && t < kBJ) gS[t] = (P.gb != nullptr && t < nb) ? acc_t(P.gb[(j0 + t) * K + k]) : acc_t(0);
        }
        __syncthreads();
        for (int c = 0; c < cc; ++c) {
          const acc_t av = aS[c][ty];
          acc_t pv = acc_t(0);
          if constexpr (kPQ) pv = pS[c][ty];
#pragma unroll
          for (int q = 0; q < kJQ; ++q) {
            const acc_t bv = bS[c][tx + kTX * q];
            dist[q] += md_abs_diff(av, bv);
            if constexpr (kPQ) u[q] += md_u_term(av, bv, pv, qS[c][tx + kTX * q]);
          }
        }
      }
      // ---- e, the row sums and the pair weights E (0 for every masked pair: selects, never 0 * x) ----
#pragma unroll
      for (int q = 0; q < kJQ; ++q) {
        const int jj = tx + kTX * q;
        const bool valid = row_ok && jj < nb;
        const bool diag = P.self && j0 + jj == row;
        const bool pair = valid && !diag;
        const acc_t e = pair ? md_pair_exp(dist[q]) : acc_t(0);
        if constexpr (MODE == 0) {
          racc += pair ? e : ((valid && diag && !P.excl) ? acc_t(1) : acc_t(0));
        } else if constexpr (MODE == 1) {
          eS[ty][jj] = pair ? -(ga + gS[jj]) * e : acc_t(0);
        } else {
          const acc_t eu = pair ? e * u[q] : acc_t(0);
          racc -= eu;
          eS[ty][jj] = pair ? (ga + gS[jj]) * eu : acc_t(0);
        }
      }
      // ---- phase B: dout[i, c] += sum_j E_ij sign(a_ic - b_jc), chunk by chunk ----
      if constexpr (kGrad) {
        for (int64_t ck = 0; ck < nck; ++ck) {
          const int64_t c0 = ck * kCC;
          const int cc = int(min64(kCC, C - c0));
          if (nck > 1) {  // restage the chunk (one chunk: phase A's tiles are still in place)
            __syncthreads();
            stage<kBI, kBI>(aS, P.a, i0, na, k, K, C, c0, cc);
            stage<kBJ, kLd>(bS, P.b, j0, nb, k, K, C, c0, cc);
          }
          __syncthreads();  // E (and the chunk) visible to every thread
          const int nout = kBI * cc;
          for (int o0 = 0; o0 < nout; o0 += kSlots) {  // uniform over the CTA: every lane reaches the shuffles
            const int o = o0 + slot;
            const bool act = o < nout;
            const int oi = act ? o / cc : 0;
            const int oc = act ? o - oi * cc : 0;
            const acc_t av = aS[oc][oi];
            acc_t s = acc_t(0);
#pragma unroll
            for (int q = 0; q < kBJ / kLB; ++q) {
              const int j = lb + kLB * q;
              s += md_signed(eS[oi][j], av, bS[oc][j]);
            }
#pragma unroll
            for (int off = kLB / 2; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off, kLB);
            if (act && lb == 0 && oi < na) {
              acc_t* d = P.dout + ((i0 + oi) * K + k) * C + c0 + oc;
              *d = j0 == 0 ? s : *d + s;
            }
          }
        }
      }
    }

    if (rowsum) {  // uniform over the CTA
#pragma unroll
      for (int off = kTX / 2; off > 0; off /= 2) racc += __shfl_xor_sync(0xffffffffu, racc, off, kTX);
      if (tx == 0 && row_ok) {
        if constexpr (MODE == 0) {
          P.out[row * K + k] = scalar_t(racc);
        } else if constexpr (MODE == 2) {
          P.dg[row * K + k] = scalar_t(racc);
        }
      }
    }
  }
}

// The device of an input, for the guard: none for a non-CUDA tensor, so that a tensor on the wrong device is
// reported by the argument checks rather than by the guard.
inline c10::optional<c10::Device> cuda_device_of(const at::Tensor& t) {
  if (t.defined() && t.is_cuda()) return t.device();
  return c10::nullopt;
}

template <typename T>
const T* ptr_or_null(const at::Tensor& t) {
  return t.defined() ? t.template const_data_ptr<T>() : nullptr;
}

// One launch: rows a (NA, K, C) against b (NB, K, C); every size > 0 (the ops return before launching otherwise).
template <int MODE, typename scalar_t>
void launch(const at::Tensor& a, const at::Tensor& b, const at::Tensor& p, const at::Tensor& q, const at::Tensor& ga,
            const at::Tensor& gb, const at::Tensor& out, const at::Tensor& dout, const at::Tensor& dg, bool self,
            bool excl) {
  using acc_t = at::opmath_type<scalar_t>;
  MdArgs<scalar_t> P{};
  P.a = a.const_data_ptr<scalar_t>();
  P.b = b.const_data_ptr<scalar_t>();
  P.p = ptr_or_null<scalar_t>(p);
  P.q = ptr_or_null<scalar_t>(q);
  P.ga = ptr_or_null<scalar_t>(ga);
  P.gb = ptr_or_null<scalar_t>(gb);
  P.out = out.defined() ? out.data_ptr<scalar_t>() : nullptr;
  P.dout = dout.defined() ? dout.data_ptr<acc_t>() : nullptr;
  P.dg = dg.defined() ? dg.data_ptr<scalar_t>() : nullptr;
  P.NA = a.size(0);
  P.NB = b.size(0);
  P.K = a.size(1);
  P.C = a.size(2);
  P.self = self;
  P.excl = excl;
  const int64_t gx = ceil_div(P.NA, kBI);
  TORCH_CHECK(gx <= int64_t(std::numeric_limits<int32_t>::max()), "minibatch_discrimination: ", P.NA,
              " rows exceed the CUDA grid (at most ", int64_t(std::numeric_limits<int32_t>::max()) * kBI, ")");
  const dim3 grid(unsigned(gx), unsigned(std::min<int64_t>(P.K, kMaxGridY)));  // k loops past 65535
  md_kernel<MODE, scalar_t>
      <<<grid, kThreads, 0, c10::cuda::getCurrentCUDAStream(a.device().index()).stream()>>>(P);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// A derivative in the compute type, (N, K, C): the kernel's dout, then the output dtype.
inline at::Tensor acc_buffer(int64_t N, const at::Tensor& like) {
  return at::empty({N, like.size(1), like.size(2)}, like.options().dtype(md_compute_type(like.scalar_type())));
}

inline at::Tensor to_dtype(const at::Tensor& t, at::ScalarType st) { return t.scalar_type() == st ? t : t.to(st); }

at::Tensor minibatch_discrimination_cuda(const at::Tensor& m, const c10::optional<at::Tensor>& ref, bool exclude_self) {
  const c10::cuda::OptionalCUDAGuard guard(cuda_device_of(m));
  check_minibatch_discrimination(m, ref, exclude_self);
  const bool self = !md_has(ref);
  const int64_t B = m.size(0), K = m.size(1), C = m.size(2), R = self ? B : ref->size(0);
  if (B == 0 || K == 0 || R == 0) return at::zeros({B, K}, m.options());
  if (C == 0) return at::full({B, K}, double(self && exclude_self ? B - 1 : R), m.options());  // every e = 1
  const at::Tensor mc = m.contiguous();
  const at::Tensor rc = self ? mc : ref->contiguous();
  at::Tensor o = at::empty({B, K}, m.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, m.scalar_type(), "fastgan_minibatch_discrimination_cuda", [&] {
    launch<0, scalar_t>(mc, rc, {}, {}, {}, {}, o, {}, {}, self, self && exclude_self);
  });
  return o;
}

std::tuple<at::Tensor, at::Tensor> minibatch_discrimination_backward_cuda(const at::Tensor& grad, const at::Tensor& m,
                                                                const c10::optional<at::Tensor>& ref,
                                                                bool exclude_self) {
  const c10::cuda::OptionalCUDAGuard guard(cuda_device_of(m));
  check_minibatch_discrimination_backward(grad, m, ref, exclude_self);
  const bool self = !md_has(ref);
  const int64_t B = m.size(0), K = m.size(1), C = m.size(2), R = self ? B : ref->size(0);
  if (B == 0 || K == 0 || C == 0 || R == 0) {  // every sum is empty
    return {at::zeros({B, K, C}, m.options()), self ? m.new_empty({0}) : at::zeros({R, K, C}, m.options())};
  }
  const at::Tensor mc = m.contiguous();
  const at::Tensor g = grad.contiguous();
  const at::Tensor dm = acc_buffer(B, m);
  at::Tensor dr;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, m.scalar_type(), "fastgan_minibatch_discrimination_backward_cuda",
                                  [&] {
    if (self) {  // w_ij = g_i + g_j
      launch<1, scalar_t>(mc, mc, {}, {}, g, g, {}, dm, {}, true, false);
    } else {  // dm: w = g_i;  dr: the roles swapped, w = g_i of the columns
      const at::Tensor rc = ref->contiguous();
      dr = acc_buffer(R, m);
      launch<1, scalar_t>(mc, rc, {}, {}, g, {}, {}, dm, {}, false, false);
      launch<1, scalar_t>(rc, mc, {}, {}, {}, g, {}, dr, {}, false, false);
    }
  });
  return {to_dtype(dm, m.scalar_type()), self ? m.new_empty({0}) : to_dtype(dr, m.scalar_type())};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> minibatch_discrimination_backward2_cuda(
    const at::Tensor& ggm, const c10::optional<at::Tensor>& ggr, const at::Tensor& grad, const at::Tensor& m,
    const c10::optional<at::Tensor>& ref, bool exclude_self) {
  const c10::cuda::OptionalCUDAGuard guard(cuda_device_of(m));
  check_minibatch_discrimination_backward2(ggm, ggr, grad, m, ref, exclude_self);
  const bool self = !md_has(ref);
  const int64_t B = m.size(0), K = m.size(1), C = m.size(2), R = self ? B : ref->size(0);
  if (B == 0 || K == 0 || C == 0 || R == 0) {  // every sum is empty (C = 0: u = 0)
    return {at::zeros({B, K}, grad.options()), at::zeros({B, K, C}, m.options()),
            self ? m.new_empty({0}) : at::zeros({R, K, C}, ref->options())};
  }
  const at::Tensor mc = m.contiguous();
  const at::Tensor g = grad.contiguous();
  const at::Tensor pm = ggm.contiguous();
  at::Tensor dg = at::empty({B, K}, grad.options());
  const at::Tensor dm = acc_buffer(B, m);
  at::Tensor dr;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, m.scalar_type(), "fastgan_minibatch_discrimination_backward2_cuda",
                                  [&] {
    if (self) {  // (a, b, p, q) = (m, m, P, P), w_ij = g_i + g_j
      launch<2, scalar_t>(mc, mc, pm, pm, g, g, {}, dm, dg, true, false);
    } else {  // dm, dg: (m, r, P, Q), w = g_i;  dr: (r, m, Q, P), w = g_j of the columns
      const at::Tensor rc = ref->contiguous();
      const at::Tensor qr = ggr->contiguous();
      dr = acc_buffer(R, m);
      launch<2, scalar_t>(mc, rc, pm, qr, g, {}, {}, dm, dg, false, false);
      launch<2, scalar_t>(rc, mc, qr, pm, {}, g, {}, dr, {}, false, false);
    }
  });
  return {dg, to_dtype(dm, m.scalar_type()), self ? m.new_empty({0}) : to_dtype(dr, ref->scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastgan, CUDA, m) {
  m.impl("minibatch_discrimination", &minibatch_discrimination_cuda);
  m.impl("minibatch_discrimination_backward", &minibatch_discrimination_backward_cuda);
  m.impl("minibatch_discrimination_backward2", &minibatch_discrimination_backward2_cuda);
}

}  // namespace fastgan
