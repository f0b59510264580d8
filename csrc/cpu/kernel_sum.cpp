// CPU kernel of fastgan::kernel_sum, the building block of MMD: S = sum_ij sum_s w_s k_s(|x_i - y_j|^2) and, in the
// same pass, its gradients, without ever holding the n x m kernel matrix; and of kernel_sum_backward2 (second order).
//
// The pairs are walked in tiles of at most kTile x kTile. Per tile: one GEMM D = X_I Y_J^T (BLAS), one vectorised
// pass that turns D into r2 = |x|^2 + |y|^2 - 2 D (clamped at 0), sums the kernel values (all bandwidths from the
// same r2), overwrites D with c = sum_s w_s dk_s/dr2 and sums c per row and per column; then, when gradients are
// wanted, two more GEMMs accumulate C Y_J and C^T X_I. The gradients follow as dS/dx_i = 2 (rowsum_i x_i - (C Y)_i)
// and dS/dy_j = 2 (colsum_j y_j - (C^T X)_j). Memory: O((n + m) d) plus one tile. y = None: the symmetric self-sum
// over x, upper triangle of tiles only (each off-diagonal tile counts twice); the diagonal pairs are exact zeros of
// r2 and can be left out (unbiased MMD).
//
// Cancellation in |x|^2 + |y|^2 - 2 x.y is reduced by centring both sets on their common mean first (distances are
// translation invariant); r2 is clamped at 0 and the diagonal of a self-sum is exactly 0. Compute type: fp64 for fp64,
// else fp32 (half inputs are widened once). Rows are processed in fixed blocks of kRowBlock whatever the thread
// count, and every sum runs in a fixed order: results are bitwise reproducible.
//
// poly, a kernel of the dot product t = x.y (not translation invariant: no centring), takes the same walk with t in
// place of r2: with c = sum_s w_s dk_s/dt the gradients are dS/dx_i = (C Y)_i and dS/dy_j = (C^T X)_j (2 (C X)_i for
// a self-sum), no row-sum terms; the pairs (i, i) of a self-sum count with their gradients (2 c_ii x_i) and second
// derivatives (see kernel_sum_backward2_impl).
//
// The laplacian kernels (direct differences) are csrc/cpu/kernel_sum_laplacian.cpp; the walk both files use is
// kernel_sum_walk.h. Shared with the CUDA kernels (csrc/cuda/kernel_sum.cu): the argument checks, the mixture plan and the centring
// (fastgan/kernel_sum.h) and the per-pair math (fastgan/pair_math.h, called per element from the vectorised loops below).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "fastgan/checks.h"
#include "fastgan/kernel_sum.h"
#include "fastgan/pair_kernels.h"
#include "fastgan/pair_math.h"
#include "fastgan/vec_math.h"
#include "kernel_sum_walk.h"

