// The laplacian kernels of fastgan::kernel_sum on the CPU (laplacian, laplacian_l1): distances from direct
// differences, exact at zero distance, first order only; the walk, the centring and the value's dtype are the smooth
// kernels' (kernel_sum_walk.h, csrc/cpu/kernel_sum.cpp).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "fastgan/kernel_sum.h"
#include "fastgan/pair_kernels.h"
#include "fastgan/pair_math.h"
#include "fastgan/vec_math.h"
#include "kernel_sum_walk.h"

namespace fastgan {
namespace kernel_sum_walk {
namespace {

// ---- the laplacian kernels: direct differences (exact at zero distance), first order ----
// Per row i of a tile and per feature k (outer), over the tile's columns j (inner, vectorised; y transposed to
// (d, m) so that they are contiguous): dist_j = sum_k |x_ik - y_kj| or sqrt(sum_k (x_ik - y_kj)^2). Then
// c_ij = sum_s w_s dk_s/ddist (divided by dist for the euclidean one, 0 at dist 0), and, for the gradients, per k:
// dS/dx_ik += sum_j c_ij f(x_ik - y_kj) and dS/dy_kj -= c_ij f(x_ik - y_kj), f = sign or identity. The y side is
// accumulated per row block and reduced in block order (deterministic).
template <typename T, bool GRAD>
double laplacian_tile(const T* X, const T* YT, int64_t m, int64_t d, int64_t i0, int64_t bi, int64_t j0, int64_t bj,
                      bool l1, const Mixture<T>& mix, bool diag_tile, bool diagonal, T* gx, T* gyt) {
  // X: (n, d) rows; YT: (d, m); gx: (n, d) accumulated at rows i0 + i; gyt: (d, m) accumulated at columns j0 + j.
  const int64_t nblk = (bi + kRowBlock - 1) / kRowBlock;
  std::vector<double> rows(bi, 0.0);
  const bool cols = GRAD && gyt != nullptr;              // accumulate the column side too
  std::vector<T> gyb(cols ? nblk * d * bj : 0, T(0));  // per row block: (d, bj)
  at::parallel_for(0, nblk, 1, [&](int64_t b0, int64_t b1) {
    std::vector<T> scratch(3 * kTile);
    T* __restrict dist = scratch.data();
    T* __restrict c = dist + kTile;
    T* __restrict tmp = c + kTile;
    for (int64_t blk = b0; blk < b1; ++blk) {
      T* gyblk = cols ? gyb.data() + blk * d * bj : nullptr;
      for (int64_t i = blk * kRowBlock; i < std::min(bi, (blk + 1) * kRowBlock); ++i) {
        const T* xi = X + (i0 + i) * d;
        for (int64_t j = 0; j < bj; ++j) dist[j] = T(0);
        for (int64_t k = 0; k < d; ++k) {
          const T xv = xi[k];
          const T* __restrict yk = YT + k * m + j0;
          if (l1) {
            for (int64_t j = 0; j < bj; ++j) dist[j] += std::abs(xv - yk[j]);
          } else {
            for (int64_t j = 0; j < bj; ++j) {
              const T df = xv - yk[j];
              dist[j] += df * df;
            }
          }
        }
        if (!l1) {
          for (int64_t j = 0; j < bj; ++j) dist[j] = std::sqrt(dist[j]);
        }
        for (int64_t j = 0; j < bj; ++j) {
          tmp[j] = T(0);
          c[j] = T(0);
        }
        for (size_t s = 0; s < mix.coef.size(); ++s) {
          const PairCoef<T> k = mix.coef[s];
          for (int64_t j = 0; j < bj; ++j) laplacian_add<1>(dist[j], k, tmp[j], c[j]);
        }
        if (diag_tile && !diagonal) tmp[i] = T(0);
        rows[i] = lane_sum(tmp, bj);
        if constexpr (GRAD) {
          if (!l1) {  // d dist / dx = (x - y) / dist, and 0 at dist 0 (the least-norm subgradient)
            for (int64_t j = 0; j < bj; ++j) c[j] = laplacian_l2_weight(c[j], dist[j]);  // NaN propagates
          }
          if (diag_tile) c[i] = T(0);
          T* gxi = gx + (i0 + i) * d;
          for (int64_t k = 0; k < d; ++k) {
            const T xv = xi[k];
            const T* __restrict yk = YT + k * m + j0;
            if (l1) {
              for (int64_t j = 0; j < bj; ++j) {
                const T df = xv - yk[j];
                tmp[j] = c[j] * pair_sign(df);  // sign, 0 at a tie
              }
            } else {
              for (int64_t j = 0; j < bj; ++j) tmp[j] = c[j] * (xv - yk[j]);
            }
            gxi[k] += lane_sum(tmp, bj);
            if (cols) {
              T* __restrict gyk = gyblk + k * bj;
              for (int64_t j = 0; j < bj; ++j) gyk[j] -= tmp[j];
            }
          }
        }
      }
    }
  });
  if (cols) {
    for (int64_t blk = 0; blk < nblk; ++blk) {
      for (int64_t k = 0; k < d; ++k) {
        T* __restrict dst = gyt + k * m + j0;
        const T* __restrict src = gyb.data() + (blk * d + k) * bj;
        for (int64_t j = 0; j < bj; ++j) dst[j] += src[j];
      }
    }
  }
  double total = 0.0;
  for (double v : rows) total += v;
  return total;
}

}  // namespace

template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor> laplacian_impl(const at::Tensor& x, const c10::optional<at::Tensor>& y,
                                                              const Mixture<T>& mix, bool diagonal, bool grad_x,
                                                              bool grad_y) {
  const Points P = centre(x, y, c10::CppTypeToScalarType<T>::value);
  grad_y = grad_y && !P.self;
  const bool grads = grad_x || grad_y;
  const bool l1 = mix.kernel == kLaplacianL1;
  const auto o = P.xc.options();
  const at::Tensor yt = P.yc.t().contiguous();                      // (d, m)
  at::Tensor gx = at::zeros({grads ? P.n : 0, P.d}, o);             // dS/dx rows
  at::Tensor gxt = at::zeros({P.d, grads && P.self ? P.n : 0}, o);  // self-sum: the mirrored side, transposed
  at::Tensor gyt = at::zeros({P.d, grad_y ? P.m : 0}, o);
  double total = 0.0;
  walk_tiles(P, [&](int64_t i0, int64_t bi, int64_t j0, int64_t bj, bool diag_tile) {
    const T* X = P.xc.data_ptr<T>();
    const T* YT = yt.data_ptr<T>();
    double s;
    if (!grads) {
      s = laplacian_tile<T, false>(X, YT, P.m, P.d, i0, bi, j0, bj, l1, mix, diag_tile, diagonal, nullptr, nullptr);
    } else {
      // the column side goes to dS/dy (xy), to the mirrored rows of a self-sum (off-diagonal tiles), or nowhere
      T* col = grad_y ? gyt.data_ptr<T>() : (P.self && !diag_tile) ? gxt.data_ptr<T>() : nullptr;
      s = laplacian_tile<T, true>(X, YT, P.m, P.d, i0, bi, j0, bj, l1, mix, diag_tile, diagonal, gx.data_ptr<T>(),
                                  col);
    }
    total += (P.self && !diag_tile) ? 2.0 * s : s;
  });
  const double f = P.self ? 2.0 : 1.0;
  at::Tensor gxo = x.new_empty({0}), gyo = x.new_empty({0});
  if (grad_x) {
    at::Tensor g = P.self ? gx + gxt.t() : gx;
    gxo = (g * f).to(x.scalar_type());
  }
  if (grad_y) gyo = gyt.t().to(x.scalar_type()).contiguous();
  return {value_of(total, x), gxo, gyo};
}

template std::tuple<at::Tensor, at::Tensor, at::Tensor> laplacian_impl<float>(
    const at::Tensor&, const c10::optional<at::Tensor>&, const Mixture<float>&, bool, bool, bool);
template std::tuple<at::Tensor, at::Tensor, at::Tensor> laplacian_impl<double>(
    const at::Tensor&, const c10::optional<at::Tensor>&, const Mixture<double>&, bool, bool, bool);

}  // namespace kernel_sum_walk
}  // namespace fastgan
