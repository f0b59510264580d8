// C++ unit test of csrc/include/fastgan/minibatch_discrimination.h, the per-pair math that the CPU and CUDA minibatch
// discrimination kernels share: sign / |a - b| / exp(-d) against closed forms, the first- and second-order pair terms
// against central finite differences (fp64, away from ties), and the CPU ops (through the dispatcher, fp64) against a
// naive walk over all pairs built from the same functions (within the batch with and without the self pairs, and
// against a reference batch). Run by ctest; exits non-zero on a failure.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/torch.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "fastgan/minibatch_discrimination.h"

namespace {

using fastgan::md_abs_diff;
using fastgan::md_pair_exp;
using fastgan::md_sign;
using fastgan::md_signed;
using fastgan::md_u_term;

int failures = 0;

void expect(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

// e = exp(-|a - b|_1) of one pair, from the header's functions.
double pair_e(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0;
  for (size_t c = 0; c < a.size(); ++c) d += md_abs_diff(a[c], b[c]);
  return md_pair_exp(d);
}

// G = <p, de/da> + <q, de/db> = -e u: the first-order pair term contracted with the incoming gradients (p, q).
double pair_g(const std::vector<double>& a, const std::vector<double>& b, const std::vector<double>& p,
              const std::vector<double>& q) {
  const double e = pair_e(a, b);
  double g = 0;
  for (size_t c = 0; c < a.size(); ++c) g += p[c] * md_signed(-e, a[c], b[c]) + q[c] * md_signed(e, a[c], b[c]);
  return g;
}

void test_closed_forms() {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  expect(md_sign(2.5) == 1.0 && md_sign(-1e-300) == -1.0 && md_sign(0.0) == 0.0 && md_sign(-0.0) == 0.0 &&
             md_sign(nan) == 0.0 && md_sign(-3.0f) == -1.0f,
         "sign: +1 / -1 / 0 at ties and NaN");
  expect(md_abs_diff(1.5, -2.0) == 3.5 && md_abs_diff(-2.0, 1.5) == 3.5 && md_abs_diff(0.25f, 0.25f) == 0.0f,
         "|a - b|");
  double err = 0, errf = 0;
  for (double d = 0; d < 700; d += 0.0137) {
    err = std::max(err, std::abs(md_pair_exp(d) - std::exp(-d)) / std::exp(-d));
    if (d < 80) {
      const float df = static_cast<float>(d);
      errf = std::max(errf, std::abs(double(md_pair_exp(df)) - std::exp(-double(df))) / std::exp(-double(df)));
    }
  }
  std::printf("     exp(-d): max relative error double %.3g, float %.3g\n", err, errf);
  expect(err < 1e-15 && errf < 4e-7, "exp(-d) against libm (double within 1e-15, float within 4e-7 relative)");
  expect(md_pair_exp(0.0) == 1.0 && md_pair_exp(0.0f) == 1.0f, "exp(-0) = 1 exactly (the self pair)");
  expect(md_pair_exp(std::numeric_limits<double>::infinity()) == 0.0, "exp(-inf) = 0");
  expect(md_u_term(1.0, 3.0, 0.5, 2.0) == 1.5 && md_u_term(3.0, 1.0, 0.5, 2.0) == -1.5 &&
             md_u_term(1.0, 1.0, 0.5, 2.0) == 0.0,
         "u term sign(a - b) (p - q)");
  expect(md_signed(-2.0, 1.0, 0.0) == -2.0 && md_signed(-2.0, 0.0, 1.0) == 2.0 && md_signed(-2.0, 1.0, 1.0) == 0.0,
         "signed term w sign(a - b)");
}

void test_finite_differences() {
  std::mt19937_64 gen(7);
  std::uniform_real_distribution<double> unif(-1.0, 1.0);
  const int C = 7;
  const double h = 1e-6;
  double err1 = 0, err2 = 0, errg = 0;
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<double> a(C), b(C), p(C), q(C);
    for (int c = 0; c < C; ++c) {
      a[c] = unif(gen);
      do b[c] = unif(gen); while (std::abs(a[c] - b[c]) < 1e-3);  // away from the kinks of |a - b|
      p[c] = unif(gen);
      q[c] = unif(gen);
    }
    const double e = pair_e(a, b);
    // u and G = -e u (the identity the second-order kernels use)
    double u = 0;
    for (int c = 0; c < C; ++c) u += md_u_term(a[c], b[c], p[c], q[c]);
    errg = std::max(errg, std::abs(pair_g(a, b, p, q) - (-e * u)));
    for (int c = 0; c < C; ++c) {
      auto ap = a, am = a, bp = b, bm = b;
      ap[c] += h, am[c] -= h, bp[c] += h, bm[c] -= h;
      // first order: de/da_c = -e sign(a_c - b_c), de/db_c = +e sign(a_c - b_c)
      err1 = std::max(err1, std::abs((pair_e(ap, b) - pair_e(am, b)) / (2 * h) - md_signed(-e, a[c], b[c])));
      err1 = std::max(err1, std::abs((pair_e(a, bp) - pair_e(a, bm)) / (2 * h) - md_signed(e, a[c], b[c])));
      // second order: dG/da_c = e u sign(a_c - b_c), dG/db_c = -e u sign(a_c - b_c)
      err2 = std::max(err2, std::abs((pair_g(ap, b, p, q) - pair_g(am, b, p, q)) / (2 * h) -
                                     md_signed(e * u, a[c], b[c])));
      err2 = std::max(err2, std::abs((pair_g(a, bp, p, q) - pair_g(a, bm, p, q)) / (2 * h) -
                                     md_signed(-e * u, a[c], b[c])));
    }
  }
  std::printf("     finite differences: first order %.3g, second order %.3g, G = -e u %.3g\n", err1, err2, errg);
  expect(errg < 1e-14, "<p, de/da> + <q, de/db> = -e u");
  expect(err1 < 1e-8, "de/da, de/db against central differences");
  expect(err2 < 1e-8, "d(-e u)/da, d(-e u)/db against central differences");
}

// ---- the CPU ops against a naive walk over all pairs ----

using FwdFn = at::Tensor(const at::Tensor&, const std::optional<at::Tensor>&, bool);
using BwdFn = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                                 bool);
using Bwd2Fn = std::tuple<at::Tensor, at::Tensor, at::Tensor>(const at::Tensor&, const std::optional<at::Tensor>&,
                                                              const at::Tensor&, const at::Tensor&,
                                                              const std::optional<at::Tensor>&, bool);

