// C++ unit test of csrc/include/fastgan/pair_math.h, the per-pair math of kernel_sum / MMD shared by the CPU and CUDA
// kernels: in fp64, every kernel's value, first and second derivative in r2 (the laplacians: value and derivative in
// the distance) against the closed forms of pair_kernels.h and against central finite differences; the ORDER
// semantics and weights of the *_add accumulators; the helpers (r2 clamp, laplacian weight, sign, q); fp32 against
// fp64; the gaussian squaring chain of kernel_sum.h's MixturePlan against direct exponentials; and the poly kernel of the
// dot product (degrees 1-5, offsets 0 and > 0, negative bases) against pow and finite differences. ctest runs it.
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "expect.h"
#include "fastgan/kernel_sum.h"
#include "fastgan/pair_math.h"

namespace {

using fastgan_test::expect;

bool near(double got, double want, double rtol, double atol = 0.0) {
  return std::abs(got - want) <= atol + rtol * std::abs(want);
}

std::string fmt(const char* name, double r2, double p, double got, double want) {
  char buf[256];
  std::snprintf(buf, sizeof(buf), "%s r2=%.6g p=%.6g: got %.17g want %.17g", name, r2, p, got, want);
  return buf;
}

// The closed forms (k, dk/dr2, d2k/dr2^2) of pair_kernels.h, written independently with libm.
struct Closed {
  double k, d1, d2;
};

Closed closed(int kernel, double r, double p) {
  using namespace fastgan;
  if (kernel == kGaussian) {
    const double k = std::exp(-p * r);
    return {k, -p * k, p * p * k};
  }
  if (kernel == kRationalQuadratic) {
    const double t = 1.0 + r / (2.0 * p);
    const double k = std::pow(t, -p);
    return {k, -0.5 * std::pow(t, -p - 1.0), 0.25 * (p + 1.0) / p * std::pow(t, -p - 2.0)};
  }
  if (kernel == kInverseMultiquadric) {
    const double q = p + r;
    return {p / q, -p / (q * q), 2.0 * p / (q * q * q)};
  }
  const double k = std::exp(-p * r);  // laplacians, of the distance
  return {k, -p * k, 0.0};
}

const char* kname(int kernel) {
  static const char* names[] = {"gaussian", "rq", "imq", "laplacian", "laplacian_l1"};
  return names[kernel];
}

void test_closed_forms_and_differences() {
  using namespace fastgan;
  const std::vector<double> rs = {0.0, 1e-6, 1e-3, 0.1, 0.5, 1.0, 2.0, 7.5, 30.0, 100.0};
  const std::vector<double> ps = {1e-3, 0.02, 0.125, 0.5, 1.0, 3.0, 10.0};
  for (int kernel : {kGaussian, kRationalQuadratic, kInverseMultiquadric, kLaplacian, kLaplacianL1}) {
    for (double p : ps) {
      for (double r : rs) {
        const PairTerms<double> t = pair_terms<double>(kernel, r, p);
        const Closed c = closed(kernel, r, p);
        expect(near(t.k, c.k, 1e-13, 1e-300), fmt((std::string(kname(kernel)) + " value").c_str(), r, p, t.k, c.k));
        expect(near(t.d1, c.d1, 1e-13, 1e-300), fmt((std::string(kname(kernel)) + " d1").c_str(), r, p, t.d1, c.d1));
        expect(near(t.d2, c.d2, 1e-13, 1e-300), fmt((std::string(kname(kernel)) + " d2").c_str(), r, p, t.d2, c.d2));
        if (r < 1e-3) continue;  // central differences need r - h >= 0
        // central differences of the value (-> d1) and of d1 (-> d2): error O(h^2) + O(eps / h)
        // (h well below the kernel's length scale in r2: 1/p for the exponentials, p + r2 for imq, 2t >= 2 for rq)
        const double h = 1e-4 * std::min({r, 1.0 / p, p + r});
        const PairTerms<double> lo = pair_terms<double>(kernel, r - h, p);
        const PairTerms<double> hi = pair_terms<double>(kernel, r + h, p);
        const double fd1 = (hi.k - lo.k) / (2.0 * h);
        const double fd2 = (hi.d1 - lo.d1) / (2.0 * h);
        const double s1 = std::abs(t.k) / r, s2 = std::abs(t.k) / (r * r);  // scales of the derivatives' errors
        expect(near(t.d1, fd1, 1e-6, 1e-9 * s1 + 1e-300),
               fmt((std::string(kname(kernel)) + " d1 vs finite difference").c_str(), r, p, t.d1, fd1));
        if (!is_laplacian(kernel)) {
          expect(near(t.d2, fd2, 1e-6, 1e-9 * s2 + 1e-300),
                 fmt((std::string(kname(kernel)) + " d2 vs finite difference").c_str(), r, p, t.d2, fd2));
        }
      }
    }
  }
}

// ORDER 0 adds w k to val only; 1 adds w k to val and w k' to c; 2 adds w k' to c and w k'' to h (val untouched).
void test_orders_and_weights() {
  using namespace fastgan;
  const double r = 0.7, p = 0.8, w = -1.75;
  for (int kernel : {kGaussian, kRationalQuadratic, kInverseMultiquadric}) {
    const PairCoef<double> k = pair_coef(kernel, p, w);
    const Closed c = closed(kernel, r, p);
    for (int order = 0; order < 3; ++order) {
      double val = 10.0, cc = 20.0, hh = 30.0;  // accumulators start non-zero: the functions add
      auto add = [&](auto tag) {
        constexpr int O = decltype(tag)::value;
        if (kernel == kGaussian) {
          gaussian_add<O>(gaussian_exp(r, p), k, val, cc, hh);
        } else if (kernel == kRationalQuadratic) {
          rq_add<O>(r, k, val, cc, hh);
        } else {
          imq_add<O>(r, k, val, cc, hh);
        }
      };
      if (order == 0) add(std::integral_constant<int, 0>{});
      if (order == 1) add(std::integral_constant<int, 1>{});
      if (order == 2) add(std::integral_constant<int, 2>{});
      const std::string what = std::string(kname(kernel)) + " ORDER " + std::to_string(order);
      expect(near(val, order < 2 ? 10.0 + w * c.k : 10.0, 1e-14), what + " val");
      expect(near(cc, order >= 1 ? 20.0 + w * c.d1 : 20.0, 1e-14), what + " c");
      expect(near(hh, order == 2 ? 30.0 + w * c.d2 : 30.0, 1e-14), what + " h");
    }
  }
  const PairCoef<double> k = pair_coef(kLaplacian, p, w);
  double val = 10.0, cc = 20.0;
  laplacian_add<0>(r, k, val, cc);
  expect(near(val, 10.0 + w * std::exp(-p * r), 1e-14) && cc == 20.0, "laplacian ORDER 0");
  laplacian_add<1>(r, k, val, cc);
  expect(near(val, 10.0 + 2.0 * w * std::exp(-p * r), 1e-14) && near(cc, 20.0 - w * p * std::exp(-p * r), 1e-14),
         "laplacian ORDER 1");
}

void test_helpers() {
  using namespace fastgan;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  expect(pair_r2(1.0, 2.0, 1.5) == 0.0, "r2 = 0 exactly (1 + 2 - 3)");
  expect(pair_r2(1.0, 1.0, 1.0 + 1e-15) == 0.0, "r2 clamped at 0");
  expect(pair_r2(4.0, 1.0, 1.0) == 3.0, "r2 = |x|^2 + |y|^2 - 2 x.y");
  expect(std::isnan(pair_r2(nan, 1.0, 0.0)), "r2: NaN passes the clamp");
  expect(laplacian_l2_weight(-2.0, 0.0) == 0.0, "laplacian weight 0 at distance 0");
  expect(laplacian_l2_weight(-2.0, 4.0) == -0.5, "laplacian weight c / dist");
  expect(std::isnan(laplacian_l2_weight(-2.0, nan)), "laplacian weight: NaN distance propagates");
  expect(pair_sign(-3.0) == -1.0 && pair_sign(0.0) == 0.0 && pair_sign(2.5) == 1.0 && pair_sign(-0.0) == 0.0,
         "sign");
  expect(pair_sign(nan) == 0.0, "sign(NaN) = 0");
  // q = h (u - v).(x - y) through ux + vy - (u.y + x.v)
  std::mt19937_64 gen(7);
  std::normal_distribution<double> nd;
  for (int it = 0; it < 100; ++it) {
    double x[5], y[5], u[5], v[5], ux = 0, vy = 0, e = 0, direct = 0;
    for (int k = 0; k < 5; ++k) x[k] = nd(gen), y[k] = nd(gen), u[k] = nd(gen), v[k] = nd(gen);
    for (int k = 0; k < 5; ++k) {
      ux += u[k] * x[k];
      vy += v[k] * y[k];
      e += u[k] * y[k] + x[k] * v[k];
      direct += (u[k] - v[k]) * (x[k] - y[k]);
    }
    const double h = nd(gen);
    expect(near(pair_q(h, ux, vy, e), h * direct, 1e-12, 1e-12), "q = h (u - v).(x - y)");
  }
}

// fp32 (the host's vec_exp / vec_log in float) against fp64.
void test_float_against_double() {
  using namespace fastgan;
  double worst = 0.0;
  for (int kernel : {kGaussian, kRationalQuadratic, kInverseMultiquadric, kLaplacian}) {
    for (double p : {0.02, 0.5, 2.0}) {
      for (double r : {0.0, 0.01, 0.3, 1.0, 4.0, 9.0}) {
        const PairTerms<float> f = pair_terms<float>(kernel, float(r), float(p));
        const PairTerms<double> d = pair_terms<double>(kernel, double(float(r)), double(float(p)));
        for (auto [a, b] : {std::pair<double, double>{f.k, d.k}, {f.d1, d.d1}, {f.d2, d.d2}}) {
          const double err = std::abs(a - b) / std::max(std::abs(b), 1e-30);
          if (std::abs(b) > 1e-30) worst = std::max(worst, err);
        }
      }
    }
  }
  std::printf("fp32 vs fp64: worst relative difference %.3g\n", worst);
  expect(worst < 2e-6, "fp32 within 2e-6 of fp64");
}

// MixturePlan: gaussians sorted by p; exact power-of-two ratios squared instead of exp'd, restarting after 4
// squarings; the chained values match direct exponentials.
void test_squaring_chain() {
  using namespace fastgan;
  const std::vector<double> bw = {16.0, 1.0, 4.0, 2.0, 8.0, 3.0};
  const std::vector<double> w = {1.0, 2.0, 3.0, 4.0, 5.0, 6.0};
  const std::vector<double> params = pair_kernel_params(kGaussian, bw, w);
  const MixturePlan<double> mix(kGaussian, params, w);
  // p = 1 / (2 s^2) ascending: s = 16, 8, 4, 3, 2, 1; ratios 4, 4, 16/9 (exp), 9/4 (exp), 4
  const std::vector<int> want_sq = {-1, 2, 2, -1, -1, 2};
  expect(mix.sq == want_sq, "squaring chain: steps");
  for (size_t s = 1; s < mix.coef.size(); ++s) expect(mix.coef[s - 1].p < mix.coef[s].p, "sorted by p");
  expect(mix.coef[0].w == 1.0 && mix.coef[5].w == 2.0, "weights follow their bandwidths");
  for (double r : {0.0, 0.1, 1.0, 5.0, 40.0}) {
    double e = 0.0;
    for (size_t s = 0; s < mix.coef.size(); ++s) {
      if (mix.sq[s] < 0) {
        e = gaussian_exp(r, mix.coef[s].p);
      } else {
        for (int q = 0; q < mix.sq[s]; ++q) e *= e;
      }
      expect(near(e, std::exp(-mix.coef[s].p * r), 1e-14, 1e-300), fmt("chained exp", r, mix.coef[s].p, e,
                                                                        std::exp(-mix.coef[s].p * r)));
    }
  }
  // a chain restarts after kMaxSquarings: 1, 2, 4, 8, 16, 32 (ratio 4 each: 2 squarings)
  const std::vector<double> bw2 = {1.0, 2.0, 4.0, 8.0, 16.0, 32.0};
  const MixturePlan<double> mix2(kGaussian, pair_kernel_params(kGaussian, bw2, bw2), bw2);
  expect(mix2.sq == std::vector<int>({-1, 2, 2, -1, 2, 2}), "squaring chain restarts after 4 squarings");
}

}  // namespace

