// CUDA kernel of fastgan::kernel_sum_backward2 (d/dx, d/dy of <u, dS/dx> + <v, dS/dy>): the pair walk of
// kernel_sum.cu in its second-order mode (MODE 2, smooth kernels only), with directions u and v; the same results,
// checks and messages as csrc/cpu/kernel_sum.cpp. The decomposition and the buffers: kernel_sum.cu.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "kernel_sum_walk.cuh"

namespace fastgan {
namespace {

// d/dx_i = f [rowsum(C)_i u_i - (C V)_i] + 2f [rowsum(Q)_i x_i - (Q Y)_i], f = 2 (4 for a self-sum, v = u, y = x)
// d/dy_j = 2 [colsum(C)_j v_j - (C^T U)_j] + 4 [colsum(Q)_j y_j - (Q^T X)_j]     (see csrc/cpu/kernel_sum.cpp)
// poly:  d/dx_i = f [(C V)_i + (Q Y)_i] (f = 2 for a self-sum, else 1),  d/dy_j = (C^T U)_j + (Q^T X)_j
template <typename T>
void backward2_run(const CentredPoints& P, const KernelSumCall& call, const at::Tensor& uc, const at::Tensor& vc,
                   bool diagonal, bool grad_x, bool grad_y, at::Tensor& dx, at::Tensor& dy, int sms,
                   cudaStream_t stream) {
  const bool col_side = P.self ? grad_x : grad_y;
  const Walk W = walk_pairs<T, 2>(P, call, diagonal, grad_x, col_side, uc, vc, sms, stream);
  if (is_dot_kernel(call.kind)) {
    const double f = P.self ? 2.0 : 1.0;
    if (grad_x) finish<T>(dx, 3, W.row_t1, W.row_t2, at::Tensor(), at::Tensor(), uc, P.xc, W.plan.pc, f, f, sms, stream);
    if (grad_y) finish<T>(dy, 3, W.col_t1, W.col_t2, at::Tensor(), at::Tensor(), vc, P.yc, W.plan.pr, 1.0, 1.0, sms, stream);
    return;
  }
  if (grad_x) {
    const double f = P.self ? 4.0 : 2.0;
    finish<T>(dx, 2, W.row_t1, W.row_t2, W.row_s1, W.row_s2, uc, P.xc, W.plan.pc, f, 2.0 * f, sms, stream);
  }
  if (grad_y) {
    finish<T>(dy, 2, W.col_t1, W.col_t2, W.col_s1, W.col_s2, vc, P.yc, W.plan.pr, 2.0, 4.0, sms, stream);
  }
}

std::tuple<at::Tensor, at::Tensor> kernel_sum_backward2_cuda(const at::Tensor& x, const c10::optional<at::Tensor>& y,
                                                             const at::Tensor& u, const c10::optional<at::Tensor>& v,
                                                             c10::string_view kernel, at::ArrayRef<double> bandwidths,
                                                             at::ArrayRef<double> weights, bool grad_x, bool grad_y,
                                                             bool diagonal, int64_t degree, double offset) {
  const c10::cuda::OptionalCUDAGuard guard(cuda_device_of(x));
  const auto [call, vv] = check_kernel_sum_backward2(x, y, u, v, kernel, bandwidths, weights, degree, offset);
  const bool self = !(y.has_value() && y->defined());
  const int64_t n = x.size(0), m = self ? n : y->size(0), d = x.size(1);
  grad_y = grad_y && !self;
  if (!grad_x && !grad_y) return {x.new_empty({0}), x.new_empty({0})};
  if (n == 0 || m == 0 || d == 0) {  // no pairs, or nothing to differentiate
    return {grad_x ? at::zeros({n, d}, x.options()) : x.new_empty({0}),
            grad_y ? at::zeros({m, d}, x.options()) : x.new_empty({0})};
  }
  at::Tensor dx = grad_x ? at::empty({n, d}, x.options()) : x.new_empty({0});
  at::Tensor dy = grad_y ? at::empty({m, d}, x.options()) : x.new_empty({0});
  const c10::DeviceIndex device = x.device().index();
  const int sms = sm_count(device);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device).stream();
  const CentredPoints P = centre_points(x, y, kernel_sum_compute_type(x), !is_dot_kernel(call.kind));
  const at::Tensor uc = u.to(P.ct).contiguous();
  const at::Tensor vc = self ? uc : vv.to(P.ct).contiguous();
  if (P.ct == at::kDouble) {
    backward2_run<double>(P, call, uc, vc, diagonal, grad_x, grad_y, dx, dy, sms, stream);
  } else {
    backward2_run<float>(P, call, uc, vc, diagonal, grad_x, grad_y, dx, dy, sms, stream);
  }
  return {dx, dy};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastgan, CUDA, m) {
  m.impl("kernel_sum_backward2", &kernel_sum_backward2_cuda);
}

}  // namespace fastgan
