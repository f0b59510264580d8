// CPU registration of joint_linear: BLAS GEMMs (at::mm / addmm_) and the vectorised in-place bias_act epilogue.
#include <torch/library.h>

#include "fastgan/joint_linear.h"

namespace fastgan {
namespace {

at::Tensor joint_linear_cpu(const at::Tensor& x, const at::Tensor& z, const at::Tensor& weight,
                            const at::Tensor& z_weight, const c10::optional<at::Tensor>& bias, c10::string_view act,
                            double alpha, double gain) {
  return joint_linear_forward(x, z, weight, z_weight, bias, act, alpha, gain, bias_act_inplace_cpu);
}

}  // namespace

TORCH_LIBRARY_IMPL(fastgan, CPU, m) { m.impl("joint_linear", &joint_linear_cpu); }

}  // namespace fastgan