namespace fastgan {
namespace {

using namespace kernel_sum_walk;  // the walk shared with kernel_sum_laplacian.cpp

template <typename T>
struct RowSums {
  T val = T(0), c = T(0), q = T(0);  // of the kernel values, of c, of the second-order term q
};

// Columns [j0, j1) of one row i of a tile, as plain loops over arrays that the compiler vectorises (vec_exp and
// vec_log from vec_math.h). On entry d[j] = x_i . y_j (and, ORDER 2, e[j] = u_i . y_j + x_i . v_j);
// r2 = |x_i|^2 + |y_j|^2 - 2 d[j] clamped at 0 (NaN passes); poly: the kernel's argument is d[j] itself and
// q_ij = h_ij e_ij (below). ORDER 0: the kernel values sum_s w_s k_s(r2) only;
// 1: also d[j] = c_ij = sum_s w_s k_s'(r2); 2: d[j] = c_ij and e[j] = q_ij = h_ij (u_i - v_j).(x_i - y_j) with
// h = sum_s w_s k_s''(r2) and that dot product = ux + vy[j] - e[j] (no values). The row's c (and q) are added into
// the column sums cs1 (cs2) at [j0, j1). sc: scratch of 5 kTile values.
template <typename T, int ORDER>
RowSums<T> row_range(T* d, T* e, const T* ny, const T* vy, T nxi, T ux, int64_t j0, int64_t j1, const Mixture<T>& m,
                     T* sc, T* cs1, T* cs2) {
  const int64_t len = j1 - j0;
  T* __restrict r2 = sc;
  T* __restrict val = sc + kTile;
  T* __restrict c = sc + 2 * kTile;
  T* __restrict h = sc + 3 * kTile;
  T* __restrict ex = sc + 4 * kTile;  // the last gaussian exponential, for the squaring chain
  T* __restrict dd = d + j0;
  const T* __restrict nyy = ny + j0;
  const bool dot = is_dot_kernel(m.kernel);
  if (dot) {
    for (int64_t j = 0; j < len; ++j) r2[j] = dd[j];
  } else {
    for (int64_t j = 0; j < len; ++j) r2[j] = pair_r2(nxi, nyy[j], dd[j]);
  }
  for (int64_t j = 0; j < len; ++j) {
    val[j] = T(0);
    c[j] = T(0);
    h[j] = T(0);
  }
  // per bandwidth, one loop over the row (a kernel switch inside the loop would keep it scalar); the per-pair math
  // is pair_math.h's, forced inline, so each loop still compiles to SIMD code
  const size_t ns = m.coef.size();
  for (size_t s = 0; s < ns; ++s) {
    const PairCoef<T> k = m.coef[s];
    if (m.kernel == kGaussian) {
      const T p = k.p;
      const int steps = m.sq[s];
      if (steps < 0) {  // separate loops, each vectorised (a branch inside one loop would not be)
        for (int64_t j = 0; j < len; ++j) ex[j] = gaussian_exp(r2[j], p);
      } else {  // (e^(-p_prev r2))^(2^steps): the previous bandwidth's values, squared in place
        for (int q = 0; q < steps; ++q) {
          for (int64_t j = 0; j < len; ++j) ex[j] *= ex[j];
        }
      }
      for (int64_t j = 0; j < len; ++j) gaussian_add<ORDER>(ex[j], k, val[j], c[j], h[j]);
    } else if (m.kernel == kRationalQuadratic) {
      for (int64_t j = 0; j < len; ++j) rq_add<ORDER>(r2[j], k, val[j], c[j], h[j]);
    } else if (m.kernel == kPoly) {
      for (int64_t j = 0; j < len; ++j) poly_add<ORDER>(r2[j], k, val[j], c[j], h[j]);
    } else {
      for (int64_t j = 0; j < len; ++j) imq_add<ORDER>(r2[j], k, val[j], c[j], h[j]);
    }
  }
  RowSums<T> out;
  if constexpr (ORDER < 2) out.val = lane_sum(val, len);
  if constexpr (ORDER >= 1) {
    T* __restrict c1 = cs1 + j0;
    for (int64_t j = 0; j < len; ++j) {
      dd[j] = c[j];
      c1[j] += c[j];
    }
    out.c = lane_sum(c, len);
  }
  if constexpr (ORDER == 2) {
    T* __restrict ee = e + j0;
    T* __restrict c2 = cs2 + j0;
    const T* __restrict vyy = vy + j0;
    if (dot) {  // poly: q = h e (d/dx of c e, through t)
      for (int64_t j = 0; j < len; ++j) ee[j] = h[j] * ee[j];
    } else {
      for (int64_t j = 0; j < len; ++j) ee[j] = pair_q(h[j], ux, vyy[j], ee[j]);
    }
    for (int64_t j = 0; j < len; ++j) c2[j] += ee[j];
    out.q = lane_sum(e + j0, len);
  }
  return out;
}

// The sums a tile pass produces besides the overwritten tiles: row sums (length bi) and column sums (length bj) of c
// and q, and the total of the kernel values.
template <typename T>
struct TileSums {
  std::vector<T> rc, rq, cc, cq;
  double val = 0.0;
};

// One tile [i0, i0 + bi) x [j0, j0 + bj) held row-major in d (and e, ORDER 2). diag_tile: a tile on the diagonal of
// a self-sum (i0 == j0): its pairs (i, i) get r2 = 0 exactly, or are left out (value 0, c = 0) when !diagonal;
// ORDER 2 leaves them out for the kernels of r2 (their c and q terms vanish analytically), not for poly (its
// argument there is |x_i|^2, nx[i]).
template <typename T, int ORDER>
TileSums<T> tile_pass(T* d, T* e, int64_t bi, int64_t bj, const T* nx, const T* ny, const T* ux, const T* vy,
                      const Mixture<T>& m, bool diag_tile, bool diagonal) {
  const int64_t nblk = (bi + kRowBlock - 1) / kRowBlock;
  const bool grads = ORDER >= 1;
  std::vector<double> rows(bi, 0.0);
  TileSums<T> ts;
  ts.rc.assign(grads ? bi : 0, T(0));
  ts.rq.assign(ORDER == 2 ? bi : 0, T(0));
  std::vector<T> cs1(grads ? nblk * bj : 0, T(0)), cs2(ORDER == 2 ? nblk * bj : 0, T(0));  // per-block columns
  at::parallel_for(0, nblk, 1, [&](int64_t b0, int64_t b1) {
    std::vector<T> scratch(5 * kTile);
    T* sc = scratch.data();
    for (int64_t blk = b0; blk < b1; ++blk) {
      T* c1 = grads ? cs1.data() + blk * bj : nullptr;
      T* c2 = ORDER == 2 ? cs2.data() + blk * bj : nullptr;
      for (int64_t i = blk * kRowBlock; i < std::min(bi, (blk + 1) * kRowBlock); ++i) {
        T* row = d + i * bj;
        T* erow = ORDER == 2 ? e + i * bj : nullptr;
        const T uxi = ORDER == 2 ? ux[i] : T(0);
        RowSums<T> r;
        const bool skip_diag = diag_tile && (!diagonal || (ORDER == 2 && !is_dot_kernel(m.kernel)));
        if (diag_tile) row[i] = nx[i];  // r2 = nx + nx - 2 nx = 0 exactly (poly: t = |x_i|^2)
        if (!skip_diag) {
          r = row_range<T, ORDER>(row, erow, ny, vy, nx[i], uxi, 0, bj, m, sc, c1, c2);
        } else {
          const RowSums<T> a = row_range<T, ORDER>(row, erow, ny, vy, nx[i], uxi, 0, i, m, sc, c1, c2);
          const RowSums<T> b = row_range<T, ORDER>(row, erow, ny, vy, nx[i], uxi, i + 1, bj, m, sc, c1, c2);
          r.val = a.val + b.val, r.c = a.c + b.c, r.q = a.q + b.q;
          if constexpr (ORDER >= 1) row[i] = T(0);
          if constexpr (ORDER == 2) erow[i] = T(0);
        }
        rows[i] = r.val;
        if constexpr (ORDER >= 1) ts.rc[i] = r.c;
        if constexpr (ORDER == 2) ts.rq[i] = r.q;
      }
    }
  });
  for (double v : rows) ts.val += v;  // fixed order
  if (grads) {  // column sums: the blocks' partial sums in block order
    ts.cc.assign(bj, T(0));
    if (ORDER == 2) ts.cq.assign(bj, T(0));
    for (int64_t blk = 0; blk < nblk; ++blk) {
      for (int64_t j = 0; j < bj; ++j) ts.cc[j] += cs1[blk * bj + j];
      if (ORDER == 2) {
        for (int64_t j = 0; j < bj; ++j) ts.cq[j] += cs2[blk * bj + j];
      }
    }
  }
  return ts;
}

// v[off, off + n) += add[0, n)
template <typename T>
void add_into(at::Tensor& v, int64_t off, const std::vector<T>& add) {
  T* p = v.data_ptr<T>() + off;
  for (size_t i = 0; i < add.size(); ++i) p[i] += add[i];
}

// f (s_i a_i - t_i) for the row sums s and the accumulated products t: the form of every gradient here.
at::Tensor combine(const at::Tensor& t, const at::Tensor& s, const at::Tensor& a, double f) {
  return at::mul(t, -f).addcmul_(a, s.unsqueeze(1), f);  // one n x d allocation: the result
}

// The gradient accumulators of one side: products (n x d) and row sums (n).
struct Acc {
  at::Tensor t, s;
  Acc() = default;
  Acc(int64_t n, int64_t d, const at::TensorOptions& o) : t(at::zeros({n, d}, o)), s(at::zeros({n}, o)) {}
};

template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor> kernel_sum_impl(const at::Tensor& x, const c10::optional<at::Tensor>& y,
                                                               const Mixture<T>& mix, bool diagonal, bool grad_x,
                                                               bool grad_y) {
  const bool dot = is_dot_kernel(mix.kernel);
  const Points P = centre(x, y, c10::CppTypeToScalarType<T>::value, !dot);
  grad_y = grad_y && !P.self;
  const bool want_c = grad_x || grad_y;
  const auto o = P.xc.options();
  Acc ax = grad_x ? Acc(P.n, P.d, o) : Acc(), ay = grad_y ? Acc(P.m, P.d, o) : Acc();  // self-sum: both into ax
  at::Tensor buf = at::empty({std::min(P.n, kTile) * std::min(P.m, kTile)}, o);
  const T* nx = P.nx.data_ptr<T>();
  const T* ny = P.ny.data_ptr<T>();
  double total = 0.0;
  walk_tiles(P, [&](int64_t i0, int64_t bi, int64_t j0, int64_t bj, bool diag_tile) {
    at::Tensor tile = buf.narrow(0, 0, bi * bj).view({bi, bj});
    at::mm_out(tile, P.xc.narrow(0, i0, bi), P.yc.narrow(0, j0, bj).t());
    T* d = tile.data_ptr<T>();
    const TileSums<T> ts =
        want_c ? tile_pass<T, 1>(d, nullptr, bi, bj, nx + i0, ny + j0, nullptr, nullptr, mix, diag_tile, diagonal)
               : tile_pass<T, 0>(d, nullptr, bi, bj, nx + i0, ny + j0, nullptr, nullptr, mix, diag_tile, diagonal);
    total += (P.self && !diag_tile) ? 2.0 * ts.val : ts.val;
    if (grad_x) {
      ax.t.narrow(0, i0, bi).addmm_(tile, P.yc.narrow(0, j0, bj));
      add_into(ax.s, i0, ts.rc);
      if (P.self && !diag_tile) {  // the mirrored tile's contributions to rows j
        ax.t.narrow(0, j0, bj).addmm_(tile.t(), P.xc.narrow(0, i0, bi));
        add_into(ax.s, j0, ts.cc);
      }
    }
    if (grad_y) {
      ay.t.narrow(0, j0, bj).addmm_(tile.t(), P.xc.narrow(0, i0, bi));
      add_into(ay.s, j0, ts.cc);
    }
  });
  // dS/dx_i = f (rowsum_i x_i - (C Y)_i), f = 2 (4 for a self-sum: x_i is on both sides of its pairs);
  // poly: dS/dx_i = f (C Y)_i, f = 1 (2 for a self-sum)
  at::Tensor gx = x.new_empty({0}), gy = x.new_empty({0});
  if (dot) {
    if (grad_x) gx = (P.self ? ax.t * 2.0 : ax.t).to(x.scalar_type());
    if (grad_y) gy = ay.t.to(x.scalar_type());
  } else {
    if (grad_x) gx = combine(ax.t, ax.s, P.xc, P.self ? 4.0 : 2.0).to(x.scalar_type());
    if (grad_y) gy = combine(ay.t, ay.s, P.yc, 2.0).to(x.scalar_type());
  }
  return {value_of(total, x), gx, gy};
}

// d/d(x, y) of <u, dS/dx> + <v, dS/dy>. With c = k'(r2), h = k''(r2), delta_ij = x_i - y_j and
// q_ij = h_ij (u_i - v_j).delta_ij:  <u, dS/dx> + <v, dS/dy> = 2 sum_ij c_ij (u_i - v_j).delta_ij, so
//   d/dx_i = 2 [rowsum(C)_i u_i - (C V)_i + 2 (rowsum(Q)_i x_i - (Q Y)_i)]
//   d/dy_j = 2 [colsum(C)_j v_j - (C^T U)_j + 2 (colsum(Q)_j y_j - (Q^T X)_j)]
// (self-sum: v = u, y = x, factor 4). Per tile: D = X Y^T and E = U Y^T + X V^T in one GEMM over [U | X] [Y | V]^T.
//
// poly, with t_ij = x_i.y_j, c = k'(t), h = k''(t) and e_ij = u_i.y_j + x_i.v_j:
// <u, dS/dx> + <v, dS/dy> = sum_ij c_ij e_ij, so with q_ij = h_ij e_ij
//   d/dx_i = (Q Y)_i + (C V)_i        d/dy_j = (Q^T X)_j + (C^T U)_j
// (self-sum: v = u, y = x, both doubled: 2 (Q X + C U); the pairs (i, i) count when diagonal).
template <typename T>
std::tuple<at::Tensor, at::Tensor> kernel_sum_backward2_impl(const at::Tensor& x, const c10::optional<at::Tensor>& y,
                                                             const at::Tensor& u, const at::Tensor& v,
                                                             const Mixture<T>& mix, bool diagonal, bool grad_x,
                                                             bool grad_y) {
  const bool dot = is_dot_kernel(mix.kernel);
  const Points P = centre(x, y, c10::CppTypeToScalarType<T>::value, !dot);
  grad_y = grad_y && !P.self;
  const auto o = P.xc.options();
  const at::Tensor uc = u.to(P.ct).contiguous(), vc = P.self ? uc : v.to(P.ct).contiguous();
  const at::Tensor ux_cat = at::cat({uc, P.xc}, 1), yv_cat = at::cat({P.yc, vc}, 1);
  const at::Tensor ux = (uc * P.xc).sum(1).contiguous();
  const at::Tensor vy = P.self ? ux : (vc * P.yc).sum(1).contiguous();
  Acc ax1, ax2, ay1, ay2;  // (C V, rowsum C), (Q Y, rowsum Q), (C^T U, colsum C), (Q^T X, colsum Q)
  if (grad_x) ax1 = Acc(P.n, P.d, o), ax2 = Acc(P.n, P.d, o);
  if (grad_y) ay1 = Acc(P.m, P.d, o), ay2 = Acc(P.m, P.d, o);
  const int64_t cap = std::min(P.n, kTile) * std::min(P.m, kTile);
  at::Tensor buf = at::empty({2 * cap}, o);
  const T* nx = P.nx.data_ptr<T>();
  const T* ny = P.ny.data_ptr<T>();
  if (grad_x || grad_y) {
    walk_tiles(P, [&](int64_t i0, int64_t bi, int64_t j0, int64_t bj, bool diag_tile) {
      at::Tensor dt = buf.narrow(0, 0, bi * bj).view({bi, bj});
      at::Tensor et = buf.narrow(0, cap, bi * bj).view({bi, bj});
      at::mm_out(dt, P.xc.narrow(0, i0, bi), P.yc.narrow(0, j0, bj).t());
      at::mm_out(et, ux_cat.narrow(0, i0, bi), yv_cat.narrow(0, j0, bj).t());
      const TileSums<T> ts = tile_pass<T, 2>(dt.data_ptr<T>(), et.data_ptr<T>(), bi, bj, nx + i0, ny + j0,
                                             ux.data_ptr<T>() + i0, vy.data_ptr<T>() + j0, mix, diag_tile, diagonal);
      if (grad_x) {
        ax1.t.narrow(0, i0, bi).addmm_(dt, vc.narrow(0, j0, bj));
        ax2.t.narrow(0, i0, bi).addmm_(et, P.yc.narrow(0, j0, bj));
        add_into(ax1.s, i0, ts.rc);
        add_into(ax2.s, i0, ts.rq);
        if (P.self && !diag_tile) {
          ax1.t.narrow(0, j0, bj).addmm_(dt.t(), uc.narrow(0, i0, bi));
          ax2.t.narrow(0, j0, bj).addmm_(et.t(), P.xc.narrow(0, i0, bi));
          add_into(ax1.s, j0, ts.cc);
          add_into(ax2.s, j0, ts.cq);
        }
      }
      if (grad_y) {
        ay1.t.narrow(0, j0, bj).addmm_(dt.t(), uc.narrow(0, i0, bi));
        ay2.t.narrow(0, j0, bj).addmm_(et.t(), P.xc.narrow(0, i0, bi));
        add_into(ay1.s, j0, ts.cc);
        add_into(ay2.s, j0, ts.cq);
      }
    });
  }
  if (dot) {
    at::Tensor dx = grad_x ? ((ax1.t + ax2.t) * (P.self ? 2.0 : 1.0)).to(x.scalar_type()) : x.new_empty({0});
    at::Tensor dy = grad_y ? (ay1.t + ay2.t).to(x.scalar_type()) : x.new_empty({0});
    return {dx, dy};
  }
  const double f = P.self ? 4.0 : 2.0;
  at::Tensor dx = grad_x ? (combine(ax1.t, ax1.s, uc, f) + combine(ax2.t, ax2.s, P.xc, 2.0 * f)).to(x.scalar_type())
                         : x.new_empty({0});
  at::Tensor dy = grad_y ? (combine(ay1.t, ay1.s, vc, 2.0) + combine(ay2.t, ay2.s, P.yc, 4.0)).to(x.scalar_type())
                         : x.new_empty({0});
  return {dx, dy};
}

using Parsed = KernelSumCall;

template <typename T>
Mixture<T> to_mixture(const Parsed& p) {
  return Mixture<T>(p.kind, p.params, p.weights, p.degree, p.offset);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> kernel_sum_cpu(const at::Tensor& x, const c10::optional<at::Tensor>& y,
                                                              c10::string_view kernel, at::ArrayRef<double> bandwidths,
                                                              at::ArrayRef<double> weights, bool diagonal, bool grad_x,
                                                              bool grad_y, int64_t degree, double offset) {
  const Parsed p = check_kernel_sum(x, y, kernel, bandwidths, weights, degree, offset);
  if (is_laplacian(p.kind)) {
    if (x.scalar_type() == at::kDouble) return laplacian_impl<double>(x, y, to_mixture<double>(p), diagonal, grad_x, grad_y);
    return laplacian_impl<float>(x, y, to_mixture<float>(p), diagonal, grad_x, grad_y);
  }
  if (x.scalar_type() == at::kDouble) return kernel_sum_impl<double>(x, y, to_mixture<double>(p), diagonal, grad_x, grad_y);
  return kernel_sum_impl<float>(x, y, to_mixture<float>(p), diagonal, grad_x, grad_y);
}

std::tuple<at::Tensor, at::Tensor> kernel_sum_backward2_cpu(const at::Tensor& x, const c10::optional<at::Tensor>& y,
                                                            const at::Tensor& u, const c10::optional<at::Tensor>& v,
                                                            c10::string_view kernel, at::ArrayRef<double> bandwidths,
                                                            at::ArrayRef<double> weights, bool grad_x, bool grad_y,
                                                            bool diagonal, int64_t degree, double offset) {
  const auto [p, vv] = check_kernel_sum_backward2(x, y, u, v, kernel, bandwidths, weights, degree, offset);
  if (x.scalar_type() == at::kDouble) {
    return kernel_sum_backward2_impl<double>(x, y, u, vv, to_mixture<double>(p), diagonal, grad_x, grad_y);
  }
  return kernel_sum_backward2_impl<float>(x, y, u, vv, to_mixture<float>(p), diagonal, grad_x, grad_y);
}

}  // namespace

TORCH_LIBRARY_IMPL(fastgan, CPU, m) {
  m.impl("kernel_sum", &kernel_sum_cpu);
  m.impl("kernel_sum_backward2", &kernel_sum_backward2_cpu);
}

}  // namespace fastgan
