// exp and log that the compiler can vectorise: branch-free (selects, not branches), no libm calls, bit casts for the
// power of two, explicit fma. Written for loops over plain arrays (`for j: out[j] = vec_exp(in[j])`) that GCC/Clang
// turn into AVX2 / AVX-512 code at -O3 -march=...; libm's scalar expf/logf in such a loop costs several times more.
// (ATen's at::vec::Vectorized maps exp to scalar libm calls unless ATen's own CPU_CAPABILITY build flags are set,
// which an extension does not get.)
//
// Method (the classic Cody-Waite / Cephes scheme, coefficients from Cephes' expf / exp): exp(x) = 2^n e^r with
// n = round(x / ln 2) and r = x - n ln 2 in two parts, e^r by a polynomial (float) or a Pade form (double);
// log(t) = k ln 2 + 2 atanh((m - 1) / (m + 1)) with t = m 2^k, m in [sqrt(1/2), sqrt(2)), atanh by its odd series.
// Accuracy (tested in csrc/tests/test_vec_math_cpu.cpp against libm): within 2 ulp over the normal range.
// Limits: exp flushes to 0 below -87.34 (float) / -708.39 (double) instead of returning subnormals (absolute error
// < 1.2e-38 / 2.3e-308), overflows to +inf; NaN propagates. log is for t > 0 (here: t >= 1);
// log(+inf) = +inf, NaN propagates.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

// Forced inline: an out-of-line call (GCC's inliner gives up once a file calls these from many loops) would keep the
// calling loop scalar, several times slower.
#if defined(__GNUC__) || defined(__clang__)
#define FASTGAN_VEC_INLINE inline __attribute__((always_inline))
#else
#define FASTGAN_VEC_INLINE inline
#endif

