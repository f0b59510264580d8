// The device-independent half of fastgan::kernel_sum and kernel_sum_backward2: argument checks (one set of checks
// and messages for the CPU and CUDA kernels), the plan of the kernel mixture (per-bandwidth constants, the gaussian
// squaring chain) and the centring of the points. csrc/cpu/kernel_sum.cpp and csrc/cuda/kernel_sum.cu supply the pair walks.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "fastgan/checks.h"
#include "fastgan/pair_kernels.h"
#include "fastgan/pair_math.h"

namespace fastgan {

// A checked call: the kernel, its per-bandwidth parameters (pair_kernels.h) and weights.
// (degree, offset: the poly kernel's; the others ignore them.)
struct KernelSumCall {
  int kind;
  std::vector<double> params, weights;
  int degree = 0;
  double offset = 0.0;
};

inline KernelSumCall check_kernel_sum(const at::Tensor& x, const c10::optional<at::Tensor>& y,
                                      c10::string_view kernel, at::ArrayRef<double> bandwidths,
                                      at::ArrayRef<double> weights, int64_t degree, double offset) {
  KernelSumCall p;
  p.kind = parse_pair_kernel(std::string(kernel));
  p.params = pair_kernel_params(p.kind, bandwidths, weights);
  check_poly_params(p.kind, degree, offset);
  if (p.kind == kPoly) p.degree = int(degree), p.offset = offset;
  TORCH_CHECK_VALUE(bandwidths.size() <= size_t(kMaxPairBandwidths), "bandwidths: expected at most ",
                    kMaxPairBandwidths, " bandwidths, got ", bandwidths.size());
  p.weights.assign(weights.begin(), weights.end());
  check_float_tensor(x, "x");
  TORCH_CHECK_VALUE(x.dim() == 2, "x: expected a 2-d tensor of shape (n, d), got shape ", x.sizes());
  if (y.has_value() && y->defined()) {
    check_like(*y, "y", x, "x");
    TORCH_CHECK_VALUE(y->dim() == 2 && y->size(1) == x.size(1), "y: expected a 2-d tensor of shape (m, ", x.size(1),
                      ") like x, got shape ", y->sizes());
  }
  return p;
}

// kernel_sum_backward2's checks; returns the call and v to use (x-y sums: v, or zeros like y when v is None;
// self-sums: undefined, v = u).
inline std::tuple<KernelSumCall, at::Tensor> check_kernel_sum_backward2(
    const at::Tensor& x, const c10::optional<at::Tensor>& y, const at::Tensor& u, const c10::optional<at::Tensor>& v,
    c10::string_view kernel, at::ArrayRef<double> bandwidths, at::ArrayRef<double> weights, int64_t degree,
    double offset) {
  KernelSumCall p = check_kernel_sum(x, y, kernel, bandwidths, weights, degree, offset);
  TORCH_CHECK_NOT_IMPLEMENTED(!is_laplacian(p.kind), "fastgan.kernel_sum: second-order derivatives of the ", kernel,
                              " kernel are not implemented (it is not twice differentiable at zero distance); use a "
                              "smooth kernel (gaussian, rq, imq, poly) for gradient penalties through an MMD");
  check_like(u, "u", x, "x");
  check_same_shape(u, "u", x, "x");
  const bool self = !(y.has_value() && y->defined());
  at::Tensor vv;
  if (!self) {
    if (v.has_value() && v->defined()) {
      check_like(*v, "v", x, "x");
      check_same_shape(*v, "v", *y, "y");
      vv = *v;
    } else {
      vv = at::zeros_like(*y);
    }
  }
  return {std::move(p), vv};
}

// The kernels of a call in compute type T. Gaussian bandwidths are ordered by p ascending and, where p_s / p_{s-1} is
// exactly 2^k (bandwidths in a geometric progression of ratio 2^(k/2): the usual 1, 2, 4, 8, 16), e^(-p_s r2) is
// computed as (e^(-p_{s-1} r2))^(2^k) by k squarings instead of an exp. Each squaring doubles the relative error, so
// a chain restarts with a real exp once it would pass kMaxSquarings from its anchor (<= 2^4 x the exp's error: ~1e-6
// in fp32). sq[s]: -1 for an exp, else the squarings from bandwidth s - 1.
constexpr int kMaxSquarings = 4;

template <typename T>
struct MixturePlan {
  int kernel;
  std::vector<PairCoef<T>> coef;
  std::vector<int> sq;

