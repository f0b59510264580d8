// C++ unit test of csrc/include/fastgan/vec_math.h: vec_exp / vec_log against libm (correctly rounded to < 1 ulp on
// glibc) over random arguments of the whole useful range, the edge values, and a check that the special values
// (NaN, +-inf, the overflow and underflow bounds) come out as documented. ctest runs it.
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>

#include "fastgan/vec_math.h"

namespace {

template <typename T, typename I>
I ulp_distance(T a, T b) {
  I ia = std::bit_cast<I>(a), ib = std::bit_cast<I>(b);
  if (ia < 0) ia = std::numeric_limits<I>::min() - ia;  // map the sign-magnitude order onto the integers
  if (ib < 0) ib = std::numeric_limits<I>::min() - ib;
  return ia > ib ? ia - ib : ib - ia;
}

int failures = 0;

void expect(bool ok, const char* what) {
  if (!ok) {
    std::printf("FAILED: %s\n", what);
    ++failures;
  }
}

}  // namespace

int main() {
  using fastgan::vec_exp;
  using fastgan::vec_log;
  std::mt19937_64 gen(1234);
  int64_t ef = 0, ed = 0, lf = 0, ld = 0;
  for (int i = 0; i < 2000000; ++i) {
    const float xf = static_cast<float>(std::uniform_real_distribution<double>(-87.3, 88.7)(gen));
    ef = std::max<int64_t>(ef, ulp_distance<float, int32_t>(vec_exp(xf), std::exp(xf)));
    const double xd = std::uniform_real_distribution<double>(-708.0, 709.7)(gen);
    ed = std::max<int64_t>(ed, ulp_distance<double, int64_t>(vec_exp(xd), std::exp(xd)));
    const double t = std::exp(std::uniform_real_distribution<double>(-80.0, 80.0)(gen));
    lf = std::max<int64_t>(lf, ulp_distance<float, int32_t>(vec_log(static_cast<float>(t)), std::log(static_cast<float>(t))));
    ld = std::max<int64_t>(ld, ulp_distance<double, int64_t>(vec_log(t), std::log(t)));
  }
  for (int i = 0; i < 1000000; ++i) {  // log just above 1 (the rq kernel's t = 1 + r2 / 2a)
    const float t = 1.0f + static_cast<float>(i) * 1e-6f;
    lf = std::max<int64_t>(lf, ulp_distance<float, int32_t>(vec_log(t), std::log(t)));
    const double td = 1.0 + static_cast<double>(i) * 1e-9;
    ld = std::max<int64_t>(ld, ulp_distance<double, int64_t>(vec_log(td), std::log(td)));
  }
  std::printf("max ulp error: exp float %lld double %lld, log float %lld double %lld\n", (long long)ef, (long long)ed,
              (long long)lf, (long long)ld);
  expect(ef <= 2 && ed <= 2 && lf <= 2 && ld <= 2, "within 2 ulp of libm");

  const float inf = std::numeric_limits<float>::infinity();
  const double dinf = std::numeric_limits<double>::infinity();
  expect(std::isnan(vec_exp(std::nanf(""))) && std::isnan(vec_exp(std::nan(""))), "exp(NaN) = NaN");
  expect(std::isnan(vec_log(std::nanf(""))) && std::isnan(vec_log(std::nan(""))), "log(NaN) = NaN");
  expect(vec_exp(inf) == inf && vec_exp(dinf) == dinf && vec_exp(100.0f) == inf, "exp overflows to +inf");
  expect(vec_log(inf) == inf && vec_log(dinf) == dinf, "log(+inf) = +inf");
  expect(vec_exp(-inf) == 0.0f && vec_exp(-100.0f) == 0.0f, "exp underflows to 0");
  expect(vec_exp(-1000.0) == 0.0 && vec_exp(-dinf) == 0.0, "exp underflows to 0 (double)");
  expect(vec_exp(0.0f) == 1.0f && vec_exp(0.0) == 1.0 && vec_log(1.0f) == 0.0f && vec_log(1.0) == 0.0,
         "exp(0) = 1, log(1) = 0");
  const float top = 88.72f;  // just below the float overflow bound: 2^128 must not be formed
  expect(std::isfinite(vec_exp(top)) && ulp_distance<float, int32_t>(vec_exp(top), std::exp(top)) <= 2,
         "exp near the overflow bound");
  int64_t tf = 0;
  for (int i = 0; i < 2000000; ++i) {
    const float x = static_cast<float>(std::uniform_real_distribution<double>(-12.0, 12.0)(gen));
    tf = std::max<int64_t>(tf, ulp_distance<float, int32_t>(fastgan::vec_tanh(x), std::tanh(x)));
  }
  for (float x = -1.0f; x <= 1.0f; x += 1.0f / 4096) {  // around the switch at 0.625 and near 0
    tf = std::max<int64_t>(tf, ulp_distance<float, int32_t>(fastgan::vec_tanh(x), std::tanh(x)));
  }
  std::printf("max ulp error: tanh float %lld\n", (long long)tf);
  expect(tf <= 3, "tanh within 3 ulp of libm");
  expect(fastgan::vec_tanh(100.0f) == 1.0f && fastgan::vec_tanh(-inf) == -1.0f && fastgan::vec_tanh(0.0f) == 0.0f &&
             std::signbit(fastgan::vec_tanh(-0.0f)) && std::isnan(fastgan::vec_tanh(std::nanf(""))) &&
             fastgan::vec_tanh(1e-30f) == 1e-30f,
         "tanh limits, signed zero, NaN, tiny");
  if (failures == 0) std::printf("vec_math: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
