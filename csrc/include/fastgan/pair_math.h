// The per-pair math of kernel_sum / MMD, host + device (FG_HD), shared by csrc/cpu/kernel_sum.cpp and csrc/cuda/kernel_sum.cu:
// for one squared distance r2 (one distance t for the laplacians) and one bandwidth, the kernel value and its
// derivatives, accumulated with the bandwidth's weight. The table of kernels and parameters is pair_kernels.h:
//
//   gaussian   k = e^(-p r2)                  k' = -p k            k'' = p^2 k
//   rq         k = t^-p, t = 1 + r2 / (2p)    k' = -k / (2t)       k'' = (p + 1) / (4p) k / t^2
//   imq        k = p / q, q = p + r2          k' = -k / q          k'' = 2 k / q^2
//   laplacians k = e^(-p t) of the distance t (euclidean or l1), dk/dt = -p k (first order only)
//   poly       k = b^n, b = p t + o           k' = n p b^(n-1)     k'' = n (n - 1) p^2 b^(n-2)
//
// (' = d/dr2; for poly ' = d/dt of the dot product t = a.b, n the integer degree, o the offset.)
// The *_add functions are what the kernels call per pair and bandwidth: ORDER 0 adds w k to val;
// 1 adds w k to val and w k' to c; 2 adds w k' to c and w k'' to h (the second-order pass needs no value). They are
// branch-free and forced inline, so that the CPU kernel's loops over a row of pairs (`for j: rq_add(r2[j], ...)`)
// still compile to SIMD code; the per-bandwidth constants (PairCoef) are computed once per call. On the host exp / log
// are vec_math.h's vectorisable versions (float and double), on the device libdevice's. pair_terms() is the same
// code with weight 1, for tests and scalar callers; csrc/tests/test_pair_math_cpu.cpp checks it in fp64 against the
// closed forms and finite differences.
#pragma once

#include <cmath>

#include "fastgan/activations.h"  // FG_HD (host + device, forced inline) and, on the host, vec_math.h

