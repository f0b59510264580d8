// Host side of the CUDA kernel_sum: the device queries, the tile plan's launch, the pair walk (templated on MODE so
// that each translation unit instantiates only its own kernels: kernel_sum.cu MODE 0 and 1, kernel_sum_backward2.cu
// MODE 2) and the finishing passes. Every call on the current stream under the caller's device guard; no host sync.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "fastgan/kernel_sum.h"
#include "fastgan/kernel_sum_plan.h"
#include "kernel_sum_tiles.cuh"

namespace fastgan {
namespace {

// ---------------------------------------------------------------------------------------------------------------
// host side

inline c10::optional<c10::Device> cuda_device_of(const at::Tensor& t) {
  if (t.defined() && t.is_cuda()) return t.device();
  return c10::nullopt;
}

inline int sm_count(c10::DeviceIndex device) {
  int sms = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return std::max(sms, 1);
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The largest tile whose shared memory the device grants one block (sm_86 / sm_89 / sm_120: at most 99 KiB, less
// than the fp64 second order's 102 KiB at tile 64; H100 227 KiB, A100 163 KiB).
template <typename T, int MODE>
int max_tile(int device) {
  int optin = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  if (smem_bytes<T, 64, MODE>() <= size_t(optin)) return 64;
  if (smem_bytes<T, 32, MODE>() <= size_t(optin)) return 32;
  return 16;
}

template <typename T, int TILE, int MODE, int DIST>
void launch_tiles(const PairArgs<T>& a, int64_t ctas, cudaStream_t stream) {
  constexpr size_t smem = smem_bytes<T, TILE, MODE>();
  auto kern = pair_tiles_kernel<T, TILE, MODE, DIST>;
  if constexpr (smem > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  }
  kern<<<unsigned(ctas), kThreads, smem, stream>>>(a);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T, int MODE, int DIST>
void launch_tiles_any(const PairArgs<T>& a, int tile, int64_t ctas, cudaStream_t stream) {
  if (tile == 64) {
    launch_tiles<T, 64, MODE, DIST>(a, ctas, stream);
  } else if (tile == 32) {
    launch_tiles<T, 32, MODE, DIST>(a, ctas, stream);
  } else {
    launch_tiles<T, 16, MODE, DIST>(a, ctas, stream);
  }
}

template <typename T>
at::Tensor row_dots(const at::Tensor& a, const at::Tensor& b, int sms, cudaStream_t stream) {
  at::Tensor out = at::empty({a.size(0)}, a.options());
  const int64_t rows = a.size(0);
  if (rows == 0) return out;
  const int64_t blocks = std::clamp<int64_t>(ceil_div(rows, kWarps), 1, int64_t(sms) * 8);
  row_dots_kernel<T><<<unsigned(blocks), kThreads, 0, stream>>>(a.data_ptr<T>(), b.data_ptr<T>(),
                                                                 out.data_ptr<T>(), rows, a.size(1));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

// The partial sums of one walk over the pairs.
struct Walk {
  TilePlan plan;
  at::Tensor val_part;                        // [ctas] double (MODE < 2)
  at::Tensor row_t1, row_t2, row_s1, row_s2;  // [pc][n][d], [pc][n]
  at::Tensor col_t1, col_t2, col_s1, col_s2;  // [pr][m][d], [pr][m] (self-sum: the row buffers)
};

// Walks the pairs of P. MODE 0: the value; 1: the value and the first-order products (row side for dS/dx, column
// side for dS/dy or a self-sum's mirrored pairs); 2: the second-order products, with directions u (n, d) and v
// (m, d; = u for a self-sum), smooth kernels only (check_kernel_sum_backward2 refuses the laplacians).
template <typename T, int MODE>
Walk walk_pairs(const CentredPoints& P, const KernelSumCall& call, bool diagonal, bool row_side, bool col_side,
                const at::Tensor& uc, const at::Tensor& vc, int sms, cudaStream_t stream) {
  const bool smooth = !is_laplacian(call.kind);
  const auto o = P.xc.options();
  Walk W;
  const int nt = MODE == 2 ? 2 : 1;  // partial copies per side: t1 (and t2 for the second order)
  const int copies_row = MODE >= 1 && (row_side || (P.self && col_side)) ? nt : 0;
  const int copies_col = MODE >= 1 && !P.self && col_side ? nt : 0;
  W.plan = plan_tiles(P.n, P.m, P.d, int64_t(sizeof(T)), P.self, sms, max_tile<T, MODE>(P.xc.device().index()),
                      copies_row, copies_col);
  const TilePlan& tp = W.plan;

  PairArgs<T> a{};
  a.x = P.xc.data_ptr<T>();
  a.y = P.yc.data_ptr<T>();
  at::Tensor nx, ny, ux, vy;
  if (smooth && !is_dot_kernel(call.kind)) {  // |x|^2, |y|^2 for r2
    nx = row_dots<T>(P.xc, P.xc, sms, stream);
    ny = P.self ? nx : row_dots<T>(P.yc, P.yc, sms, stream);
    a.nx = nx.data_ptr<T>();
    a.ny = ny.data_ptr<T>();
  }
  bool vec = P.d % Cfg<T>::V == 0 && aligned16(a.x) && aligned16(a.y);
  if (MODE == 2) {
    a.u = uc.data_ptr<T>();
    a.v = vc.data_ptr<T>();
    ux = row_dots<T>(uc, P.xc, sms, stream);
    vy = P.self ? ux : row_dots<T>(vc, P.yc, sms, stream);
    a.ux = ux.data_ptr<T>();
    a.vy = vy.data_ptr<T>();
    vec = vec && aligned16(a.u) && aligned16(a.v);
  }
  if (MODE >= 1) {
    if (row_side || (P.self && col_side)) {
      W.row_t1 = at::zeros({tp.pc, P.n, P.d}, o);
      W.row_s1 = at::zeros({tp.pc, P.n}, o);
      if (nt == 2) {
        W.row_t2 = at::zeros({tp.pc, P.n, P.d}, o);
        W.row_s2 = at::zeros({tp.pc, P.n}, o);
      }
    }
    if (P.self) {
      W.col_t1 = W.row_t1, W.col_t2 = W.row_t2, W.col_s1 = W.row_s1, W.col_s2 = W.row_s2;
    } else if (col_side) {
      W.col_t1 = at::zeros({tp.pr, P.m, P.d}, o);
      W.col_s1 = at::zeros({tp.pr, P.m}, o);
      if (nt == 2) {
        W.col_t2 = at::zeros({tp.pr, P.m, P.d}, o);
        W.col_s2 = at::zeros({tp.pr, P.m}, o);
      }
    }
    auto ptr = [](const at::Tensor& t) { return t.defined() ? t.data_ptr<T>() : static_cast<T*>(nullptr); };
    a.row_t1 = ptr(W.row_t1), a.row_t2 = ptr(W.row_t2), a.row_s1 = ptr(W.row_s1), a.row_s2 = ptr(W.row_s2);
    a.col_t1 = ptr(W.col_t1), a.col_t2 = ptr(W.col_t2), a.col_s1 = ptr(W.col_s1), a.col_s2 = ptr(W.col_s2);
  }
  if (MODE < 2) {
    W.val_part = at::empty({tp.ctas}, o.dtype(at::kDouble));
    a.val_part = W.val_part.data_ptr<double>();
  }
  a.n = P.n, a.m = P.m, a.d = P.d;
  a.tr = tp.tr, a.tc = tp.tc, a.pr = tp.pr, a.pc = tp.pc;
  a.br = tp.tr / tp.pr, a.rr = tp.tr % tp.pr, a.bc = tp.tc / tp.pc, a.rc = tp.tc % tp.pc;
  a.self = P.self;
  a.diagonal = diagonal;
  a.row_side = MODE >= 1 && row_side;
  a.col_side = MODE >= 1 && col_side;
  a.vec = vec;
  a.mix.kernel = call.kind;
  const MixturePlan<T> mix(call.kind, call.params, call.weights, call.degree, call.offset);
  a.mix.ns = int(mix.coef.size());
  for (int s = 0; s < a.mix.ns; ++s) {
    a.mix.cf[s] = mix.coef[s];
    a.mix.sq[s] = mix.sq[s];
  }

  if (!smooth) {
    if constexpr (MODE == 2) {
      TORCH_INTERNAL_ASSERT(false, "kernel_sum: a second-order walk of a laplacian kernel (refused by the checks)");
    } else if (call.kind == kLaplacianL1) {
      launch_tiles_any<T, MODE, kL1>(a, tp.tile, tp.ctas, stream);
    } else {
      launch_tiles_any<T, MODE, kL2>(a, tp.tile, tp.ctas, stream);
    }
  } else if (is_dot_kernel(call.kind)) {
    launch_tiles_any<T, MODE, kPolyDot>(a, tp.tile, tp.ctas, stream);
  } else {
    launch_tiles_any<T, MODE, kDot>(a, tp.tile, tp.ctas, stream);
  }
  return W;
}

// out (rows x d, its own dtype) from the partial buffers; see finish_kernel.
template <typename T>
void finish(at::Tensor& out, int kind, const at::Tensor& t1, const at::Tensor& t2, const at::Tensor& s1,
            const at::Tensor& s2, const at::Tensor& a1, const at::Tensor& a2, int slots, double f1, double f2, int sms,
            cudaStream_t stream) {
  const int64_t total = out.numel();
  if (total == 0) return;
  FinishArgs<T> f{};
  auto ptr = [](const at::Tensor& t) { return t.defined() ? t.data_ptr<T>() : static_cast<T*>(nullptr); };
  f.t1 = ptr(t1), f.t2 = ptr(t2), f.s1 = ptr(s1), f.s2 = ptr(s2), f.a1 = ptr(a1), f.a2 = ptr(a2);
  f.rows = out.size(0);
  f.d = out.size(1);
  f.slots = slots;
  f.f1 = T(f1);
  f.f2 = T(f2);
  const int64_t blocks = std::clamp<int64_t>(ceil_div(total, kThreads), 1, int64_t(sms) * 8);
  auto go = [&](auto* o) {
    using O = std::remove_pointer_t<decltype(o)>;
    if (kind == 0) {
      finish_kernel<T, O, 0><<<unsigned(blocks), kThreads, 0, stream>>>(f, o);
    } else if (kind == 1) {
      finish_kernel<T, O, 1><<<unsigned(blocks), kThreads, 0, stream>>>(f, o);
    } else if (kind == 2) {
      finish_kernel<T, O, 2><<<unsigned(blocks), kThreads, 0, stream>>>(f, o);
    } else {
      finish_kernel<T, O, 3><<<unsigned(blocks), kThreads, 0, stream>>>(f, o);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  if constexpr (std::is_same_v<T, double>) {
    go(out.data_ptr<double>());
  } else {
    switch (out.scalar_type()) {
      case at::kHalf: go(out.data_ptr<at::Half>()); break;
      case at::kBFloat16: go(out.data_ptr<at::BFloat16>()); break;
      default: go(out.data_ptr<float>()); break;
    }
  }
}

}  // namespace
}  // namespace fastgan