// o, dm, dr, dg2, dm2, dr2 of a naive O(B R K C) walk in fp64: every ordered pair (i, j), each with its own weights.
struct Naive {
  at::Tensor o, dm, dr, dg2, dm2, dr2;
};

Naive naive(const at::Tensor& m, const at::Tensor& r, bool self, bool excl, const at::Tensor& g, const at::Tensor& P,
            const at::Tensor& Q) {
  const int64_t B = m.size(0), K = m.size(1), C = m.size(2), R = r.size(0);
  Naive n{at::zeros({B, K}, m.options()),  at::zeros_like(m), at::zeros_like(r),
          at::zeros({B, K}, m.options()), at::zeros_like(m), at::zeros_like(r)};
  auto M = m.accessor<double, 3>();
  auto Rr = r.accessor<double, 3>();
  auto G = g.accessor<double, 2>();
  auto Pa = P.accessor<double, 3>();
  auto Qa = Q.accessor<double, 3>();
  auto o = n.o.accessor<double, 2>();
  auto dm = n.dm.accessor<double, 3>();
  auto dr = n.dr.accessor<double, 3>();
  auto dg2 = n.dg2.accessor<double, 2>();
  auto dm2 = n.dm2.accessor<double, 3>();
  auto dr2 = n.dr2.accessor<double, 3>();
  for (int64_t k = 0; k < K; ++k) {
    for (int64_t i = 0; i < B; ++i) {
      for (int64_t j = 0; j < R; ++j) {
        if (self && i == j) {
          if (!excl) o[i][k] += 1.0;
          continue;  // no derivative: sign(0) = 0
        }
        double d = 0, u = 0;
        for (int64_t c = 0; c < C; ++c) {
          d += md_abs_diff(M[i][k][c], Rr[j][k][c]);
          u += md_u_term(M[i][k][c], Rr[j][k][c], Pa[i][k][c], Qa[j][k][c]);
        }
        const double e = md_pair_exp(d);
        o[i][k] += e;
        // L = sum_ik g_ik o_ik: the pair's e enters o[i] (and within the batch, as the pair (j, i), o[j]): the walk
        // over ordered pairs gives dL/dm_i from e_ij with weight g_i and dL/dr_j (or dL/dm_j) with weight g_i.
        dg2[i][k] -= e * u;
        for (int64_t c = 0; c < C; ++c) {
          const double t1 = md_signed(G[i][k] * e, M[i][k][c], Rr[j][k][c]);
          const double t2 = md_signed(G[i][k] * e * u, M[i][k][c], Rr[j][k][c]);
          dm[i][k][c] -= t1;
          dm2[i][k][c] += t2;
          if (self) {
            dm[j][k][c] += t1;
            dm2[j][k][c] -= t2;
          } else {
            dr[j][k][c] += t1;
            dr2[j][k][c] -= t2;
          }
        }
      }
    }
  }
  return n;
}