// poly: k = (p t + o)^n, dk/dt = n p (p t + o)^(n-1), d2k/dt2 = n (n-1) p^2 (p t + o)^(n-2), against std::pow and
// central differences in t (t < 0 included: an integer power of a negative base), and its ORDER semantics.
void test_poly() {
  using namespace fastgan;
  for (int n = 1; n <= 5; ++n) {
    for (double o : {0.0, 1.0, 2.5}) {
      for (double p : {0.05, 0.5, 2.0}) {
        for (double t : {-7.0, -1.3, -0.2, 0.0, 0.4, 3.0, 11.0}) {
          const PairTerms<double> r = pair_terms<double>(kPoly, t, p, n, o);
          const double b = p * t + o;
          const double k = std::pow(b, n), d1 = n * p * std::pow(b, n - 1);
          const double d2 = n == 1 ? 0.0 : n * (n - 1) * p * p * std::pow(b, n - 2);
          const std::string what = "poly n=" + std::to_string(n) + " o=" + std::to_string(o);
          expect(near(r.k, k, 1e-14, 1e-300), fmt((what + " value").c_str(), t, p, r.k, k));
          expect(near(r.d1, d1, 1e-14, 1e-300), fmt((what + " d1").c_str(), t, p, r.d1, d1));
          expect(near(r.d2, d2, 1e-14, 1e-300), fmt((what + " d2").c_str(), t, p, r.d2, d2));
          const double h = 1e-5 * std::max(1.0, std::abs(t));
          const PairTerms<double> lo = pair_terms<double>(kPoly, t - h, p, n, o);
          const PairTerms<double> hi = pair_terms<double>(kPoly, t + h, p, n, o);
          const double scale = std::max({1.0, std::abs(r.k), std::abs(r.d1)});
          expect(near(r.d1, (hi.k - lo.k) / (2.0 * h), 1e-6, 1e-8 * scale),
                 fmt((what + " d1 vs finite difference").c_str(), t, p, r.d1, (hi.k - lo.k) / (2.0 * h)));
          expect(near(r.d2, (hi.d1 - lo.d1) / (2.0 * h), 1e-6, 1e-8 * scale),
                 fmt((what + " d2 vs finite difference").c_str(), t, p, r.d2, (hi.d1 - lo.d1) / (2.0 * h)));
        }
      }
    }
  }
  const double t = -0.9, p = 0.3, w = -1.5, o = 1.0;
  const PairCoef<double> k = pair_coef(kPoly, p, w, 3, o);
  const PairTerms<double> r = pair_terms<double>(kPoly, t, p, 3, o);
  double v0 = 1.0, c0 = 2.0, h0 = 3.0, v2 = 1.0, c2 = 2.0, h2 = 3.0;
  poly_add<0>(t, k, v0, c0, h0);
  poly_add<2>(t, k, v2, c2, h2);
  expect(near(v0, 1.0 + w * r.k, 1e-14) && c0 == 2.0 && h0 == 3.0, "poly ORDER 0: the value only");
  expect(v2 == 1.0 && near(c2, 2.0 + w * r.d1, 1e-14) && near(h2, 3.0 + w * r.d2, 1e-14), "poly ORDER 2: c and h");
  expect(is_dot_kernel(kPoly) && !is_dot_kernel(kGaussian) && !is_laplacian(kPoly), "poly: a kernel of the dot product");
}

int main() {
  test_closed_forms_and_differences();
  test_poly();
  test_orders_and_weights();
  test_helpers();
  test_float_against_double();
  test_squaring_chain();
  return fastgan_test::report();
}
