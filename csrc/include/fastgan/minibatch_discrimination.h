// The device-independent half of the minibatch discrimination ops (fastgan::minibatch_discrimination, _backward, _backward2):
// the argument checks of the three ops and the per-pair math, shared by csrc/cpu/minibatch_discrimination.cpp and
// csrc/cuda/minibatch_discrimination.cu (csrc/tests/test_minibatch_discrimination_math_cpu.cpp tests the math in fp64).
//
// One pair (i, j) of one kernel slice k, a = m[i, k, :], b = r[j, k, :] (C values each):
//   d = sum_c |a_c - b_c|,   e = exp(-d)                                        (md_abs_diff, md_pair_exp)
//   de/da_c = -e sign(a_c - b_c),   de/db_c = +e sign(a_c - b_c)               (md_signed, sign(0) = 0)
//   u = sum_c sign(a_c - b_c) (p_c - q_c)   (p, q: the incoming gradients of da, db in the second order)
//   d(-e u)/da_c = e u sign(a_c - b_c)      (sign' = 0 almost everywhere: only e is differentiated again)
// The sums over pairs and the weights g live in the device files.
#pragma once

#include <ATen/ATen.h>

#include <cmath>

#include "fastgan/activations.h"  // FG_HD (host + device, forced inline) and, on the host, vec_math.h
#include "fastgan/checks.h"

namespace fastgan {

// ---- per-pair math (host and device) ----

// sign(d) in {-1, 0, +1}; 0 for d == 0 (the least-norm subgradient of |d| at a tie) and for NaN.
template <typename T>
FG_HD T md_sign(T d) {
  return T((d > T(0)) - (d < T(0)));
}

FG_HD float md_abs_diff(float a, float b) { return ::fabsf(a - b); }
FG_HD double md_abs_diff(double a, double b) { return ::fabs(a - b); }

// e = exp(-d) of the l1 distance d. On the host the vectorisable vec_exp (the CPU kernel's loops over j stay SIMD),
// on the device libdevice's expf / exp.
FG_HD float md_pair_exp(float d) {
#if defined(__CUDACC__) || defined(__HIPCC__)
  return ::expf(-d);
#else
  return vec_exp(-d);
#endif
}
FG_HD double md_pair_exp(double d) {
#if defined(__CUDACC__) || defined(__HIPCC__)
  return ::exp(-d);
#else
  return vec_exp(-d);
#endif
}

// w sign(a - b): one feature's term of a gradient sum, w the pair's weight (e.g. -g e for de/da contracted with g).
template <typename T>
FG_HD T md_signed(T w, T a, T b) {
  return w * md_sign(a - b);
}

// sign(a - b) (p - q): one feature's term of u.
template <typename T>
FG_HD T md_u_term(T a, T b, T p, T q) {
  return md_sign(a - b) * (p - q);
}

// ---- argument checks (one set of messages for every device) ----

inline bool md_has(const c10::optional<at::Tensor>& t) { return t.has_value() && t->defined(); }

// The compute type: fp64 for fp64, else fp32 (fp16 / bf16 are read and written in their dtype, summed in fp32).
inline at::ScalarType md_compute_type(at::ScalarType st) { return st == at::kDouble ? at::kDouble : at::kFloat; }

inline void check_minibatch_discrimination(const at::Tensor& m, const c10::optional<at::Tensor>& ref, bool exclude_self) {
  check_float_tensor(m, "m");
  TORCH_CHECK_VALUE(m.dim() == 3, "m: expected a 3-d tensor of shape (batch, kernels K, kernel_dim C), got shape ",
                    m.sizes());
  if (md_has(ref)) {
    check_like(*ref, "reference", m, "m");
    TORCH_CHECK_VALUE(ref->dim() == 3 && ref->size(1) == m.size(1) && ref->size(2) == m.size(2),
                      "reference: expected shape (R, ", m.size(1), ", ", m.size(2), ") like m, got ", ref->sizes());
    TORCH_CHECK_VALUE(!exclude_self, "exclude_self: applies to the pairs within the batch (reference=None); a "
                      "reference batch has no self pairs");
  }
}

// minibatch_discrimination_backward: the forward's checks and grad = dL/do of shape (B, K).
inline void check_minibatch_discrimination_backward(const at::Tensor& grad, const at::Tensor& m,
                                          const c10::optional<at::Tensor>& ref, bool exclude_self) {
  check_minibatch_discrimination(m, ref, exclude_self);
  check_like(grad, "grad", m, "m");
  TORCH_CHECK_VALUE(grad.dim() == 2 && grad.size(0) == m.size(0) && grad.size(1) == m.size(1), "grad: expected shape (",
                    m.size(0), ", ", m.size(1), "), got ", grad.sizes());
}

// minibatch_discrimination_backward2: the backward's checks, ggm like m, ggr like ref (None within the batch).
inline void check_minibatch_discrimination_backward2(const at::Tensor& ggm, const c10::optional<at::Tensor>& ggr,
                                           const at::Tensor& grad, const at::Tensor& m,
                                           const c10::optional<at::Tensor>& ref, bool exclude_self) {
  check_minibatch_discrimination_backward(grad, m, ref, exclude_self);
  check_like(ggm, "ggm", m, "m");
  TORCH_CHECK_VALUE(ggm.sizes() == m.sizes(), "ggm: expected shape ", m.sizes(), " like m, got ", ggm.sizes());
  const bool self = !md_has(ref);
  const bool has_ggr = md_has(ggr);
  TORCH_CHECK_VALUE(self != has_ggr, "ggr: expected ", self ? "None within the batch (ref None)" :
                    "a tensor like ref", ", got ", has_ggr ? "a tensor" : "None");
  if (has_ggr) {
    check_like(*ggr, "ggr", m, "m");
    TORCH_CHECK_VALUE(ggr->sizes() == ref->sizes(), "ggr: expected shape ", ref->sizes(), " like ref, got ",
                      ggr->sizes());
  }
}

}  // namespace fastgan
