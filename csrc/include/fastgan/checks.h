// Argument checks shared by every fastgan op. Each message names the argument and what was expected, so a bad
// call fails with a clear RuntimeError/ValueError/TypeError in Python, never with a crash or a wrong number.
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include <string>
#include <vector>

#include "fastgan/activations.h"

namespace fastgan {

// TORCH_CHECK_VALUE -> ValueError, TORCH_CHECK_TYPE -> TypeError, TORCH_CHECK -> RuntimeError.

inline int parse_act(const std::string& name) {
  for (int i = 0; i < kNumActs; ++i) {
    if (name == kActTable[i].name) return i;
  }
  std::string valid;
  for (int i = 0; i < kNumActs; ++i) valid += std::string(i ? ", " : "") + kActTable[i].name;
  TORCH_CHECK_VALUE(false, "act: unknown activation '", name, "'; expected one of: ", valid);
  return 0;
}

// A dtype as Python spells it (torch.float32, not c10's Float): the messages read like the Python-side checks'.
inline std::string dtype_name(at::ScalarType st) {
  switch (st) {
    case at::kDouble: return "torch.float64";
    case at::kFloat: return "torch.float32";
    case at::kHalf: return "torch.float16";
    case at::kBFloat16: return "torch.bfloat16";
    case at::kLong: return "torch.int64";
    case at::kInt: return "torch.int32";
    case at::kShort: return "torch.int16";
    case at::kChar: return "torch.int8";
    case at::kByte: return "torch.uint8";
    case at::kBool: return "torch.bool";
    case at::kComplexFloat: return "torch.complex64";
    case at::kComplexDouble: return "torch.complex128";
    default: return std::string("torch.") + c10::toString(st);
  }
}

inline void check_float_tensor(const at::Tensor& t, const char* arg) {
  TORCH_CHECK_TYPE(t.defined(), arg, ": expected a tensor, got None");
  const auto st = t.scalar_type();
  TORCH_CHECK_TYPE(st == at::kDouble || st == at::kFloat || st == at::kHalf || st == at::kBFloat16, arg,
                   ": expected a floating tensor of dtype float64, float32, float16 or bfloat16, got ", dtype_name(st));
}

inline void check_like(const at::Tensor& t, const char* arg, const at::Tensor& ref, const char* ref_arg) {
  check_float_tensor(t, arg);
  TORCH_CHECK_VALUE(t.device() == ref.device(), arg, ": expected a tensor on ", ref.device(), " like ", ref_arg,
                    ", got one on ", t.device());
  TORCH_CHECK_TYPE(t.scalar_type() == ref.scalar_type(), arg, ": expected dtype ", dtype_name(ref.scalar_type()),
                   " like ", ref_arg, ", got ", dtype_name(t.scalar_type()));
}

inline void check_same_shape(const at::Tensor& t, const char* arg, const at::Tensor& ref, const char* ref_arg) {
  TORCH_CHECK_VALUE(t.sizes() == ref.sizes(), arg, ": expected shape ", ref.sizes(), " like ", ref_arg, ", got ",
                    t.sizes());
}

// Normalises dim into [0, x.dim()) and checks the bias is a vector of length x.shape[dim].
inline int64_t check_bias(const c10::optional<at::Tensor>& b, const at::Tensor& x, int64_t dim) {
  if (!b.has_value() || !b->defined()) return 0;
  check_like(*b, "b", x, "x");
  const int64_t nd = x.dim();
  TORCH_CHECK_VALUE(nd >= 1, "dim: a bias needs x with at least one dimension, got a 0-d x");
  TORCH_CHECK_VALUE(dim >= -nd && dim < nd, "dim: expected a dimension of x in [", -nd, ", ", nd - 1, "], got ", dim);
  const int64_t d = dim < 0 ? dim + nd : dim;
  TORCH_CHECK_VALUE(b->dim() == 1 && b->size(0) == x.size(d), "b: expected a vector of length x.shape[", d,
                    "] = ", x.size(d), ", got shape ", b->sizes());
  return d;
}

inline void check_act_params(int act, double alpha, double gain, double clamp) {
  TORCH_CHECK_VALUE(std::isfinite(alpha), "alpha: expected a finite number, got ", alpha);
  TORCH_CHECK_VALUE(std::isfinite(gain), "gain: expected a finite number, got ", gain);
  TORCH_CHECK_VALUE(clamp == -1.0 || (clamp >= 0.0 && !std::isnan(clamp)),
                    "clamp: expected a number >= 0 or -1 (no clamp), got ", clamp);
  (void)act;
}

// The output-as-reference mode needs an activation whose derivative is a function of its output.
inline void check_ref_is_y(int act, bool ref_is_y, double alpha, double gain) {
  if (!ref_is_y) return;
  TORCH_CHECK_VALUE(kActTable[act].y_ok && alpha >= 0.0 && gain != 0.0, "ref_is_y: activation '",
                    kActTable[act].name, "' with alpha=", alpha, ", gain=", gain,
                    " cannot be differentiated from its output; pass the input as ref (ref_is_y=False)");
}

}  // namespace fastgan
