// The pair walk of the CPU kernel_sum (csrc/cpu/kernel_sum.cpp: the smooth kernels through GEMM tiles, and
// csrc/cpu/kernel_sum_laplacian.cpp: the laplacians by direct differences) — what both files share: the tile sizes,
// the centred points with their squared norms, the tile walk, the value's dtype. Private to csrc/cpu.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>

#include <algorithm>
#include <tuple>

#include "fastgan/kernel_sum.h"

namespace fastgan {
namespace kernel_sum_walk {

constexpr int64_t kTile = 512;
constexpr int64_t kRowBlock = 32;  // rows of a tile per parallel work item (and per column-sum slot)

// The kernels of a call: MixturePlan (kernel_sum.h) — per-bandwidth constants, gaussians ordered by p with the squaring
// chain where consecutive parameters differ by an exact power of two.
template <typename T>
using Mixture = MixturePlan<T>;


// |a_i|^2 per row of a (contiguous rows), without an n x d temporary.
inline at::Tensor row_sq_norms(const at::Tensor& a) {
  at::Tensor out = at::empty({a.size(0)}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "fastgan_row_sq_norms", [&] {
    const scalar_t* p = a.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    const int64_t d = a.size(1);
    at::parallel_for(0, a.size(0), 256, [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        o[i] = at::vec::map_reduce_all<scalar_t>([](auto v) { return v * v; }, [](auto u, auto v) { return u + v; },
                                                 p + i * d, d);
      }
    });
  });
  return out;
}

// The centred point sets of a call (kernel_sum.h) and their squared norms.
struct Points : CentredPoints {
  at::Tensor nx, ny;
};

inline Points centre(const at::Tensor& x, const c10::optional<at::Tensor>& y_opt, at::ScalarType ct, bool centred = true) {
  Points P;
  static_cast<CentredPoints&>(P) = centre_points(x, y_opt, ct, centred);
  P.nx = row_sq_norms(P.xc);
  P.ny = P.self ? P.nx : row_sq_norms(P.yc);
  return P;
}

// Calls fn(i0, bi, j0, bj, diag_tile) for the tiles of the pair walk: all of them, or for a self-sum the upper
// triangle (j0 >= i0) only.
template <typename Fn>
void walk_tiles(const Points& P, Fn&& fn) {
  for (int64_t i0 = 0; i0 < P.n; i0 += kTile) {
    const int64_t bi = std::min(kTile, P.n - i0);
    for (int64_t j0 = P.self ? i0 : 0; j0 < P.m; j0 += kTile) {
      fn(i0, bi, j0, std::min(kTile, P.m - j0), P.self && i0 == j0);
    }
  }
}

// The sum as a scalar tensor: x's dtype, or fp32 for fp16 / bf16 inputs (a sum of n m kernel values overflows fp16
// from n ~ 150 and keeps 3 digits in bf16; MMD^2 is a small difference of such sums).
inline at::Tensor value_of(double total, const at::Tensor& x) {
  return at::scalar_tensor(total, x.options().dtype(at::kDouble)).to(kernel_sum_value_type(x));
}

// The laplacian kernels' sum and gradients (kernel_sum_laplacian.cpp; float and double are instantiated there).
template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor> laplacian_impl(const at::Tensor& x, const c10::optional<at::Tensor>& y,
                                                              const Mixture<T>& mix, bool diagonal, bool grad_x,
                                                              bool grad_y);
extern template std::tuple<at::Tensor, at::Tensor, at::Tensor> laplacian_impl<float>(
    const at::Tensor&, const c10::optional<at::Tensor>&, const Mixture<float>&, bool, bool, bool);
extern template std::tuple<at::Tensor, at::Tensor, at::Tensor> laplacian_impl<double>(
    const at::Tensor&, const c10::optional<at::Tensor>&, const Mixture<double>&, bool, bool, bool);

}  // namespace kernel_sum_walk
}  // namespace fastgan
