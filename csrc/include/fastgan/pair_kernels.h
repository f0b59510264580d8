// The pairwise kernels of kernel_sum / MMD, as functions of the squared distance r2 = |a - b|^2, and the argument
// checks of the op. One table for every backend (fastgan/ops/kernel_sum.py mirrors the names and parameters):
//
//   gaussian   k = exp(-r2 / (2 s^2))                       parameter p = 1 / (2 s^2)   (s: the bandwidth)
//   rq         k = (1 + r2 / (2 a))^(-a)                    parameter p = a             (rational quadratic)
//   imq        k = s^2 / (s^2 + r2)                         parameter p = s^2           (inverse multiquadric)
//   laplacian     k = exp(-|a - b|_2 / s)                   parameter p = 1 / s
//   laplacian_l1  k = exp(-|a - b|_1 / s)                   parameter p = 1 / s
//   poly       k = (g a.b + o)^n                            parameter p = g (the "bandwidth" slot is the scale g of
//                                                           the dot product; degree n >= 1 and offset o >= 0 are
//                                                           the call's, shared by its terms; KID: g = 1 / d, o = 1,
//                                                           n = 3)
//
// A mixture sums w_s k_s over the bandwidths. The first three are smooth in r2 with a bounded derivative dk/dr2, so
// the gradient sum_j c_ij (a_i - b_j) (c = dk/dr2) is finite everywhere, also at zero distance; they are computed
// from GEMM dot products. The laplacians are not differentiable at zero distance (the gradient there is defined as
// 0, the subgradient of least norm) and are computed from direct differences, exact at zero distance; first order
// only. poly is a polynomial of the dot product t = a.b, smooth everywhere (first and second order), and not
// translation invariant: its points are used as given (pair_math.h, is_dot_kernel).
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

#include "fastgan/pair_math.h"

namespace fastgan {

// PairKernel (kGaussian ... kLaplacianL1), is_laplacian and the per-pair math: pair_math.h (host + device).

inline int parse_pair_kernel(const std::string& name) {
  if (name == "gaussian") return kGaussian;
  if (name == "rq") return kRationalQuadratic;
  if (name == "imq") return kInverseMultiquadric;
  if (name == "laplacian") return kLaplacian;
  if (name == "laplacian_l1") return kLaplacianL1;
  if (name == "poly") return kPoly;
  TORCH_CHECK_VALUE(false, "kernel: expected 'gaussian', 'rq', 'imq', 'laplacian', 'laplacian_l1' or 'poly', got '", name,
                    "'");
  return 0;
}

// The per-bandwidth parameters p_s of the table above, checked.
inline std::vector<double> pair_kernel_params(int kernel, at::ArrayRef<double> bandwidths, at::ArrayRef<double> weights) {
  TORCH_CHECK_VALUE(!bandwidths.empty(), "bandwidths: expected at least one bandwidth, got none");
  TORCH_CHECK_VALUE(weights.size() == bandwidths.size(), "weights: expected ", bandwidths.size(),
                    " weights (one per bandwidth), got ", weights.size());
  std::vector<double> p;
  for (size_t i = 0; i < bandwidths.size(); ++i) {
    const double s = bandwidths[i];
    TORCH_CHECK_VALUE(std::isfinite(s) && s > 0, "bandwidths: expected finite numbers > 0, got ", s, " at index ", i);
    TORCH_CHECK_VALUE(std::isfinite(weights[i]), "weights: expected finite numbers, got ", weights[i], " at index ", i);
    p.push_back(kernel == kGaussian              ? 1.0 / (2.0 * s * s)
                : kernel == kRationalQuadratic   ? s
                : kernel == kPoly                ? s
                : kernel == kInverseMultiquadric ? s * s
                                                 : 1.0 / s);
  }
  return p;
}

// The poly kernel's degree and offset, checked (the other kernels ignore them).
inline void check_poly_params(int kernel, int64_t degree, double offset) {
  if (kernel != kPoly) return;
  TORCH_CHECK_VALUE(degree >= 1 && degree <= 64, "degree: expected an integer in [1, 64] for the poly kernel, got ",
                    degree);
  TORCH_CHECK_VALUE(std::isfinite(offset) && offset >= 0, "offset: expected a finite number >= 0 for the poly kernel, got ",
                    offset);
}

}  // namespace fastgan
