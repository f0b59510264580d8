// C++ unit test of the CPU joint_linear op (through the dispatcher) against an ATen composition; ctest runs it.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/torch.h>

#include <cstdio>
#include <string>

int main() {
  using Fn = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                        const std::optional<at::Tensor>&, c10::string_view, double, double);
  auto op = c10::Dispatcher::singleton().findSchemaOrThrow("fastgan::joint_linear", "").typed<Fn>();
  torch::manual_seed(0);
  const auto o = at::TensorOptions().dtype(at::kDouble);
  int failures = 0;
  for (const char* act : {"lrelu", "relu", "linear"}) {
    const auto x = torch::randn({7, 5}, o), z = torch::randn({7, 3}, o);
    const auto w = torch::randn({6, 5}, o), u = torch::randn({6, 3}, o), b = torch::randn({6}, o);
    const auto y = op.call(x, z, w, u, b, act, 0.2, 1.5);
    auto s = at::mm(x, w.t()) + at::mm(z, u.t()) + b;
    const std::string a(act);
    if (a == "lrelu") s = at::where(s > 0, s, s * 0.2);
    if (a == "relu") s = at::relu(s);
    const bool ok = at::allclose(y, s * 1.5, 1e-12, 1e-12);
    std::printf("%s joint_linear %s forward\n", ok ? "ok  " : "FAIL", act);
    failures += !ok;
  }
  bool threw = false;
  try {
    op.call(torch::randn({2, 3}), torch::randn({2, 1}), torch::randn({4, 3}), torch::randn({4, 2}), std::nullopt,
            "lrelu", 0.2, 1.0);
  } catch (const c10::Error& e) {
    threw = std::string(e.what()).find("z_weight: expected shape (4, 1)") != std::string::npos;
  }
  std::printf("%s mismatched z_weight raises a named error\n", threw ? "ok  " : "FAIL");
  failures += !threw;
  std::printf("%d failed\n", failures);
  return failures == 0 ? 0 : 1;
}
