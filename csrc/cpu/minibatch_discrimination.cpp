// CPU kernels of fastgan::minibatch_discrimination (Salimans et al. 2016) and its backward, without the B x B x K x C tensor:
//
//   o_ik = sum_j exp(-|m_ik - r_jk|_1)     m (B, K, C); r = m (pairs within the batch) or a reference batch (R, K, C)
//
// Per kernel k (the parallel dimension: each thread owns whole k slices, so nothing is shared) the rows are
// transposed to (C, B) so that the inner loops run over j, contiguous and vectorised (vec_exp from vec_math.h).
// Within the batch the pairs are symmetric: each pair (i < j) is computed once and added to both rows; the pair (i, i)
// contributes exp(0) = 1 unless exclude_self. Backward, with g = dL/do:
//   within the batch:  dL/dm_ikc = -sum_j (g_ik + g_jk) e_ijk sign(m_ikc - m_jkc)     (each pair once, both rows)
//   reference batch:   dL/dm_ikc = -sum_j g_ik e_ijk sign(m_ikc - r_jkc),  dL/dr_jkc = +sum_i g_ik e_ijk sign(...)
// (sign(0) = 0: the least-norm subgradient at ties). Second order (the backward of the backward), with P = dL'/d(dm),
// Q = dL'/d(dr) (Q = P within the batch), u_ij = sum_c sign(m_ic - r_jc) (P_ic - Q_jc) and w_ij = g_i (+ g_j within
// the batch); sign' = 0 almost everywhere, so only e_ij is differentiated again:
//   dL'/dg_i = -sum_j e_ij u_ij (within the batch the pair also adds to row j: u and e are symmetric there)
//   dL'/dm_ic = sum_j w_ij e_ij u_ij sign(m_ic - r_jc),   dL'/d(r or m)_jc = -sum_i w_ij e_ij u_ij sign(m_ic - r_jc)
// Memory O((B + R) K C) plus O(B) scratch per thread.
// Compute type fp64 for fp64, else fp32; sums run in a fixed order (results do not depend on the thread count).
// The argument checks and the per-pair math (|a - b|, exp(-d), the sign terms) are fastgan/minibatch_discrimination.h, shared
// with csrc/cuda/minibatch_discrimination.cu.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

#include "fastgan/checks.h"
#include "fastgan/minibatch_discrimination.h"
#include "fastgan/vec_math.h"

namespace fastgan {
namespace {

// e[j] = exp(-sum_c |mi[c] - rt[c * ld + j]|) for j in [0, n): mi the C values of one row, rt the (C, ld) transposed
// other side, already offset to the first column.
template <typename T>
void pair_exp(const T* mi, const T* rt, int64_t ld, int64_t C, int64_t n, T* __restrict e) {
  for (int64_t j = 0; j < n; ++j) e[j] = T(0);
  for (int64_t c = 0; c < C; ++c) {
    const T v = mi[c];
    const T* __restrict r = rt + c * ld;
    for (int64_t j = 0; j < n; ++j) e[j] += md_abs_diff(v, r[j]);
  }
  for (int64_t j = 0; j < n; ++j) e[j] = md_pair_exp(e[j]);
}

// One pass over j for one feature c: t_j = w_j sign(v - r_j); col_j += t_j (the other side's gradient); returns
// sum_j t_j (in kLanes partial sums, like lane_sum: vectorised, fixed order).
template <typename T>
T signed_pass(T v, const T* __restrict r, const T* __restrict w, int64_t n, T* __restrict col) {
  T acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const T t = md_signed(w[j + l], v, r[j + l]);
      acc[l] += t;
      col[j + l] += t;
    }
  }
  for (; j < n; ++j) {
    const T t = md_signed(w[j], v, r[j]);
    acc[j % kLanes] += t;
    col[j] += t;
  }
  T total = T(0);
  for (int l = 0; l < kLanes; ++l) total += acc[l];
  return total;
}

// The layouts the walks read, in the compute type T: m transposed per kernel (K, C, B), the other side likewise
// (K, C, R; the same tensor within the batch) and m by rows (K, B, C).
template <typename T>
struct Layout {
  bool self;
  int64_t B, K, C, R;
  at::Tensor mt, rt, mr;
  Layout(const at::Tensor& m, const c10::optional<at::Tensor>& ref) {
    const at::ScalarType ct = c10::CppTypeToScalarType<T>::value;
    self = !(ref.has_value() && ref->defined());
    B = m.size(0), K = m.size(1), C = m.size(2);
    mt = m.to(ct).permute({1, 2, 0}).contiguous();
    rt = self ? mt : ref->to(ct).permute({1, 2, 0}).contiguous();
    mr = m.to(ct).permute({1, 0, 2}).contiguous();
    R = rt.size(2);
  }
};

