// Device-independent half of the bias_act ops: argument checks, memory layout and output allocation.
// csrc/cpu/bias_act.cpp and csrc/cuda/bias_act.cu only supply the loops.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <tuple>

#include "fastgan/activations.h"
#include "fastgan/checks.h"

namespace fastgan {

// The channel (i / S) % C of a grid-stride walk over offsets i, i + step, i + 2 step, ...: two 64-bit divisions when
// the walk starts, then additions and compares only (a 64-bit division costs ~70 instructions on the GPU). Used by
// the CUDA kernels; host+device so that ctest checks it (csrc/tests/test_bias_act_cpu.cpp).
struct ChannelWalk {
  int64_t r, c, dr, dc, S, C;  // i = (q C + c) S + r; step = (q' C + dc) S + dr

  FG_HD ChannelWalk(int64_t i, int64_t step, int64_t S_, int64_t C_)
      : r(i % S_), c((i / S_) % C_), dr(step % S_), dc((step / S_) % C_), S(S_), C(C_) {}

  FG_HD void advance() {
    r += dr;
    c += dc;
    if (r >= S) {
      r -= S;
      ++c;
    }
    if (c >= C) c -= C;  // c + dc + 1 <= 2C - 1
  }
};

// A dense tensor seen in memory order as [O][C][S]: C = size of the bias dimension, S = its stride, so element at
// memory offset i has channel (i / S) % C. Without a bias (or with C == 1) the whole tensor is one row.
struct BiasLayout {
  int64_t O = 1, C = 1, S = 0;
};

inline at::Tensor dense(const at::Tensor& t) {
  return t.is_non_overlapping_and_dense() ? t : t.contiguous();
}

// Same strides wherever the size is > 1 (size-1 dimensions may carry any stride).
inline bool same_layout(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes()) return false;
  for (int64_t i = 0; i < a.dim(); ++i) {
    if (a.size(i) > 1 && a.stride(i) != b.stride(i)) return false;
  }
  return true;
}

inline bool all_zero_strides(const at::Tensor& t) {
  for (int64_t i = 0; i < t.dim(); ++i) {
    if (t.size(i) > 1 && t.stride(i) != 0) return false;
  }
  return true;
}

// One input of an element-wise kernel: dense with the layout of ref (inc = 1) or a single broadcast value (inc = 0,
// the expanded gradient of a sum(), which must never be materialised).
struct Operand {
  at::Tensor t;
  int64_t inc = 1;
};

inline Operand operand_like(const at::Tensor& t, const at::Tensor& ref) {
  if (same_layout(t, ref)) return {t, 1};
  if (all_zero_strides(t)) return {t, 0};
  return {at::empty_like(ref).copy_(t), 1};
}

struct BiasActArgs {
  int act = 0;
  double alpha = 0, gain = 1, clamp = -1;
  bool ref_is_y = false;
  bool bias_grad = false;
};

// Everything a kernel needs: N operands (the last is the reference: x for the forward), the bias values (if the
// computation uses them), the layout, the output and the bias-gradient output.
template <size_t N>
struct BiasActPlan {
  std::array<Operand, N> in;
  at::Tensor bias;      // defined when the element computation adds the bias (contiguous)
  BiasLayout layout;
  at::Tensor out;       // like the reference
  at::Tensor bias_sum;  // length C when args.bias_grad, else length 0
  BiasActArgs args;
};

// names[i] names inputs[i] in error messages; inputs.back() is the reference tensor.
template <size_t N>
inline BiasActPlan<N> plan_bias_act(const std::array<const char*, N>& names, const std::array<at::Tensor, N>& inputs,
                                    const c10::optional<at::Tensor>& b, int64_t dim, const std::string& act,
                                    double alpha, double gain, double clamp, bool ref_is_y, bool bias_grad,
                                    bool inplace = false) {
  BiasActPlan<N> p;
  const at::Tensor& ref_in = inputs[N - 1];
  const char* ref_name = names[N - 1];
  check_float_tensor(ref_in, ref_name);
  for (size_t i = 0; i + 1 < N; ++i) {
    check_like(inputs[i], names[i], ref_in, ref_name);
    check_same_shape(inputs[i], names[i], ref_in, ref_name);
  }
  p.args.act = parse_act(act);
  check_act_params(p.args.act, alpha, gain, clamp);
  check_ref_is_y(p.args.act, ref_is_y, alpha, gain);
  p.args.alpha = alpha;
  p.args.gain = gain;
  p.args.clamp = clamp;
  p.args.ref_is_y = ref_is_y;
  p.args.bias_grad = bias_grad;

  const bool has_b = b.has_value() && b->defined();
  int64_t d = check_bias(b, ref_in, dim);
  if (!has_b && bias_grad) {
    const int64_t nd = ref_in.dim();
    TORCH_CHECK_VALUE(nd >= 1 && dim >= -nd && dim < nd, "dim: expected a dimension of ", ref_name, " in [", -nd,
                      ", ", nd - 1, "], got ", dim);
    d = dim < 0 ? dim + nd : dim;
  }
  const bool uses_bias = has_b && !ref_is_y;  // in output-reference mode s = x + b is never formed

  const at::Tensor ref = dense(ref_in);
  p.in[N - 1] = {ref, 1};
  for (size_t i = 0; i + 1 < N; ++i) p.in[i] = operand_like(inputs[i], ref);
  if (uses_bias) p.bias = b->contiguous();
  if (inplace) {  // write over the (dense) reference itself: every kernel reads element i before writing it
    TORCH_CHECK(ref.is_same(ref_in), ref_name, ": an in-place bias_act needs a dense tensor");
    p.out = ref;
  } else {
    p.out = at::empty_like(ref);
  }

  const int64_t C = (has_b || bias_grad) ? ref.size(d) : 1;
  p.bias_sum = at::empty({bias_grad ? C : 0}, ref.options());
  p.layout.S = ref.numel();
  if ((has_b || bias_grad) && C > 1 && ref.numel() > 0) {
    p.layout.C = C;
    p.layout.S = ref.stride(d);
    p.layout.O = ref.numel() / (C * p.layout.S);
  }
  return p;
}

// In-place forward, y = clamp(act(y + b) * gain): the epilogue of ops that compute y first (joint_linear).
// Defined per device in csrc/cpu/bias_act.cpp and csrc/cuda/bias_act.cu.
void bias_act_inplace_cpu(at::Tensor& y, const c10::optional<at::Tensor>& b, int64_t dim, const std::string& act,
                          double alpha, double gain, double clamp);
void bias_act_inplace_cuda(at::Tensor& y, const c10::optional<at::Tensor>& b, int64_t dim, const std::string& act,
                           double alpha, double gain, double clamp);

}  // namespace fastgan
