// The BiGAN joint discriminator layer y = act(x W^T + z U^T + b) * gain, device-independent: both GEMMs accumulate
// into one output buffer (no concatenation, no temporaries), then one in-place bias + activation pass (the
// device's bias_act kernel). csrc/cpu/joint_linear.cpp and csrc/cuda/joint_linear.cu register it per device.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "fastgan/bias_act.h"
#include "fastgan/checks.h"

namespace fastgan {

inline void check_matrix(const at::Tensor& t, const char* arg, const char* shape) {
  TORCH_CHECK_VALUE(t.dim() == 2, arg, ": expected a 2-d tensor of shape ", shape, ", got shape ", t.sizes());
}

// The activations whose derivative is exact from the output in every dtype (only the output's sign matters).
inline int check_joint_act(const std::string& act, double alpha, double gain) {
  const int a = parse_act(act);
  TORCH_CHECK_VALUE(a == kLinear || a == kRelu || a == kLrelu, "act: joint_linear supports 'linear', 'relu' and ",
                    "'lrelu', got '", act, "' (use a linear layer followed by fastgan.bias_act for others)");
  TORCH_CHECK_VALUE(std::isfinite(alpha) && alpha >= 0.0, "alpha: expected a finite number >= 0, got ", alpha);
  TORCH_CHECK_VALUE(std::isfinite(gain) && gain != 0.0, "gain: expected a finite non-zero number, got ", gain);
  return a;
}

template <typename Epilogue>
at::Tensor joint_linear_forward(const at::Tensor& x, const at::Tensor& z, const at::Tensor& weight,
                                const at::Tensor& z_weight, const c10::optional<at::Tensor>& bias,
                                c10::string_view act, double alpha, double gain, Epilogue&& epilogue) {
  const std::string act_s(act);
  check_joint_act(act_s, alpha, gain);
  check_float_tensor(x, "x");
  check_like(z, "z", x, "x");
  check_like(weight, "weight", x, "x");
  check_like(z_weight, "z_weight", x, "x");
  check_matrix(x, "x", "(N, in_features)");
  check_matrix(z, "z", "(N, z_features)");
  check_matrix(weight, "weight", "(out_features, in_features)");
  check_matrix(z_weight, "z_weight", "(out_features, z_features)");
  TORCH_CHECK_VALUE(z.size(0) == x.size(0), "z: expected ", x.size(0), " rows like x, got shape ", z.sizes());
  TORCH_CHECK_VALUE(weight.size(1) == x.size(1), "weight: expected shape (out_features, ", x.size(1),
                    ") for x of shape ", x.sizes(), ", got ", weight.sizes());
  TORCH_CHECK_VALUE(z_weight.size(0) == weight.size(0) && z_weight.size(1) == z.size(1),
                    "z_weight: expected shape (", weight.size(0), ", ", z.size(1), "), got ", z_weight.sizes());
  if (bias.has_value() && bias->defined()) {
    check_like(*bias, "bias", x, "x");
    TORCH_CHECK_VALUE(bias->dim() == 1 && bias->size(0) == weight.size(0), "bias: expected shape (",
                      weight.size(0), ",), got ", bias->sizes());
  }
  at::Tensor y = at::mm(x, weight.t());
  if (z.size(1) > 0) y.addmm_(z, z_weight.t());  // += z U^T into the same buffer (beta = 1)
  epilogue(y, bias, int64_t(1), act_s, alpha, gain, -1.0);
  return y;
}

}  // namespace fastgan