template <typename T>
at::Tensor forward_impl(const at::Tensor& m, const c10::optional<at::Tensor>& ref, bool exclude_self) {
  const at::ScalarType ct = c10::CppTypeToScalarType<T>::value;
  const Layout<T> L(m, ref);
  const bool self = L.self;
  const int64_t B = L.B, K = L.K, C = L.C, R = L.R;
  at::Tensor ok = at::zeros({K, B}, m.options().dtype(ct));
  const T* pmt = L.mt.template data_ptr<T>();
  const T* prt = L.rt.template data_ptr<T>();
  const T* pmr = L.mr.template data_ptr<T>();
  T* pok = ok.data_ptr<T>();
  at::parallel_for(0, K, 1, [&](int64_t k0, int64_t k1) {
    std::vector<T> e(std::max<int64_t>(B, R));
    for (int64_t k = k0; k < k1; ++k) {
      T* o = pok + k * B;
      for (int64_t i = 0; i < B; ++i) {
        const T* mi = pmr + (k * B + i) * C;
        if (self) {  // the pairs (i, j > i), added to both rows
          const int64_t n = B - i - 1;
          pair_exp(mi, pmt + k * C * B + i + 1, B, C, n, e.data());
          o[i] += lane_sum(e.data(), n) + (exclude_self ? T(0) : T(1));
          T* __restrict oj = o + i + 1;
          for (int64_t j = 0; j < n; ++j) oj[j] += e[j];
        } else {
          pair_exp(mi, prt + k * C * R, R, C, R, e.data());
          o[i] = lane_sum(e.data(), R);
        }
      }
    }
  });
  return ok.t().to(m.scalar_type()).contiguous();
}

template <typename T>
std::tuple<at::Tensor, at::Tensor> backward_impl(const at::Tensor& grad, const at::Tensor& m,
                                                 const c10::optional<at::Tensor>& ref) {
  const at::ScalarType ct = c10::CppTypeToScalarType<T>::value;
  const Layout<T> L(m, ref);
  const bool self = L.self;
  const int64_t B = L.B, K = L.K, C = L.C, R = L.R;
  const at::Tensor gt = grad.to(ct).t().contiguous();                                 // (K, B)
  at::Tensor dmt = at::zeros({K, C, B}, L.mt.options());  // dL/dm, transposed like mt
  at::Tensor drt = at::zeros({K, C, self ? 0 : R}, L.mt.options());
  const T* pmt = L.mt.template data_ptr<T>();
  const T* prt = L.rt.template data_ptr<T>();
  const T* pmr = L.mr.template data_ptr<T>();
  const T* pg = gt.data_ptr<T>();
  T* pdm = dmt.data_ptr<T>();
  T* pdr = self ? nullptr : drt.data_ptr<T>();
  at::parallel_for(0, K, 1, [&](int64_t k0, int64_t k1) {
    const int64_t n_max = std::max<int64_t>(B, R);
    std::vector<T> e(n_max);
    for (int64_t k = k0; k < k1; ++k) {
      const T* g = pg + k * B;
      for (int64_t i = 0; i < B; ++i) {
        const T* mi = pmr + (k * B + i) * C;
        const int64_t j0 = self ? i + 1 : 0, n = self ? B - i - 1 : R;
        const T* other = self ? pmt + k * C * B + j0 : prt + k * C * R;
        const int64_t ld = self ? B : R;
        pair_exp(mi, other, ld, C, n, e.data());
        if (self) {  // w_ij = (g_i + g_j) e_ij
          const T* __restrict gj = g + j0;
          for (int64_t j = 0; j < n; ++j) e[j] *= g[i] + gj[j];
        } else {
          for (int64_t j = 0; j < n; ++j) e[j] *= g[i];
        }
        for (int64_t c = 0; c < C; ++c) {
          pdm[(k * C + c) * B + i] -= signed_pass(mi[c], other + c * ld, e.data(), n,
                                                  self ? pdm + (k * C + c) * B + j0 : pdr + (k * C + c) * R);
        }
      }
    }
  });
  at::Tensor dm = dmt.permute({2, 0, 1}).to(m.scalar_type()).contiguous();
  at::Tensor dr = self ? m.new_empty({0}) : drt.permute({2, 0, 1}).to(m.scalar_type()).contiguous();
  return {dm, dr};
}