  MixturePlan(int kind, const std::vector<double>& params, const std::vector<double>& weights, int degree = 0,
              double offset = 0.0)
      : kernel(kind) {
    std::vector<size_t> order(params.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    if (kind == kGaussian) {
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return params[a] < params[b]; });
    }
    int chain = 0;
    for (size_t k = 0; k < order.size(); ++k) {
      const T p = static_cast<T>(params[order[k]]);
      coef.push_back(pair_coef(kind, p, static_cast<T>(weights[order[k]]), degree, static_cast<T>(offset)));
      int steps = -1;
      if (kind == kGaussian && k > 0) {
        int e2 = 0;
        const double ratio = params[order[k]] / params[order[k - 1]];
        if (std::frexp(ratio, &e2) == 0.5 && e2 >= 2 && chain + (e2 - 1) <= kMaxSquarings &&
            static_cast<T>(params[order[k - 1]]) * std::ldexp(T(1), e2 - 1) == p) {
          steps = e2 - 1;  // ratio = 2^steps, exactly, also after rounding to T
        }
      }
      chain = steps < 0 ? 0 : chain + steps;
      sq.push_back(steps);
    }
  }
};

// The dtype of S: x's, or fp32 for fp16 / bf16 inputs (a sum of n m kernel values overflows fp16 from n ~ 150 and
// keeps 3 digits in bf16; MMD^2 is a small difference of such sums).
inline at::ScalarType kernel_sum_value_type(const at::Tensor& x) {
  const auto st = x.scalar_type();
  return (st == at::kHalf || st == at::kBFloat16) ? at::kFloat : st;
}

// The compute type: fp64 for fp64 inputs, else fp32 (half inputs are widened once).
inline at::ScalarType kernel_sum_compute_type(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// The point sets of a call centred on their common mean (distances are translation invariant; centring reduces the
// cancellation in |x|^2 + |y|^2 - 2 x.y), contiguous, in the compute type; y = x for a self-sum. centre = false (the
// kernels of the dot product, is_dot_kernel): the points as given, contiguous, in the compute type.
struct CentredPoints {
  bool self;
  int64_t n, m, d;
  at::ScalarType ct;
  at::Tensor xc, yc;
};

inline at::Tensor centred_copy(const at::Tensor& a, const at::Tensor& mean, at::ScalarType ct) {
  at::Tensor out = at::empty({a.size(0), a.size(1)}, a.options().dtype(ct));
  out.copy_(a).sub_(mean);  // in place: no second n x d temporary
  return out;
}

inline CentredPoints centre_points(const at::Tensor& x, const c10::optional<at::Tensor>& y_opt, at::ScalarType ct,
                                   bool centre = true) {
  CentredPoints P;
  P.self = !(y_opt.has_value() && y_opt->defined());
  const at::Tensor& y = P.self ? x : *y_opt;
  P.n = x.size(0), P.m = y.size(0), P.d = x.size(1), P.ct = ct;
  if (!centre) {
    P.xc = x.to(ct).contiguous();
    P.yc = P.self ? P.xc : y.to(ct).contiguous();
    return P;
  }
  at::Tensor sx = x.sum(0, false, ct);
  if (!P.self) sx = sx + y.sum(0, false, ct);
  const int64_t cnt = P.self ? P.n : P.n + P.m;
  const at::Tensor mean = cnt > 0 ? sx / double(cnt) : sx;
  P.xc = centred_copy(x, mean, ct);
  P.yc = P.self ? P.xc : centred_copy(y, mean, ct);
  return P;
}

}  // namespace fastgan