namespace fastgan {

FASTGAN_VEC_INLINE float vec_exp(float x) {
  const bool big = x > 88.72283f, small = x < -87.33654f;
  float xc = small ? -87.33654f : x;  // NaN stays NaN (the comparison is false)
  xc = big ? 0.0f : xc;
  // n = round(x / ln 2) by the 1.5 * 2^23 trick (std::floor does not vectorise under the default -ftrapping-math);
  // the integer n is in the low bits of the sum
  const float magic = 12582912.0f;
  const float sum = std::fma(xc, 1.44269504088896341f, magic);
  const float n = sum - magic;
  const int32_t ni = std::bit_cast<int32_t>(sum) - std::bit_cast<int32_t>(magic);
  float r = std::fma(n, -0.693359375f, xc);
  r = std::fma(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  const float y = std::fma(p, r * r, r) + 1.0f;
  // 2^n in two factors so that n = 128 (x just below the overflow bound) does not form the exponent of inf
  const int32_t half = ni > 0 ? 1 : 0;
  const float scale = std::bit_cast<float>((ni - half + 127) << 23);
  const float out = (y * scale) * (half ? 2.0f : 1.0f);
  return big ? std::numeric_limits<float>::infinity() : (small ? 0.0f : out);
}

FASTGAN_VEC_INLINE double vec_exp(double x) {
  const bool big = x > 709.78, small = x < -708.39;
  double xc = small ? -708.39 : x;
  xc = big ? 0.0 : xc;
  const double magic = 6755399441055744.0;  // 1.5 * 2^52: round to nearest, as in vec_exp(float)
  const double sum = std::fma(xc, 1.4426950408889634073599, magic);
  const double n = sum - magic;
  const int64_t ni = std::bit_cast<int64_t>(sum) - std::bit_cast<int64_t>(magic);
  double r = std::fma(n, -6.93145751953125e-1, xc);
  r = std::fma(n, -1.42860682030941723212e-6, r);
  const double rr = r * r;
  const double px = r * std::fma(std::fma(1.26177193074810590878e-4, rr, 3.02994407707441961300e-2), rr,
                                 9.99999999999999999910e-1);
  const double qx = std::fma(std::fma(std::fma(3.00198505138664455042e-6, rr, 2.52448340349684104192e-3), rr,
                                      2.27265548208155028766e-1),
                             rr, 2.00000000000000000009e0);
  const double y = 1.0 + 2.0 * (px / (qx - px));
  const int64_t half = ni > 0 ? 1 : 0;
  const double scale = std::bit_cast<double>((ni - half + 1023) << 52);
  const double out = (y * scale) * (half ? 2.0 : 1.0);
  return big ? std::numeric_limits<double>::infinity() : (small ? 0.0 : out);
}

// The bit layout of the IEEE types, and log's constants per type (ln 2 in two parts, the series' length).
template <typename T>
struct FloatBits;

template <>
struct FloatBits<float> {
  using I = int32_t;
  static constexpr int kMantBits = 23;
  static constexpr I kExpMask = 0xff, kBias = 127, kMantMask = 0x007fffff, kOneBits = 0x3f800000;
  static constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  static constexpr int kTerms = 5;  // atanh series z + z^3/3 + ... + z^11/11: error ~ z^13/13 < 1e-10 relative
};

template <>
struct FloatBits<double> {
  using I = int64_t;
  static constexpr int kMantBits = 52;
  static constexpr I kExpMask = 0x7ff, kBias = 1023, kMantMask = 0x000fffffffffffffLL,
                     kOneBits = 0x3ff0000000000000LL;
  static constexpr double kLn2Hi = 6.93145751953125e-1, kLn2Lo = 1.42860682030941723212e-6;
  static constexpr int kTerms = 11;  // up to z^23/23: error ~ z^25/25 < 1e-20 relative
};

// log of a positive normal number (or +inf / NaN, returned as they are).
template <typename T>
FASTGAN_VEC_INLINE T vec_log(T t) {
  using B = FloatBits<T>;
  using I = typename B::I;
  const I bits = std::bit_cast<I>(t);
  I k = ((bits >> B::kMantBits) & B::kExpMask) - B::kBias;
  T m = std::bit_cast<T>((bits & B::kMantMask) | B::kOneBits);  // [1, 2)
  const bool hi = m > T(1.4142135623730951);
  const T mh = T(0.5) * m;  // computed unconditionally: a select of two values if-converts, a select of
  m = hi ? mh : m;          // arithmetic does not (it could trap, under GCC's default -ftrapping-math)
  k = hi ? k + 1 : k;       // m in [sqrt(1/2), sqrt(2))
  const T z = (m - T(1)) / (m + T(1));
  const T z2 = z * z;
  T s = T(1) / T(2 * B::kTerms + 1);
  for (int i = B::kTerms - 1; i >= 1; --i) s = std::fma(s, z2, T(1) / T(2 * i + 1));  // unrolled: constant bound
  const T lm = T(2) * std::fma(s * z2, z, z);
  const T kf = static_cast<T>(k);
  const T out = std::fma(kf, B::kLn2Hi, std::fma(kf, B::kLn2Lo, lm));
  // NaN and +inf return themselves: a blend by bit masks (GCC does not if-convert a select here)
  const I keep = -static_cast<I>(((bits >> B::kMantBits) & B::kExpMask) == B::kExpMask);
  return std::bit_cast<T>((bits & keep) | (std::bit_cast<I>(out) & ~keep));
}

// Sum of v[0, n) in kLanes independent partial sums: vectorised (a plain running sum of floats is not, without
// -ffast-math) and in a fixed order, so deterministic.
constexpr int kLanes = 16;

template <typename T>
inline T lane_sum(const T* v, int64_t n) {
  T acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += v[j + l];
  }
  for (; j < n; ++j) acc[j % kLanes] += v[j];
  T total = T(0);
  for (int l = 0; l < kLanes; ++l) total += acc[l];
  return total;
}

// tanh for float, branch-free: |x| < 0.625 by Cephes' odd polynomial x + x^3 P(x^2) (no cancellation near 0),
// else 1 - 2 / (e^{2|x|} + 1) with the sign of x (e^{2|x|} = inf beyond |x| ~ 44.4 gives exactly 1). Within 3 ulp of
// libm (csrc/tests/test_vec_math_cpu.cpp); NaN propagates.
FASTGAN_VEC_INLINE float vec_tanh(float x) {
  const float a = std::fabs(x), z2 = x * x;
  float p = -5.70498872745e-3f;
  p = std::fma(p, z2, 2.06390887954e-2f);
  p = std::fma(p, z2, -5.37397155531e-2f);
  p = std::fma(p, z2, 1.33314422036e-1f);
  p = std::fma(p, z2, -3.33332819422e-1f);
  const float near0 = std::fma(p * z2, x, x);
  const float far = std::copysign(1.0f - 2.0f / (vec_exp(2.0f * a) + 1.0f), x);
  return std::copysign(a < 0.625f ? near0 : far, x);  // copysign: tanh(-0) = -0
}

}  // namespace fastgan
