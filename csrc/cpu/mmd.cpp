// CPU kernel of fastgan::kernel_sum, the building block of MMD: S = sum_ij sum_s w_s k_s(|x_i - y_j|^2) and, in the
// same pass, its gradients, without ever holding the n x m kernel matrix.
//
// The pairs are walked in tiles of at most kTile x kTile. Per tile: one GEMM D = X_I Y_J^T (BLAS), one vectorised
// pass that turns D into r2 = |x|^2 + |y|^2 - 2 D (clamped at 0), sums the kernel values (all bandwidths from the
// same r2) and overwrites D with c = sum_s w_s dk_s/dr2; then, when gradients are wanted, two more GEMMs accumulate
// [C Y_J | rowsum C] and [C^T X_I | colsum C] (a column of ones appended to X and Y gives the sums for free). The
// gradients follow as dS/dx_i = 2 (rowsum_i x_i - (C Y)_i) and dS/dy_j = 2 (colsum_j y_j - (C^T X)_j).
// Memory: O((n + m) d) plus one tile. y = None: the symmetric self-sum over x, upper triangle of tiles only (each
// off-diagonal tile counts twice); the diagonal pairs are exact zeros of r2 and can be left out (unbiased MMD).
//
// Cancellation in |x|^2 + |y|^2 - 2 x.y is reduced by centring both sets on their common mean first (distances are
// translation invariant); r2 is clamped at 0 and the diagonal of a self-sum is exactly 0. Compute type: fp64 for fp64,
// else fp32 (half inputs are widened once); kernel values are summed per row in the compute type, rows in fp64.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <string>
#include <tuple>
#include <vector>

#include "fastgan/checks.h"
#include "fastgan/pair_kernels.h"

namespace fastgan {
namespace {

constexpr int64_t kTile = 512;

template <typename T>
struct Mixture {
  int kernel;
  std::vector<T> p, w;  // per-bandwidth parameter (pair_kernels.h) and weight
};

// Kernel values and derivatives of a vector of r2: returns sum_s w_s k_s(r2); c = sum_s w_s dk_s/dr2 when WANT_C.
template <typename T, bool WANT_C>
inline at::vec::Vectorized<T> mixture(const at::vec::Vectorized<T>& r2, const Mixture<T>& m, at::vec::Vectorized<T>& c) {
  using V = at::vec::Vectorized<T>;
  V val(T(0));
  if constexpr (WANT_C) c = V(T(0));
  const size_t ns = m.p.size();
  for (size_t s = 0; s < ns; ++s) {
    const T p = m.p[s], w = m.w[s];
    if (m.kernel == kGaussian) {
      const V e = (r2 * V(-p)).exp();
      val = at::vec::fmadd(V(w), e, val);
      if constexpr (WANT_C) c = at::vec::fmadd(V(-w * p), e, c);
    } else if (m.kernel == kRationalQuadratic) {
      const V t = at::vec::fmadd(r2, V(T(0.5) / p), V(T(1)));  // 1 + r2 / (2 a)
      const V e = (t.log() * V(-p)).exp();                      // t^-a
      val = at::vec::fmadd(V(w), e, val);
      if constexpr (WANT_C) c = at::vec::fmadd(V(T(-0.5) * w), e / t, c);
    } else {  // inverse multiquadric
      const V q = V(p) + r2;
      const V e = V(p) / q;
      val = at::vec::fmadd(V(w), e, val);
      if constexpr (WANT_C) c = at::vec::fmadd(V(-w), e / q, c);
    }
  }
  return val;
}

// Columns [j0, j1) of one row of a tile: d holds x_i . y_j on entry and c_ij on exit (WANT_C); returns the sum of
// the kernel values.
template <typename T, bool WANT_C>
T row_range(T* d, const T* ny, T nxi, int64_t j0, int64_t j1, const Mixture<T>& m) {
  using V = at::vec::Vectorized<T>;
  V acc(T(0)), c;
  const V two(T(2)), zero(T(0)), vnx(nxi);
  int64_t j = j0;
  for (; j + V::size() <= j1; j += V::size()) {
    const V r2 = at::vec::maximum(vnx + V::loadu(ny + j) - two * V::loadu(d + j), zero);
    acc += mixture<T, WANT_C>(r2, m, c);
    if constexpr (WANT_C) c.store(d + j);
  }
  if (j < j1) {
    const int n = static_cast<int>(j1 - j);
    const V r2 = at::vec::maximum(vnx + V::loadu(ny + j, n) - two * V::loadu(d + j, n), zero);
    acc += V::set(zero, mixture<T, WANT_C>(r2, m, c), n);
    if constexpr (WANT_C) c.store(d + j, n);
  }
  return at::vec::vec_reduce_all<T>([](V a, V b) { return a + b; }, acc);
}

// One tile [i0, i0 + bi) x [j0, j0 + bj) held in d (bi x bj, row-major): returns the sum of its kernel values.
// diag_tile: a tile on the diagonal of a self-sum (i0 == j0): its pairs (i, i) get r2 = 0 exactly, or are left
// out (their value, and c = 0) when !diagonal.
template <typename T, bool WANT_C>
double tile_pass(T* d, int64_t bi, int64_t bj, const T* nx, const T* ny, const Mixture<T>& m, bool diag_tile,
                 bool diagonal) {
  std::vector<double> rows(bi, 0.0);
  at::parallel_for(0, bi, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      T* row = d + i * bj;
      if (!diag_tile) {
        rows[i] = row_range<T, WANT_C>(row, ny, nx[i], 0, bj, m);
      } else if (diagonal) {
        row[i] = nx[i];  // r2 = nx + nx - 2 nx = 0 exactly
        rows[i] = row_range<T, WANT_C>(row, ny, nx[i], 0, bj, m);
      } else {
        rows[i] = double(row_range<T, WANT_C>(row, ny, nx[i], 0, i, m)) +
                  double(row_range<T, WANT_C>(row, ny, nx[i], i + 1, bj, m));
        if constexpr (WANT_C) row[i] = T(0);
      }
    }
  });
  double total = 0.0;
  for (double v : rows) total += v;  // fixed order: the result does not depend on the thread count
  return total;
}