namespace fastgan {

enum PairKernel : int {
  kGaussian = 0,
  kRationalQuadratic = 1,
  kInverseMultiquadric = 2,
  kLaplacian = 3,
  kLaplacianL1 = 4,
  kPoly = 5
};

FG_HD bool is_laplacian(int kernel) { return kernel == kLaplacian || kernel == kLaplacianL1; }

// A kernel of the dot product t = a.b instead of the squared distance (poly): not translation invariant (the points
// are not centred), and its gradients are sums of c_ij times the other side's points, without row-sum terms.
FG_HD bool is_dot_kernel(int kernel) { return kernel == kPoly; }

// At most this many bandwidths per call: the CUDA kernels take the per-bandwidth constants by value in their
// argument struct (no host-to-device copy per call). Checked for every backend by check_kernel_sum (kernel_sum.h).
constexpr int kMaxPairBandwidths = 16;

// ---- elementary functions ----
#if defined(__CUDACC__) || defined(__HIPCC__)
FG_HD float pair_exp(float v) { return ::expf(v); }
FG_HD double pair_exp(double v) { return ::exp(v); }
FG_HD float pair_log(float v) { return ::logf(v); }
FG_HD double pair_log(double v) { return ::log(v); }
FG_HD float pair_fma(float a, float b, float c) { return ::fmaf(a, b, c); }
FG_HD double pair_fma(double a, double b, double c) { return ::fma(a, b, c); }
FG_HD float pair_sqrt(float v) { return ::sqrtf(v); }
FG_HD double pair_sqrt(double v) { return ::sqrt(v); }
#else
FG_HD float pair_exp(float v) { return vec_exp(v); }
FG_HD double pair_exp(double v) { return vec_exp(v); }
FG_HD float pair_log(float v) { return vec_log(v); }
FG_HD double pair_log(double v) { return vec_log(v); }
FG_HD float pair_fma(float a, float b, float c) { return std::fma(a, b, c); }
FG_HD double pair_fma(double a, double b, double c) { return std::fma(a, b, c); }
FG_HD float pair_sqrt(float v) { return std::sqrt(v); }
FG_HD double pair_sqrt(double v) { return std::sqrt(v); }
#endif

// The constants of one bandwidth: parameter p (pair_kernels.h), weight w, and the weights of the derivative terms.
template <typename T>
struct PairCoef {
  T p, w;
  T wc;   // c += wc * (the kernel's first-derivative factor)
  T wh;   // h += wh * (the second-derivative factor)
  T inv;  // rq: 1 / (2p)
  T off;  // poly: the offset o
  int deg;  // poly: the degree n >= 1
};

// (degree, offset: the poly kernel's; ignored by the others)
template <typename T>
FG_HD PairCoef<T> pair_coef(int kernel, T p, T w, int degree = 0, T offset = T(0)) {
  PairCoef<T> k;
  k.p = p;
  k.w = w;
  k.inv = T(0);
  k.off = offset;
  k.deg = degree;
  if (kernel == kPoly) {  // k' = n p b^(n-1), k'' = n (n - 1) p^2 b^(n-2)
    k.wc = w * T(degree) * p;
    k.wh = w * T(degree) * T(degree - 1) * p * p;
  } else if (kernel == kRationalQuadratic) {
    k.inv = T(0.5) / p;
    k.wc = T(-0.5) * w;
    k.wh = w * (p + T(1)) / (T(4) * p);
  } else if (kernel == kInverseMultiquadric) {
    k.wc = -w;
    k.wh = T(2) * w;
  } else {  // gaussian, laplacians
    k.wc = -w * p;
    k.wh = w * p * p;
  }
  return k;
}

// The squared distance from a dot product of (centred) points: |x|^2 + |y|^2 - 2 x.y, clamped at 0; NaN passes.
template <typename T>
FG_HD T pair_r2(T nx, T ny, T dot) {
  const T r = nx + ny - T(2) * dot;
  return r < T(0) ? T(0) : r;
}

// ---- gaussian ----
// e = e^(-p r2). A mixture whose parameters differ by exact powers of two may instead square the previous bandwidth's
// e (kernel_sum.h, MixturePlan); gaussian_add takes e either way.
template <typename T>
FG_HD T gaussian_exp(T r2, T p) {
  return pair_exp(-p * r2);
}

template <int ORDER, typename T>
FG_HD void gaussian_add(T e, const PairCoef<T>& k, T& val, T& c, T& h) {
  if constexpr (ORDER < 2) val += k.w * e;
  if constexpr (ORDER >= 1) c += k.wc * e;
  if constexpr (ORDER == 2) h += k.wh * e;
}

// ---- rational quadratic ----
template <int ORDER, typename T>
FG_HD void rq_add(T r2, const PairCoef<T>& k, T& val, T& c, T& h) {
  const T t = pair_fma(r2, k.inv, T(1));
  const T e = pair_exp(-k.p * pair_log(t));
  const T et = e / t;
  if constexpr (ORDER < 2) val += k.w * e;
  if constexpr (ORDER >= 1) c += k.wc * et;
  if constexpr (ORDER == 2) h += k.wh * (et / t);
}

// ---- inverse multiquadric ----
template <int ORDER, typename T>
FG_HD void imq_add(T r2, const PairCoef<T>& k, T& val, T& c, T& h) {
  const T q = k.p + r2;
  const T e = k.p / q;
  const T eq = e / q;
  if constexpr (ORDER < 2) val += k.w * e;
  if constexpr (ORDER >= 1) c += k.wc * eq;
  if constexpr (ORDER == 2) h += k.wh * (eq / q);
}

// ---- polynomial, of the dot product t = a.b: k = b^n with b = p t + o ----
// Integer powers by repeated products (b may be negative; no pow): e2 = b^(n-2), e1 = b^(n-1), k = e1 b. For n = 1,
// e1 = 1 and e2 is unused (its weight wh is 0).
template <int ORDER, typename T>
FG_HD void poly_add(T t, const PairCoef<T>& k, T& val, T& c, T& h) {
  const T b = pair_fma(k.p, t, k.off);
  T e2 = T(1);
  for (int i = 2; i < k.deg; ++i) e2 *= b;
  const T e1 = k.deg >= 2 ? e2 * b : T(1);
  if constexpr (ORDER < 2) val += k.w * (e1 * b);
  if constexpr (ORDER >= 1) c += k.wc * e1;
  if constexpr (ORDER == 2) h += k.wh * e2;
}

// ---- laplacians, of the distance t: ORDER 0 adds w e^(-p t) to val, 1 also w dk/dt = -w p e^(-p t) to c ----
template <int ORDER, typename T>
FG_HD void laplacian_add(T t, const PairCoef<T>& k, T& val, T& c) {
  static_assert(ORDER < 2, "the laplacian kernels are first order only");
  const T e = pair_exp(-k.p * t);
  val += k.w * e;
  if constexpr (ORDER == 1) c += k.wc * e;
}

// The euclidean laplacian's gradient weight c / dist (d dist / dx = (x - y) / dist): 0 at dist 0 (the subgradient of
// least norm); a NaN distance is not 0, its NaN propagates.
template <typename T>
FG_HD T laplacian_l2_weight(T c, T dist) {
  const bool zero = dist == T(0);
  const T q = c / (zero ? T(1) : dist);
  return zero ? T(0) : q;
}

// sign(d) in {-1, 0, +1} (0 at a tie: the l1 laplacian's least-norm subgradient; 0 for NaN).
template <typename T>
FG_HD T pair_sign(T d) {
  return T((d > T(0)) - (d < T(0)));
}

// The second-order weight q = h (u_i - v_j).(x_i - y_j), that dot product written as ux + vy - e with ux = u_i.x_i,
// vy = v_j.y_j and e = u_i.y_j + x_i.v_j.
template <typename T>
FG_HD T pair_q(T h, T ux, T vy, T e) {
  return h * (ux + vy - e);
}

// ---- one bandwidth, weight 1: (k, dk/dr2, d2k/dr2^2); laplacians: (k, dk/dt, 0) of the distance t; poly: (k, dk/dt,
// d2k/dt^2) of the dot product t (degree, offset: poly only) ----
template <typename T>
struct PairTerms {
  T k, d1, d2;
};

template <typename T>
FG_HD PairTerms<T> pair_terms(int kernel, T r2, T p, int degree = 0, T offset = T(0)) {
  const PairCoef<T> k = pair_coef(kernel, p, T(1), degree, offset);
  T v0 = T(0), v1 = T(0), c1 = T(0), h1 = T(0), c2 = T(0), h2 = T(0);
  if (kernel == kGaussian) {
    const T e = gaussian_exp(r2, p);
    gaussian_add<0>(e, k, v0, c1, h1);
    gaussian_add<2>(e, k, v1, c2, h2);
  } else if (kernel == kRationalQuadratic) {
    rq_add<0>(r2, k, v0, c1, h1);
    rq_add<2>(r2, k, v1, c2, h2);
  } else if (kernel == kInverseMultiquadric) {
    imq_add<0>(r2, k, v0, c1, h1);
    imq_add<2>(r2, k, v1, c2, h2);
  } else if (kernel == kPoly) {
    poly_add<0>(r2, k, v0, c1, h1);
    poly_add<2>(r2, k, v1, c2, h2);
  } else {
    laplacian_add<1>(r2, k, v0, c2);
  }
  return {v0, c2, h2};
}

}  // namespace fastgan
