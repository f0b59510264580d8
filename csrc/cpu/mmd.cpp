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
#include <torch/library.h>

#include <string>
#include <tuple>
#include <vector>

#include "fastgan/checks.h"
#include "fastgan/pair_kernels.h"
#include "fastgan/vec_math.h"

namespace fastgan {
namespace {

constexpr int64_t kTile = 512;

template <typename T>
struct Mixture {
  int kernel;
  std::vector<T> p, w;  // per-bandwidth parameter (pair_kernels.h) and weight
};

// Sum of v[0, n) in kLanes independent partial sums (a fixed order, so deterministic; the compiler vectorises it,
// which it may not do for a plain running sum without -ffast-math).
constexpr int kLanes = 16;

template <typename T>
T lane_sum(const T* v, int64_t n) {
  T acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += v[j + l];
  }
  for (; j < n; ++j) acc[j % kLanes] += v[j];
  T total = T(0);
  for (int l = 0; l < kLanes; ++l) total += acc[l];
  return total;
}

// Columns [j0, j1) of one row i of a tile, as plain loops over arrays that the compiler vectorises (vec_exp and
// vec_log from vec_math.h). On entry d[j] = x_i . y_j (and, ORDER 2, e[j] = u_i . y_j + x_i . v_j);
// r2 = |x_i|^2 + |y_j|^2 - 2 d[j] clamped at 0 (NaN passes). ORDER 0: returns the sum of the kernel values
// sum_s w_s k_s(r2); 1: also d[j] = c_ij = sum_s w_s k_s'(r2); 2: d[j] = c_ij and e[j] = h_ij (u_i - v_j).(x_i - y_j)
// with h = sum_s w_s k_s''(r2) and that dot product = ux + vy[j] - e[j]. sc: scratch of 4 kTile values.
template <typename T, int ORDER>
T row_range(T* d, T* e, const T* ny, const T* vy, T nxi, T ux, int64_t j0, int64_t j1, const Mixture<T>& m, T* sc) {
  const int64_t len = j1 - j0;
  T* __restrict r2 = sc;
  T* __restrict val = sc + kTile;
  T* __restrict c = sc + 2 * kTile;
  T* __restrict h = sc + 3 * kTile;
  T* __restrict dd = d + j0;
  const T* __restrict nyy = ny + j0;
  for (int64_t j = 0; j < len; ++j) {
    const T r = nxi + nyy[j] - T(2) * dd[j];
    r2[j] = r < T(0) ? T(0) : r;
    val[j] = T(0);
    c[j] = T(0);
    h[j] = T(0);
  }
  const size_t ns = m.p.size();
  for (size_t s = 0; s < ns; ++s) {
    const T p = m.p[s], w = m.w[s];
    if (m.kernel == kGaussian) {  // k = e^(-p r2), k' = -p k, k'' = p^2 k
      const T wc = -w * p, wh = w * p * p;
      for (int64_t j = 0; j < len; ++j) {
        const T ev = vec_exp(-p * r2[j]);
        if constexpr (ORDER < 2) val[j] += w * ev;
        if constexpr (ORDER >= 1) c[j] += wc * ev;
        if constexpr (ORDER == 2) h[j] += wh * ev;
      }
    } else if (m.kernel == kRationalQuadratic) {  // k = t^-a, t = 1 + r2/(2a); k' = -k/(2t), k'' = (a+1)/(4a) k/t^2
      const T inv = T(0.5) / p, wc = T(-0.5) * w, wh = w * (p + T(1)) / (T(4) * p);
      for (int64_t j = 0; j < len; ++j) {
        const T t = std::fma(r2[j], inv, T(1));
        const T ev = vec_exp(-p * vec_log(t));
        const T et = ev / t;
        if constexpr (ORDER < 2) val[j] += w * ev;
        if constexpr (ORDER >= 1) c[j] += wc * et;
        if constexpr (ORDER == 2) h[j] += wh * (et / t);
      }
    } else {  // inverse multiquadric: k = p/q, q = p + r2; k' = -k/q, k'' = 2k/q^2
      for (int64_t j = 0; j < len; ++j) {
        const T q = p + r2[j];
        const T ev = p / q;
        const T eq = ev / q;
        if constexpr (ORDER < 2) val[j] += w * ev;
        if constexpr (ORDER >= 1) c[j] -= w * eq;
        if constexpr (ORDER == 2) h[j] += T(2) * w * (eq / q);
      }
    }
  }
  if constexpr (ORDER >= 1) {
    for (int64_t j = 0; j < len; ++j) dd[j] = c[j];
  }
  if constexpr (ORDER == 2) {
    T* __restrict ee = e + j0;
    const T* __restrict vyy = vy + j0;
    for (int64_t j = 0; j < len; ++j) ee[j] = h[j] * (ux + vyy[j] - ee[j]);
  }
  return ORDER < 2 ? lane_sum(val, len) : T(0);
}

// One tile [i0, i0 + bi) x [j0, j0 + bj) held row-major in d (and e, ORDER 2): returns the sum of its kernel values.
// diag_tile: a tile on the diagonal of a self-sum (i0 == j0): its pairs (i, i) get r2 = 0 exactly, or are left out
// (value 0, c = 0) when !diagonal; ORDER 2 zeroes their c and second-order term (both vanish there analytically).
template <typename T, int ORDER>
double tile_pass(T* d, T* e, int64_t bi, int64_t bj, const T* nx, const T* ny, const T* ux, const T* vy,
                 const Mixture<T>& m, bool diag_tile, bool diagonal) {
  std::vector<double> rows(bi, 0.0);
  at::parallel_for(0, bi, 16, [&](int64_t r0, int64_t r1) {
    std::vector<T> scratch(4 * kTile);
    T* sc = scratch.data();
    for (int64_t i = r0; i < r1; ++i) {
      T* row = d + i * bj;
      T* erow = ORDER == 2 ? e + i * bj : nullptr;
      const T uxi = ORDER == 2 ? ux[i] : T(0);
      if (!diag_tile) {
        rows[i] = row_range<T, ORDER>(row, erow, ny, vy, nx[i], uxi, 0, bj, m, sc);
        continue;
      }
      row[i] = nx[i];  // r2 = nx + nx - 2 nx = 0 exactly
      if (diagonal || ORDER == 2) {
        rows[i] = row_range<T, ORDER>(row, erow, ny, vy, nx[i], uxi, 0, bj, m, sc);
      } else {
        rows[i] = double(row_range<T, ORDER>(row, erow, ny, vy, nx[i], uxi, 0, i, m, sc)) +
                  double(row_range<T, ORDER>(row, erow, ny, vy, nx[i], uxi, i + 1, bj, m, sc));
      }
      if (ORDER == 2 || (ORDER == 1 && !diagonal)) row[i] = T(0);
      if constexpr (ORDER == 2) erow[i] = T(0);
    }
  });
  double total = 0.0;
  for (double v : rows) total += v;  // fixed order: the result does not depend on the thread count
  return total;
}

// [a - mean | 1] in the compute type: the centred rows with a column of ones (GEMMs against it also sum).
at::Tensor augment(const at::Tensor& a, const at::Tensor& mean, at::ScalarType ct) {
  at::Tensor out = at::empty({a.size(0), a.size(1) + 1}, a.options().dtype(ct));
  out.narrow(1, 0, a.size(1)).copy_(a).sub_(mean);  // in place: no n x d temporary
  out.select(1, a.size(1)).fill_(1);
  return out;
}

// |a_i|^2 per row of a (rows with a stride), without an n x d temporary.
at::Tensor row_sq_norms(const at::Tensor& a) {
  at::Tensor out = at::empty({a.size(0)}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "fastgan_row_sq_norms", [&] {
    const scalar_t* p = a.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    const int64_t d = a.size(1), ld = a.stride(0);
    at::parallel_for(0, a.size(0), 256, [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        o[i] = at::vec::map_reduce_all<scalar_t>([](auto v) { return v * v; }, [](auto u, auto v) { return u + v; },
                                                 p + i * ld, d);
      }
    });
  });
  return out;
}

