// CUDA registration of joint_linear: cuBLAS GEMMs (at::mm / addmm_ on the current stream) and the in-place
// bias_act epilogue kernel.
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "fastgan/joint_linear.h"

namespace fastgan {
namespace {

at::Tensor joint_linear_cuda(const at::Tensor& x, const at::Tensor& z, const at::Tensor& weight,
                             const at::Tensor& z_weight, const c10::optional<at::Tensor>& bias, c10::string_view act,
                             double alpha, double gain) {
  const c10::cuda::OptionalCUDAGuard guard(x.is_cuda() ? c10::optional<c10::Device>(x.device()) : c10::nullopt);
  return joint_linear_forward(x, z, weight, z_weight, bias, act, alpha, gain, bias_act_inplace_cuda);
}

}  // namespace

TORCH_LIBRARY_IMPL(fastgan, CUDA, m) { m.impl("joint_linear", &joint_linear_cuda); }

}  // namespace fastgan