template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor> backward2_impl(const at::Tensor& ggm,
                                                              const c10::optional<at::Tensor>& ggr,
                                                              const at::Tensor& grad, const at::Tensor& m,
                                                              const c10::optional<at::Tensor>& ref) {
  const at::ScalarType ct = c10::CppTypeToScalarType<T>::value;
  const Layout<T> L(m, ref);
  const bool self = L.self;
  const int64_t B = L.B, K = L.K, C = L.C, R = L.R;
  const at::Tensor pr = ggm.to(ct).permute({1, 0, 2}).contiguous();                  // (K, B, C): P by rows
  const at::Tensor qt = (self ? ggm : *ggr).to(ct).permute({1, 2, 0}).contiguous();  // (K, C, B or R): Q like rt
  const at::Tensor gt = grad.to(ct).t().contiguous();                                 // (K, B)
  at::Tensor dgt = at::zeros({K, B}, L.mt.options());
  at::Tensor dmt = at::zeros({K, C, B}, L.mt.options());
  at::Tensor drt = at::zeros({K, C, self ? 0 : R}, L.mt.options());
  const T* pmt = L.mt.template data_ptr<T>();
  const T* prt = L.rt.template data_ptr<T>();
  const T* pmr = L.mr.template data_ptr<T>();
  const T* ppr = pr.data_ptr<T>();
  const T* pqt = qt.data_ptr<T>();
  const T* pg = gt.data_ptr<T>();
  T* pdg = dgt.data_ptr<T>();
  T* pdm = dmt.data_ptr<T>();
  T* pdr = self ? nullptr : drt.data_ptr<T>();
  at::parallel_for(0, K, 1, [&](int64_t k0, int64_t k1) {
    const int64_t n_max = std::max<int64_t>(B, R);
    std::vector<T> e(n_max), u(n_max);
    for (int64_t k = k0; k < k1; ++k) {
      const T* g = pg + k * B;
      T* dg = pdg + k * B;
      for (int64_t i = 0; i < B; ++i) {
        const T* mi = pmr + (k * B + i) * C;
        const T* pi = ppr + (k * B + i) * C;
        const int64_t j0 = self ? i + 1 : 0, n = self ? B - i - 1 : R, ld = self ? B : R;
        const T* other = (self ? pmt + k * C * B : prt + k * C * R) + j0;
        const T* q = pqt + k * C * ld + j0;
        pair_exp(mi, other, ld, C, n, e.data());
        for (int64_t j = 0; j < n; ++j) u[j] = T(0);
        for (int64_t c = 0; c < C; ++c) {  // u_ij
          const T v = mi[c], p = pi[c];
          const T* __restrict r = other + c * ld;
          const T* __restrict qc = q + c * ld;
          for (int64_t j = 0; j < n; ++j) u[j] += md_u_term(v, r[j], p, qc[j]);
        }
        for (int64_t j = 0; j < n; ++j) u[j] *= e[j];  // e_ij u_ij
        dg[i] -= lane_sum(u.data(), n);
        if (self) {
          T* __restrict dgj = dg + j0;
          const T* __restrict gj = g + j0;
          for (int64_t j = 0; j < n; ++j) {
            dgj[j] -= u[j];
            e[j] = -(g[i] + gj[j]) * u[j];  // -w_ij e_ij u_ij: signed_pass adds its weights to the other side
          }
        } else {
          for (int64_t j = 0; j < n; ++j) e[j] = -g[i] * u[j];
        }
        for (int64_t c = 0; c < C; ++c) {
          pdm[(k * C + c) * B + i] -= signed_pass(mi[c], other + c * ld, e.data(), n,
                                                  self ? pdm + (k * C + c) * B + j0 : pdr + (k * C + c) * R);
        }
      }
    }
  });
  return {dgt.t().to(grad.scalar_type()).contiguous(), dmt.permute({2, 0, 1}).to(m.scalar_type()).contiguous(),
          self ? m.new_empty({0}) : drt.permute({2, 0, 1}).to(ref->scalar_type()).contiguous()};
}

at::Tensor minibatch_discrimination_cpu(const at::Tensor& m, const c10::optional<at::Tensor>& ref, bool exclude_self) {
  check_minibatch_discrimination(m, ref, exclude_self);
  if (m.scalar_type() == at::kDouble) return forward_impl<double>(m, ref, exclude_self);
  return forward_impl<float>(m, ref, exclude_self);
}

std::tuple<at::Tensor, at::Tensor> minibatch_discrimination_backward_cpu(const at::Tensor& grad, const at::Tensor& m,
                                                               const c10::optional<at::Tensor>& ref,
                                                               bool exclude_self) {
  check_minibatch_discrimination_backward(grad, m, ref, exclude_self);
  if (m.scalar_type() == at::kDouble) return backward_impl<double>(grad, m, ref);
  return backward_impl<float>(grad, m, ref);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> minibatch_discrimination_backward2_cpu(
    const at::Tensor& ggm, const c10::optional<at::Tensor>& ggr, const at::Tensor& grad, const at::Tensor& m,
    const c10::optional<at::Tensor>& ref, bool exclude_self) {
  check_minibatch_discrimination_backward2(ggm, ggr, grad, m, ref, exclude_self);
  if (m.scalar_type() == at::kDouble) return backward2_impl<double>(ggm, ggr, grad, m, ref);
  return backward2_impl<float>(ggm, ggr, grad, m, ref);
}

}  // namespace

TORCH_LIBRARY_IMPL(fastgan, CPU, m) {
  m.impl("minibatch_discrimination", &minibatch_discrimination_cpu);
  m.impl("minibatch_discrimination_backward", &minibatch_discrimination_backward_cpu);
  m.impl("minibatch_discrimination_backward2", &minibatch_discrimination_backward2_cpu);
}

}  // namespace fastgan