bool close(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && at::allclose(a, b, 1e-12, 1e-12);
}

void test_ops() {
  auto& d = c10::Dispatcher::singleton();
  auto fwd = d.findSchemaOrThrow("fastgan::minibatch_discrimination", "").typed<FwdFn>();
  auto bwd = d.findSchemaOrThrow("fastgan::minibatch_discrimination_backward", "").typed<BwdFn>();
  auto bwd2 = d.findSchemaOrThrow("fastgan::minibatch_discrimination_backward2", "").typed<Bwd2Fn>();
  torch::manual_seed(3);
  const auto f64 = torch::dtype(torch::kFloat64);
  for (const auto& [B, R, K, C] : std::vector<std::array<int64_t, 4>>{{7, 5, 3, 4}, {1, 2, 2, 1}, {13, 9, 2, 17}}) {
    const double s = 2.0 / double(C);  // distances O(1): e neither 1 nor negligible
    const auto m = torch::randn({B, K, C}, f64) * s;
    const auto r = torch::randn({R, K, C}, f64) * s;
    const auto g = torch::randn({B, K}, f64);
    const auto P = torch::randn({B, K, C}, f64);
    const auto Q = torch::randn({R, K, C}, f64);
    const std::string shape = " B=" + std::to_string(B) + " R=" + std::to_string(R) + " K=" + std::to_string(K) +
                              " C=" + std::to_string(C);
    for (bool excl : {false, true}) {
      const Naive n = naive(m, m, true, excl, g, P, P);
      const std::string what = shape + (excl ? " within the batch, exclude_self" : " within the batch");
      expect(close(fwd.call(m, std::nullopt, excl), n.o), "forward" + what);
      const auto [dm, dr] = bwd.call(g, m, std::nullopt, excl);
      expect(close(dm, n.dm) && dr.numel() == 0, "backward" + what);
      const auto [dg2, dm2, dr2] = bwd2.call(P, std::nullopt, g, m, std::nullopt, excl);
      expect(close(dg2, n.dg2) && close(dm2, n.dm2) && dr2.numel() == 0, "backward2" + what);
    }
    const Naive n = naive(m, r, false, false, g, P, Q);
    const std::string what = shape + " reference batch";
    expect(close(fwd.call(m, r, false), n.o), "forward" + what);
    const auto [dm, dr] = bwd.call(g, m, r, false);
    expect(close(dm, n.dm) && close(dr, n.dr), "backward" + what);
    const auto [dg2, dm2, dr2] = bwd2.call(P, Q, g, m, r, false);
    expect(close(dg2, n.dg2) && close(dm2, n.dm2) && close(dr2, n.dr2), "backward2" + what);
  }
}

}  // namespace

int main() {
  test_closed_forms();
  test_finite_differences();
  test_ops();
  if (failures) std::printf("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
