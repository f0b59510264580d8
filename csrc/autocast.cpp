// Autocast kernels (AutocastCPU, AutocastCUDA) of the ops whose inputs autocast must cast: joint_linear, a matrix
// product like torch.mm, runs in the autocast dtype (fp32 math inside its epilogue). The casts go through
// at::autocast::cached_cast, so a weight (a leaf that requires grad) is cast once per autocast region and the cast
// is shared by every call in it, as for torch.mm / F.linear: the BiGAN D runs three times per training iteration,
// and casting its 2.1 M weights on every call (the Python-side cast this replaces) cost ~6 ms of a 53 ms bf16
// iteration on the CPU (issue 29). fp64 inputs are left alone (autocast's rule).
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace fastgan {
namespace {

template <c10::DeviceType Device, c10::DispatchKey Key>
at::Tensor joint_linear_autocast(const at::Tensor& x, const at::Tensor& z, const at::Tensor& weight,
                                 const at::Tensor& z_weight, const std::optional<at::Tensor>& bias,
                                 c10::string_view act, double alpha, double gain) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(Key);
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgan::joint_linear", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         const std::optional<at::Tensor>&, c10::string_view, double, double)>();
  const at::ScalarType dt = at::autocast::get_autocast_dtype(Device);
  using at::autocast::cached_cast;
  return op.call(cached_cast(dt, x, Device), cached_cast(dt, z, Device), cached_cast(dt, weight, Device),
                 cached_cast(dt, z_weight, Device), cached_cast(dt, bias, Device), act, alpha, gain);
}

}  // namespace

TORCH_LIBRARY_IMPL(fastgan, AutocastCPU, m) {
  m.impl("joint_linear", &joint_linear_autocast<c10::DeviceType::CPU, c10::DispatchKey::AutocastCPU>);
}
TORCH_LIBRARY_IMPL(fastgan, AutocastCUDA, m) {
  m.impl("joint_linear", &joint_linear_autocast<c10::DeviceType::CUDA, c10::DispatchKey::AutocastCUDA>);
}

}  // namespace fastgan
