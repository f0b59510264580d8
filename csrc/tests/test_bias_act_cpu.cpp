// C++ unit tests of the CPU bias_act kernels, called through the dispatcher as any client would, against ATen
// compositions (and ATen autograd for the derivatives). Run by ctest; exits non-zero on the first failure.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/torch.h>

#include "fastgan/bias_act.h"

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

bool close(const at::Tensor& a, const at::Tensor& b, double tol) {
  return a.sizes() == b.sizes() && at::allclose(a.to(at::kDouble), b.to(at::kDouble), tol, tol);
}

using FwdFn = at::Tensor(const at::Tensor&, const std::optional<at::Tensor>&, int64_t, c10::string_view, double,
                         double, double);
using BwdFn = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                                 int64_t, c10::string_view, double, double, double, bool, bool);

auto fwd_op() {
  return c10::Dispatcher::singleton().findSchemaOrThrow("fastgan::bias_act", "").typed<FwdFn>();
}
auto bwd_op() {
  return c10::Dispatcher::singleton().findSchemaOrThrow("fastgan::bias_act_backward", "").typed<BwdFn>();
}

at::Tensor ref_act(const at::Tensor& s, const std::string& act, double alpha) {
  if (act == "lrelu") return at::where(s > 0, s, s * alpha);
  if (act == "tanh") return at::tanh(s);
  if (act == "swish") return s * at::sigmoid(s);
  if (act == "softplus") return at::logaddexp(s, at::zeros_like(s));
  return s;
}

void check_case(const std::string& act, double alpha, double gain, double clamp, const at::Tensor& x0, bool ref_is_y) {
  const auto b0 = torch::randn({x0.size(1)}, x0.options());
  const auto y = fwd_op().call(x0, b0, 1, act, alpha, gain, clamp);

  auto x = x0.detach().clone().requires_grad_(true);
  auto b = b0.detach().clone().requires_grad_(true);
  auto yr = ref_act(x + b.view({1, -1, 1, 1}), act, alpha) * gain;
  if (clamp >= 0) yr = at::where(yr.abs() < clamp, yr, at::clamp(yr, -clamp, clamp).detach());
  const std::string name = act + (ref_is_y ? " (ref=y)" : " (ref=x)") + (x0.is_contiguous() ? "" : " channels-last");
  expect(close(y, yr.detach(), 1e-10), name + ": forward");

  const auto gy = torch::randn_like(y);
  auto grads = torch::autograd::grad({yr}, {x, b}, {gy});
  const auto out = bwd_op().call(gy, ref_is_y ? y : x0, ref_is_y ? std::optional<at::Tensor>() : b0, 1, act, alpha,
                                 gain, clamp, ref_is_y, true);
  expect(close(std::get<0>(out), grads[0], 1e-10), name + ": dx");
  expect(close(std::get<1>(out), grads[1], 1e-10), name + ": db");
}

}  // namespace

// ChannelWalk (the CUDA kernels' channel of a grid-stride walk) against (i / S) % C at every step.
void check_channel_walk() {
  bool ok = true;
  for (int64_t S : {int64_t(1), int64_t(3), int64_t(7), int64_t(64), int64_t(1000)}) {
    for (int64_t C : {1, 2, 5, 513}) {
      for (int64_t start : {0, 1, 6, 999}) {
        for (int64_t step : {int64_t(1), int64_t(8), int64_t(256 * 132), 3 * S * C + 1}) {
          fastgan::ChannelWalk w(start, step, S, C);
          for (int64_t k = 0, i = start; k < 200; ++k, i += step, w.advance()) {
            ok = ok && w.c == (i / S) % C && w.r == i % S;
          }
        }
      }
    }
  }
  expect(ok, "ChannelWalk follows (i / S) % C along grid-stride walks");
}

int main() {
  check_channel_walk();
  torch::manual_seed(0);
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  const auto x = torch::randn({3, 5, 4, 6}, opts);
  const auto xl = torch::randn({3, 5, 4, 6}, opts).contiguous(at::MemoryFormat::ChannelsLast);
  for (const auto& xx : {x, xl}) {
    check_case("lrelu", 0.2, std::sqrt(2.0), 1.5, xx, true);
    check_case("lrelu", 0.2, std::sqrt(2.0), 1.5, xx, false);
    check_case("tanh", 0.0, 1.0, -1.0, xx, true);
    check_case("softplus", 0.0, 1.0, 0.7, xx, false);
    check_case("swish", 0.0, std::sqrt(2.0), -1.0, xx, false);
  }
  bool threw = false;
  try {
    fwd_op().call(x, std::nullopt, 1, "gelu", 0.0, 1.0, -1.0);
  } catch (const c10::Error& e) {
    threw = std::string(e.what()).find("act: unknown activation 'gelu'") != std::string::npos;
  }
  expect(threw, "unknown activation raises a named error");
  const auto empty = fwd_op().call(torch::randn({0, 5, 2}, opts), torch::randn({5}, opts), 1, "relu", 0, 1, -1);
  expect(empty.numel() == 0 && empty.sizes() == at::IntArrayRef({0, 5, 2}), "zero-size input");
  std::printf("%d failed\n", failures);
  return failures == 0 ? 0 : 1;
}
