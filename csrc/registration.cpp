// Every fastgan op schema, defined once. Implementations register per dispatch key in csrc/cpu and csrc/cuda;
// fake kernels and autograd are registered from Python (fastgan/ops/*.py).
#include <torch/library.h>

TORCH_LIBRARY(fastgan, m) {
  // y = clamp(act(x + b broadcast along dim) * gain, -clamp, clamp); clamp = -1 disables the clamp.
  m.def("bias_act(Tensor x, Tensor? b, int dim, str act, float alpha, float gain, float clamp) -> Tensor");
  // (dx, db): dx = grad * d y / d x computed from ref = x (ref_is_y=False, needs b) or ref = y (ref_is_y=True);
  // db = dx summed over every dimension but dim when bias_grad, else an empty tensor.
  m.def(
      "bias_act_backward(Tensor grad, Tensor ref, Tensor? b, int dim, str act, float alpha, float gain, "
      "float clamp, bool ref_is_y, bool bias_grad) -> (Tensor, Tensor)");
  // The derivative of bias_act_backward's dx with respect to ref, contracted with grad_grad, and its bias sum.
  m.def(
      "bias_act_backward2(Tensor grad_grad, Tensor grad, Tensor ref, Tensor? b, int dim, str act, float alpha, "
      "float gain, float clamp, bool ref_is_y, bool bias_grad) -> (Tensor, Tensor)");
  // The BiGAN joint layer: act(x @ weight.T + z @ z_weight.T + bias) * gain, act in {linear, relu, lrelu}.
  // Its backward is composed of bias_act_backward and matrix products (registered from Python).
  m.def(
      "joint_linear(Tensor x, Tensor z, Tensor weight, Tensor z_weight, Tensor? bias, str act, float alpha, "
      "float gain) -> Tensor");
  // The building block of MMD: (S, dS/dx, dS/dy) with S = sum_ij sum_s weights[s] k_s(x_i, y_j), kernel in
  // {gaussian, rq, imq, laplacian, laplacian_l1} of |x_i - y_j|, or poly = (bandwidths[s] x_i.y_j + offset)^degree
  // (csrc/include/fastgan/pair_kernels.h; degree and offset: poly only), without the n x m kernel matrix. y = None:
  // the self-sum over x (diagonal: include the pairs (i, i)). The gradients are computed in the same pass when
  // grad_x / grad_y, else returned empty. S has x's dtype, or fp32 for fp16 / bf16 x.
  m.def(
      "kernel_sum(Tensor x, Tensor? y, str kernel, float[] bandwidths, float[] weights, bool diagonal, bool grad_x, "
      "bool grad_y, int degree=3, float offset=1.) -> (Tensor, Tensor, Tensor)");
  // Its second derivative: (d/dx, d/dy) of <u, dS/dx> + <v, dS/dy> (self-sum: y = v = None; v None: zero). diagonal
  // as in kernel_sum (the pairs (i, i) of a self-sum contribute only for poly: the other kernels' vanish there).
  m.def(
      "kernel_sum_backward2(Tensor x, Tensor? y, Tensor u, Tensor? v, str kernel, float[] bandwidths, "
      "float[] weights, bool grad_x, bool grad_y, bool diagonal=True, int degree=3, float offset=1.) -> "
      "(Tensor, Tensor)");
  // Minibatch discrimination (Salimans et al. 2016): o[i, k] = sum_j exp(-|m[i, k] - r[j, k]|_1) for m (B, K, C),
  // r = m (ref None: pairs within the batch; exclude_self drops j = i) or ref (R, K, C). Never forms B x B x K x C.
  m.def("minibatch_discrimination(Tensor m, Tensor? ref, bool exclude_self) -> Tensor");
  // (dL/dm, dL/dref or an empty tensor) from grad = dL/do.
  m.def("minibatch_discrimination_backward(Tensor grad, Tensor m, Tensor? ref, bool exclude_self) -> (Tensor, Tensor)");
  // Its second derivative: (d/dgrad, d/dm, d/dref or an empty tensor) of <ggm, dL/dm> + <ggr, dL/dref> (ggr: None
  // within the batch).
  m.def(
      "minibatch_discrimination_backward2(Tensor ggm, Tensor? ggr, Tensor grad, Tensor m, Tensor? ref, bool exclude_self) -> "
      "(Tensor, Tensor, Tensor)");
}
