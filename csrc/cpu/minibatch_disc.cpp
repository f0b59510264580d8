// CPU kernels of fastgan::minibatch_disc (Salimans et al. 2016) and its backward, without the B x B x K x C tensor:
//
//   o_ik = sum_j exp(-|m_ik - r_jk|_1)     m (B, K, C); r = m (pairs within the batch) or a reference batch (R, K, C)
//
// Per kernel k (the parallel dimension: each thread owns whole k slices, so nothing is shared) the rows are
// transposed to (C, B) so that the inner loops run over j, contiguous and vectorised (vec_exp from vec_math.h).
// Within the batch the pairs are symmetric: each pair (i < j) is computed once and added to both rows; the pair (i, i)
// contributes exp(0) = 1 unless exclude_self. Backward, with g = dL/do:
//   within the batch:  dL/dm_ikc = -sum_j (g_ik + g_jk) e_ijk sign(m_ikc - m_jkc)     (each pair once, both rows)
//   reference batch:   dL/dm_ikc = -sum_j g_ik e_ijk sign(m_ikc - r_jkc),  dL/dr_jkc = +sum_i g_ik e_ijk sign(...)
// (sign(0) = 0: the least-norm subgradient at ties). Memory O((B + R) K C) plus O(B) scratch per thread.
// Compute type fp64 for fp64, else fp32; sums run in a fixed order (results do not depend on the thread count).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

#include "fastgan/checks.h"
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
    for (int64_t j = 0; j < n; ++j) e[j] += std::abs(v - r[j]);
  }
  for (int64_t j = 0; j < n; ++j) e[j] = vec_exp(-e[j]);
}

// One pass over j for one feature c: t_j = w_j sign(v - r_j); col_j += t_j (the other side's gradient); returns
// sum_j t_j (in kLanes partial sums, like lane_sum: vectorised, fixed order).
template <typename T>
T signed_pass(T v, const T* __restrict r, const T* __restrict w, int64_t n, T* __restrict col) {
  T acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const T df = v - r[j + l];
      const T t = w[j + l] * T((df > T(0)) - (df < T(0)));
      acc[l] += t;
      col[j + l] += t;
    }
  }
  for (; j < n; ++j) {
    const T df = v - r[j];
    const T t = w[j] * T((df > T(0)) - (df < T(0)));
    acc[j % kLanes] += t;
    col[j] += t;
  }
  T total = T(0);
  for (int l = 0; l < kLanes; ++l) total += acc[l];
  return total;
}

void check_md(const at::Tensor& m, const c10::optional<at::Tensor>& ref, bool exclude_self) {
  check_float_tensor(m, "m");
  TORCH_CHECK_VALUE(m.dim() == 3, "m: expected a 3-d tensor of shape (batch, kernels K, kernel_dim C), got shape ",
                    m.sizes());
  if (ref.has_value() && ref->defined()) {
    check_like(*ref, "reference", m, "m");
    TORCH_CHECK_VALUE(ref->dim() == 3 && ref->size(1) == m.size(1) && ref->size(2) == m.size(2),
                      "reference: expected shape (R, ", m.size(1), ", ", m.size(2), ") like m, got ", ref->sizes());
    TORCH_CHECK_VALUE(!exclude_self, "exclude_self: applies to the pairs within the batch (reference=None); a "
                      "reference batch has no self pairs");
  }
}

template <typename T>
at::Tensor forward_impl(const at::Tensor& m, const c10::optional<at::Tensor>& ref, bool exclude_self) {
  const at::ScalarType ct = c10::CppTypeToScalarType<T>::value;
  const bool self = !(ref.has_value() && ref->defined());
  const int64_t B = m.size(0), K = m.size(1), C = m.size(2);
  const at::Tensor mt = m.to(ct).permute({1, 2, 0}).contiguous();                    // (K, C, B)
  const at::Tensor rt = self ? mt : ref->to(ct).permute({1, 2, 0}).contiguous();    // (K, C, R)
  const at::Tensor mr = m.to(ct).permute({1, 0, 2}).contiguous();                    // (K, B, C): rows of one k
  const int64_t R = rt.size(2);
  at::Tensor ok = at::zeros({K, B}, m.options().dtype(ct));
  const T* pmt = mt.data_ptr<T>();
  const T* prt = rt.data_ptr<T>();
  const T* pmr = mr.data_ptr<T>();
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
  const bool self = !(ref.has_value() && ref->defined());
  const int64_t B = m.size(0), K = m.size(1), C = m.size(2);
  const at::Tensor mt = m.to(ct).permute({1, 2, 0}).contiguous();                    // (K, C, B)
  const at::Tensor rt = self ? mt : ref->to(ct).permute({1, 2, 0}).contiguous();    // (K, C, R)
  const at::Tensor mr = m.to(ct).permute({1, 0, 2}).contiguous();                    // (K, B, C)
  const at::Tensor gt = grad.to(ct).t().contiguous();                                 // (K, B)
  const int64_t R = rt.size(2);
  at::Tensor dmt = at::zeros({K, C, B}, mt.options());  // dL/dm, transposed like mt
  at::Tensor drt = at::zeros({K, C, self ? 0 : R}, mt.options());
  const T* pmt = mt.data_ptr<T>();
  const T* prt = rt.data_ptr<T>();
  const T* pmr = mr.data_ptr<T>();
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

at::Tensor minibatch_disc_cpu(const at::Tensor& m, const c10::optional<at::Tensor>& ref, bool exclude_self) {
  check_md(m, ref, exclude_self);
  if (m.scalar_type() == at::kDouble) return forward_impl<double>(m, ref, exclude_self);
  return forward_impl<float>(m, ref, exclude_self);
}

std::tuple<at::Tensor, at::Tensor> minibatch_disc_backward_cpu(const at::Tensor& grad, const at::Tensor& m,
                                                               const c10::optional<at::Tensor>& ref,
                                                               bool exclude_self) {
  check_md(m, ref, exclude_self);
  check_like(grad, "grad", m, "m");
  TORCH_CHECK_VALUE(grad.dim() == 2 && grad.size(0) == m.size(0) && grad.size(1) == m.size(1), "grad: expected shape (",
                    m.size(0), ", ", m.size(1), "), got ", grad.sizes());
  if (m.scalar_type() == at::kDouble) return backward_impl<double>(grad, m, ref);
  return backward_impl<float>(grad, m, ref);
}

}  // namespace

TORCH_LIBRARY_IMPL(fastgan, CPU, m) {
  m.impl("minibatch_disc", &minibatch_disc_cpu);
  m.impl("minibatch_disc_backward", &minibatch_disc_backward_cpu);
}

}  // namespace fastgan