// The centred point sets of a call: x, y (= x for a self-sum) with ones columns, their squared norms, the mean.
struct Points {
  bool self;
  int64_t n, m, d;
  at::ScalarType ct;
  at::Tensor mean, xa, ya, xc, yc, nx, ny;
};

Points centre(const at::Tensor& x, const c10::optional<at::Tensor>& y_opt, at::ScalarType ct) {
  Points P;
  P.self = !(y_opt.has_value() && y_opt->defined());
  const at::Tensor& y = P.self ? x : *y_opt;
  P.n = x.size(0), P.m = y.size(0), P.d = x.size(1), P.ct = ct;
  at::Tensor sx = x.to(ct).sum(0);
  if (!P.self) sx = sx + y.to(ct).sum(0);
  const int64_t cnt = P.self ? P.n : P.n + P.m;
  P.mean = cnt > 0 ? sx / double(cnt) : sx;
  P.xa = augment(x, P.mean, ct);
  P.ya = P.self ? P.xa : augment(y, P.mean, ct);
  P.xc = P.xa.narrow(1, 0, P.d), P.yc = P.ya.narrow(1, 0, P.d);
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

// f (s_i a_i - t_i) for acc = [t | s] (a GEMM against a ones-augmented matrix): the form of every gradient here.
at::Tensor combine(const at::Tensor& acc, const at::Tensor& a, int64_t d, double f) {
  return at::mul(acc.narrow(1, 0, d), -f).addcmul_(a, acc.narrow(1, d, 1), f);  // one n x d allocation: the result
}

template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor> kernel_sum_impl(const at::Tensor& x, const c10::optional<at::Tensor>& y,
                                                               const Mixture<T>& mix, bool diagonal, bool grad_x,
                                                               bool grad_y) {
  const Points P = centre(x, y, c10::CppTypeToScalarType<T>::value);
  grad_y = grad_y && !P.self;
  const bool want_c = grad_x || grad_y;
  // [C Y | rowsum C] per x row and [C^T X | colsum C] per y row (self-sum: both into acc_x)
  at::Tensor acc_x = grad_x ? at::zeros({P.n, P.d + 1}, P.xa.options()) : at::Tensor();
  at::Tensor acc_y = grad_y ? at::zeros({P.m, P.d + 1}, P.xa.options()) : at::Tensor();
  at::Tensor buf = at::empty({std::min(P.n, kTile) * std::min(P.m, kTile)}, P.xa.options());
  const T* nx = P.nx.data_ptr<T>();
  const T* ny = P.ny.data_ptr<T>();
  double total = 0.0;
  walk_tiles(P, [&](int64_t i0, int64_t bi, int64_t j0, int64_t bj, bool diag_tile) {
    at::Tensor tile = buf.narrow(0, 0, bi * bj).view({bi, bj});
    at::mm_out(tile, P.xc.narrow(0, i0, bi), P.yc.narrow(0, j0, bj).t());
    T* d = tile.data_ptr<T>();
    const double s = want_c ? tile_pass<T, 1>(d, nullptr, bi, bj, nx + i0, ny + j0, nullptr, nullptr, mix, diag_tile,
                                              diagonal)
                            : tile_pass<T, 0>(d, nullptr, bi, bj, nx + i0, ny + j0, nullptr, nullptr, mix, diag_tile,
                                              diagonal);
    total += (P.self && !diag_tile) ? 2.0 * s : s;
    if (grad_x) acc_x.narrow(0, i0, bi).addmm_(tile, P.ya.narrow(0, j0, bj));
    if (grad_x && P.self && !diag_tile) acc_x.narrow(0, j0, bj).addmm_(tile.t(), P.xa.narrow(0, i0, bi));
    if (grad_y) acc_y.narrow(0, j0, bj).addmm_(tile.t(), P.xa.narrow(0, i0, bi));
  });
  // dS/dx_i = f (rowsum_i x_i - (C Y)_i), f = 2 (4 for a self-sum: x_i is on both sides of its pairs)
  at::Tensor gx = grad_x ? combine(acc_x, P.xc, P.d, P.self ? 4.0 : 2.0).to(x.scalar_type()) : x.new_empty({0});
  at::Tensor gy = grad_y ? combine(acc_y, P.yc, P.d, 2.0).to(x.scalar_type()) : x.new_empty({0});
  at::Tensor value = at::scalar_tensor(total, x.options().dtype(at::kDouble)).to(x.scalar_type());
  return {value, gx, gy};
}

// d/d(x, y) of <u, dS/dx> + <v, dS/dy>. With c = k'(r2), h = k''(r2), delta_ij = x_i - y_j and
// q_ij = h_ij (u_i - v_j).delta_ij:  <u, dS/dx> + <v, dS/dy> = 2 sum_ij c_ij (u_i - v_j).delta_ij, so
//   d/dx_i = 2 [rowsum(C)_i u_i - (C V)_i + 2 (rowsum(Q)_i x_i - (Q Y)_i)]
//   d/dy_j = 2 [colsum(C)_j v_j - (C^T U)_j + 2 (colsum(Q)_j y_j - (Q^T X)_j)]
// (self-sum: v = u, y = x, factor 4). Per tile: D = X Y^T and E = U Y^T + X V^T in one GEMM over [U | X] [Y | V]^T.
template <typename T>
std::tuple<at::Tensor, at::Tensor> kernel_sum_backward2_impl(const at::Tensor& x, const c10::optional<at::Tensor>& y,
                                                             const at::Tensor& u, const at::Tensor& v,
                                                             const Mixture<T>& mix, bool grad_x, bool grad_y) {
  const Points P = centre(x, y, c10::CppTypeToScalarType<T>::value);
  grad_y = grad_y && !P.self;
  const at::Tensor uc = u.to(P.ct), vc = P.self ? uc : v.to(P.ct);
  const at::Tensor ua = at::cat({uc, at::ones({P.n, 1}, P.xa.options())}, 1);
  const at::Tensor va = P.self ? ua : at::cat({vc, at::ones({P.m, 1}, P.xa.options())}, 1);
  const at::Tensor ux_cat = at::cat({uc, P.xc}, 1), yv_cat = at::cat({P.yc, vc}, 1);
  const at::Tensor ux = (uc * P.xc).sum(1).contiguous();
  const at::Tensor vy = P.self ? ux : (vc * P.yc).sum(1).contiguous();
  const bool any = grad_x || grad_y;
  at::Tensor ax1, ax2, ay1, ay2;  // [C V | rowsum C], [Q Y | rowsum Q], [C^T U | colsum C], [Q^T X | colsum Q]
  if (grad_x) ax1 = at::zeros({P.n, P.d + 1}, P.xa.options()), ax2 = at::zeros_like(ax1);
  if (grad_y) ay1 = at::zeros({P.m, P.d + 1}, P.xa.options()), ay2 = at::zeros_like(ay1);
  const int64_t cap = std::min(P.n, kTile) * std::min(P.m, kTile);
  at::Tensor buf = at::empty({2 * cap}, P.xa.options());
  const T* nx = P.nx.data_ptr<T>();
  const T* ny = P.ny.data_ptr<T>();
  if (any) {
    walk_tiles(P, [&](int64_t i0, int64_t bi, int64_t j0, int64_t bj, bool diag_tile) {
      at::Tensor dt = buf.narrow(0, 0, bi * bj).view({bi, bj});
      at::Tensor et = buf.narrow(0, cap, bi * bj).view({bi, bj});
      at::mm_out(dt, P.xc.narrow(0, i0, bi), P.yc.narrow(0, j0, bj).t());
      at::mm_out(et, ux_cat.narrow(0, i0, bi), yv_cat.narrow(0, j0, bj).t());
      tile_pass<T, 2>(dt.data_ptr<T>(), et.data_ptr<T>(), bi, bj, nx + i0, ny + j0, ux.data_ptr<T>() + i0,
                      vy.data_ptr<T>() + j0, mix, diag_tile, true);
      if (grad_x) {
        ax1.narrow(0, i0, bi).addmm_(dt, va.narrow(0, j0, bj));
        ax2.narrow(0, i0, bi).addmm_(et, P.ya.narrow(0, j0, bj));
        if (P.self && !diag_tile) {
          ax1.narrow(0, j0, bj).addmm_(dt.t(), ua.narrow(0, i0, bi));
          ax2.narrow(0, j0, bj).addmm_(et.t(), P.xa.narrow(0, i0, bi));
        }
      }
      if (grad_y) {
        ay1.narrow(0, j0, bj).addmm_(dt.t(), ua.narrow(0, i0, bi));
        ay2.narrow(0, j0, bj).addmm_(et.t(), P.xa.narrow(0, i0, bi));
      }
    });
  }
  const double f = P.self ? 4.0 : 2.0;
  at::Tensor dx = grad_x ? (combine(ax1, uc, P.d, f) + combine(ax2, P.xc, P.d, 2.0 * f)).to(x.scalar_type())
                         : x.new_empty({0});
  at::Tensor dy = grad_y ? (combine(ay1, vc, P.d, 2.0) + combine(ay2, P.yc, P.d, 4.0)).to(x.scalar_type())
                         : x.new_empty({0});
  return {dx, dy};
}

struct Parsed {
  int kind;
  std::vector<double> params, weights;
};

Parsed check_kernel_sum(const at::Tensor& x, const c10::optional<at::Tensor>& y, c10::string_view kernel,
                        at::ArrayRef<double> bandwidths, at::ArrayRef<double> weights) {
  Parsed p;
  p.kind = parse_pair_kernel(std::string(kernel));
  p.params = pair_kernel_params(p.kind, bandwidths, weights);
  p.weights.assign(weights.begin(), weights.end());
  check_float_tensor(x, "x");
  TORCH_CHECK_VALUE(x.dim() == 2, "x: expected a 2-d tensor of shape (n, d), got shape ", x.sizes());
  if (y.has_value() && y->defined()) {
    check_like(*y, "y", x, "x");
    TORCH_CHECK_VALUE(y->dim() == 2 && y->size(1) == x.size(1), "y: expected a 2-d tensor of shape (m, ", x.size(1),
                      ") like x, got shape ", y->sizes());
  }
  return p;
}

template <typename T>
Mixture<T> to_mixture(const Parsed& p) {
  return Mixture<T>{p.kind, std::vector<T>(p.params.begin(), p.params.end()),
                    std::vector<T>(p.weights.begin(), p.weights.end())};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> kernel_sum_cpu(const at::Tensor& x, const c10::optional<at::Tensor>& y,
                                                              c10::string_view kernel, at::ArrayRef<double> bandwidths,
                                                              at::ArrayRef<double> weights, bool diagonal, bool grad_x,
                                                              bool grad_y) {
  const Parsed p = check_kernel_sum(x, y, kernel, bandwidths, weights);
  if (x.scalar_type() == at::kDouble) return kernel_sum_impl<double>(x, y, to_mixture<double>(p), diagonal, grad_x, grad_y);
  return kernel_sum_impl<float>(x, y, to_mixture<float>(p), diagonal, grad_x, grad_y);
}

std::tuple<at::Tensor, at::Tensor> kernel_sum_backward2_cpu(const at::Tensor& x, const c10::optional<at::Tensor>& y,
                                                            const at::Tensor& u, const c10::optional<at::Tensor>& v,
                                                            c10::string_view kernel, at::ArrayRef<double> bandwidths,
                                                            at::ArrayRef<double> weights, bool grad_x, bool grad_y) {
  const Parsed p = check_kernel_sum(x, y, kernel, bandwidths, weights);
  check_like(u, "u", x, "x");
  check_same_shape(u, "u", x, "x");
  const bool self = !(y.has_value() && y->defined());
  at::Tensor vv;
  if (!self) {
    if (v.has_value() && v->defined()) {
      check_like(*v, "v", x, "x");
      check_same_shape(*v, "v", *y, "y");
      vv = *v;
    } else {
      vv = at::zeros_like(*y);
    }
  }
  if (x.scalar_type() == at::kDouble) return kernel_sum_backward2_impl<double>(x, y, u, vv, to_mixture<double>(p), grad_x, grad_y);
  return kernel_sum_backward2_impl<float>(x, y, u, vv, to_mixture<float>(p), grad_x, grad_y);
}

}  // namespace

TORCH_LIBRARY_IMPL(fastgan, CPU, m) {
  m.impl("kernel_sum", &kernel_sum_cpu);
  m.impl("kernel_sum_backward2", &kernel_sum_backward2_cpu);
}

}  // namespace fastgan