// [a | 1]: the centred rows with a column of ones, in the compute type.
at::Tensor augment(const at::Tensor& a, const at::Tensor& mean, at::ScalarType ct) {
  at::Tensor out = at::empty({a.size(0), a.size(1) + 1}, a.options().dtype(ct));
  out.narrow(1, 0, a.size(1)).copy_(a.to(ct) - mean);
  out.select(1, a.size(1)).fill_(1);
  return out;
}

template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor> kernel_sum_impl(const at::Tensor& x, const c10::optional<at::Tensor>& y_opt,
                                                               const Mixture<T>& mix, bool diagonal, bool grad_x,
                                                               bool grad_y) {
  const bool self = !(y_opt.has_value() && y_opt->defined());
  const at::Tensor& y = self ? x : *y_opt;
  const int64_t n = x.size(0), m = y.size(0), dd = x.size(1);
  const at::ScalarType ct = c10::CppTypeToScalarType<T>::value;
  const bool want_c = grad_x || (grad_y && !self);

  // centre both sets on their common mean (in the compute type)
  at::Tensor mean;
  {
    at::Tensor sx = x.to(ct).sum(0);
    if (!self) sx = sx + y.to(ct).sum(0);
    const int64_t cnt = self ? n : n + m;
    mean = cnt > 0 ? sx / double(cnt) : sx;
  }
  const at::Tensor xa = augment(x, mean, ct);
  const at::Tensor ya = self ? xa : augment(y, mean, ct);
  const at::Tensor xc = xa.narrow(1, 0, dd), yc = ya.narrow(1, 0, dd);
  const at::Tensor nx = xc.square().sum(1).contiguous();
  const at::Tensor ny = self ? nx : yc.square().sum(1).contiguous();

  // [C Y | rowsum C] per x row and [C^T X | colsum C] per y row (self: both into acc_x)
  at::Tensor acc_x = grad_x ? at::zeros({n, dd + 1}, xa.options()) : at::Tensor();
  at::Tensor acc_y = (want_c && !self) ? at::zeros({m, dd + 1}, xa.options()) : at::Tensor();
  at::Tensor buf = at::empty({std::min(n, kTile) * std::min(m, kTile)}, xa.options());

  double total = 0.0;
  for (int64_t i0 = 0; i0 < n; i0 += kTile) {
    const int64_t bi = std::min(kTile, n - i0);
    for (int64_t j0 = self ? i0 : 0; j0 < m; j0 += kTile) {
      const int64_t bj = std::min(kTile, m - j0);
      at::Tensor tile = buf.narrow(0, 0, bi * bj).view({bi, bj});
      at::mm_out(tile, xc.narrow(0, i0, bi), yc.narrow(0, j0, bj).t());
      const bool diag_tile = self && i0 == j0;
      T* d = tile.data_ptr<T>();
      const T* pnx = nx.data_ptr<T>() + i0;
      const T* pny = ny.data_ptr<T>() + j0;
      const double s = want_c ? tile_pass<T, true>(d, bi, bj, pnx, pny, mix, diag_tile, diagonal)
                              : tile_pass<T, false>(d, bi, bj, pnx, pny, mix, diag_tile, diagonal);
      total += (self && !diag_tile) ? 2.0 * s : s;
      if (!want_c) continue;
      if (grad_x) acc_x.narrow(0, i0, bi).addmm_(tile, ya.narrow(0, j0, bj));
      if (self && !diag_tile) {
        acc_x.narrow(0, j0, bj).addmm_(tile.t(), xa.narrow(0, i0, bi));
      } else if (!self && grad_y) {
        acc_y.narrow(0, j0, bj).addmm_(tile.t(), xa.narrow(0, i0, bi));
      }
    }
  }

  // dS/dx_i = f (rowsum_i x_i - (C Y)_i), f = 2 (4 for a self-sum: x_i appears on both sides of each pair)
  auto grad_of = [&](const at::Tensor& acc, const at::Tensor& centred, double f, const at::Tensor& like) {
    at::Tensor g = (centred * acc.narrow(1, dd, 1) - acc.narrow(1, 0, dd)) * f;
    return g.to(like.scalar_type());
  };
  at::Tensor gx = grad_x ? grad_of(acc_x, xc, self ? 4.0 : 2.0, x) : x.new_empty({0});
  at::Tensor gy = (grad_y && !self) ? grad_of(acc_y, yc, 2.0, y) : x.new_empty({0});
  at::Tensor value = at::scalar_tensor(total, x.options().dtype(at::kDouble)).to(x.scalar_type());
  return {value, gx, gy};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> kernel_sum_cpu(const at::Tensor& x, const c10::optional<at::Tensor>& y,
                                                              c10::string_view kernel, at::ArrayRef<double> bandwidths,
                                                              at::ArrayRef<double> weights, bool diagonal, bool grad_x,
                                                              bool grad_y) {
  const int kind = parse_pair_kernel(std::string(kernel));
  const std::vector<double> params = pair_kernel_params(kind, bandwidths, weights);
  check_float_tensor(x, "x");
  TORCH_CHECK_VALUE(x.dim() == 2, "x: expected a 2-d tensor of shape (n, d), got shape ", x.sizes());
  if (y.has_value() && y->defined()) {
    check_like(*y, "y", x, "x");
    TORCH_CHECK_VALUE(y->dim() == 2 && y->size(1) == x.size(1), "y: expected a 2-d tensor of shape (m, ", x.size(1),
                      ") like x, got shape ", y->sizes());
  }
  if (x.scalar_type() == at::kDouble) {
    Mixture<double> mix{kind, params, std::vector<double>(weights.begin(), weights.end())};
    return kernel_sum_impl<double>(x, y, mix, diagonal, grad_x, grad_y);
  }
  Mixture<float> mix{kind, std::vector<float>(params.begin(), params.end()),
                     std::vector<float>(weights.begin(), weights.end())};
  return kernel_sum_impl<float>(x, y, mix, diagonal, grad_x, grad_y);
}

}  // namespace

TORCH_LIBRARY_IMPL(fastgan, CPU, m) { m.impl("kernel_sum", &kernel_sum_cpu); }

}  // namespace fastgan
