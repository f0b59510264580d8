// Autograd kernels (DispatchKey Autograd: every device) of the C++ ops a training iteration calls dozens of times:
// bias_act, its two derivative kernels and joint_linear. Issue 29 measured the Python autograd of these ops
// (torch.library.register_autograd) at ~27 us per forward and ~50 us per backward node on the CPU, on top of kernels
// of ~10 us: a BiGAN iteration on mnist5k lost ~7 ms to it against eager PyTorch. Here the same structure runs in
// C++ (torch::autograd::Function), and every derivative is again a call through the dispatcher, so each has its own
// autograd and second derivatives stay exact; the third raises NotImplementedError.
//
// The Triton ops keep the Python autograd in fastgan/ops/bias_act.py and fastgan/ops/joint_linear.py: the same equations,
// written once more there. The kernels minibatch_discrimination and kernel_sum run a few times per iteration and keep theirs.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/csrc/autograd/graph_task.h>
#include <torch/library.h>

#include <atomic>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "fastgan/activations.h"
#include "fastgan/checks.h"
#include "fastgan/weight_grads.h"

namespace fastgan {

// ---- the graph tasks that want input gradients only ----
namespace {
std::mutex g_tasks_mutex;
std::unordered_set<int64_t> g_tasks;
std::atomic<int64_t> g_num_tasks{0};  // read without the lock: the common case (no penalty running) costs one load
}  // namespace

void mark_input_grads_task(int64_t task_id) {
  std::lock_guard<std::mutex> lock(g_tasks_mutex);
  if (g_tasks.insert(task_id).second) g_num_tasks.fetch_add(1);
}

void unmark_input_grads_task(int64_t task_id) {
  std::lock_guard<std::mutex> lock(g_tasks_mutex);
  if (g_tasks.erase(task_id) > 0) g_num_tasks.fetch_sub(1);
}

bool weight_grads_skipped() {
  if (g_num_tasks.load() == 0) return false;
  const int64_t id = torch::autograd::get_current_graph_task_id();
  std::lock_guard<std::mutex> lock(g_tasks_mutex);
  return g_tasks.count(id) > 0;
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using at::Tensor;
using OptTensor = std::optional<Tensor>;
using Pair = std::tuple<Tensor, Tensor>;

// ---- the ops, called through the dispatcher (below autograd in a forward; with autograd in a backward) ----
template <class Sig>
c10::TypedOperatorHandle<Sig> find_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Sig>();
}

Tensor call_bias_act(const Tensor& x, const OptTensor& b, int64_t dim, c10::string_view act, double alpha,
                     double gain, double clamp) {
  static const auto op = find_op<Tensor(const Tensor&, const OptTensor&, int64_t, c10::string_view, double, double,
                                        double)>("fastgan::bias_act");
  return op.call(x, b, dim, act, alpha, gain, clamp);
}

Pair call_bias_act_backward(const Tensor& grad, const Tensor& ref, const OptTensor& b, int64_t dim,
                            c10::string_view act, double alpha, double gain, double clamp, bool ref_is_y,
                            bool bias_grad) {
  static const auto op = find_op<Pair(const Tensor&, const Tensor&, const OptTensor&, int64_t, c10::string_view,
                                      double, double, double, bool, bool)>("fastgan::bias_act_backward");
  return op.call(grad, ref, b, dim, act, alpha, gain, clamp, ref_is_y, bias_grad);
}

Pair call_bias_act_backward2(const Tensor& grad_grad, const Tensor& grad, const Tensor& ref, const OptTensor& b,
                             int64_t dim, c10::string_view act, double alpha, double gain, double clamp,
                             bool ref_is_y, bool bias_grad) {
  static const auto op = find_op<Pair(const Tensor&, const Tensor&, const Tensor&, const OptTensor&, int64_t,
                                      c10::string_view, double, double, double, bool, bool)>(
      "fastgan::bias_act_backward2");
  return op.call(grad_grad, grad, ref, b, dim, act, alpha, gain, clamp, ref_is_y, bias_grad);
}

Tensor call_joint_linear(const Tensor& x, const Tensor& z, const Tensor& weight, const Tensor& z_weight,
                         const OptTensor& bias, c10::string_view act, double alpha, double gain) {
  static const auto op = find_op<Tensor(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const OptTensor&,
                                        c10::string_view, double, double)>("fastgan::joint_linear");
  return op.call(x, z, weight, z_weight, bias, act, alpha, gain);
}

OptTensor opt(const Tensor& t) { return t.defined() ? OptTensor(t) : std::nullopt; }

bool exact_dtype(at::ScalarType st) { return st == at::kFloat || st == at::kDouble; }

// bias_act's element-wise parameters, kept in the context between forward and backward.
struct ActParams {
  int64_t dim;
  std::string act;
  double alpha, gain, clamp;

  void save(AutogradContext* ctx) const {
    ctx->saved_data["dim"] = dim;
    ctx->saved_data["act"] = act;
    ctx->saved_data["alpha"] = alpha;
    ctx->saved_data["gain"] = gain;
    ctx->saved_data["clamp"] = clamp;
  }
  static ActParams load(AutogradContext* ctx) {
    return {ctx->saved_data["dim"].toInt(), ctx->saved_data["act"].toStringRef(), ctx->saved_data["alpha"].toDouble(),
            ctx->saved_data["gain"].toDouble(), ctx->saved_data["clamp"].toDouble()};
  }
};

// The sum of t over every dimension but d (the bias gradient of a broadcast along d).
Tensor sum_but(const Tensor& t, int64_t d) {
  if (t.dim() <= 1) return t.clone();
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < t.dim(); ++i) {
    if (i != d) dims.push_back(i);
  }
  return t.sum(dims);
}

int64_t wrap_dim(int64_t dim, int64_t ndim) { return dim < 0 ? dim + ndim : dim; }

// needs_input_grad counts the defined tensor inputs only: b (optional, always the last tensor input) has an index
// only when it was given.
bool needs_bias(AutogradContext* ctx, bool has_bias, size_t index) {
  return has_bias && ctx->needs_input_grad(index);
}

// ---- bias_act: saves y when the derivative is exact from it (fp32 / fp64), else x and b ----
struct BiasActFn : torch::autograd::Function<BiasActFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const OptTensor& b, int64_t dim, c10::string_view act,
                        double alpha, double gain, double clamp) {
    at::AutoDispatchBelowADInplaceOrView below;
    Tensor y = call_bias_act(x, b, dim, act, alpha, gain, clamp);
    const ActParams p{dim, std::string(act), alpha, gain, clamp};
    const int a = parse_act(p.act);
    const bool trivial = a == kLinear && clamp < 0;
    const bool ref_is_y = kActTable[a].y_ok && alpha >= 0 && gain != 0 && exact_dtype(x.scalar_type());
    p.save(ctx);
    ctx->saved_data["trivial"] = trivial;
    ctx->saved_data["ref_is_y"] = ref_is_y;
    ctx->saved_data["has_b"] = b.has_value() && b->defined();
    if (ref_is_y && !trivial) {
      ctx->save_for_backward({y});
    } else if (!trivial) {
      ctx->save_for_backward({x, b.value_or(Tensor())});
    }
    ctx->set_materialize_grads(false);
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list out(7);
    const Tensor& gy = grads[0];
    if (!gy.defined()) return out;
    const ActParams p = ActParams::load(ctx);
    const bool need_x = ctx->needs_input_grad(0);
    // a penalty's inner gradient wants dx only
    const bool need_b = needs_bias(ctx, ctx->saved_data["has_b"].toBool(), 1) && !weight_grads_skipped();
    Tensor dx, db;
    if (ctx->saved_data["trivial"].toBool()) {
      dx = p.gain == 1.0 ? gy : gy * p.gain;
      if (need_b) db = sum_but(dx, wrap_dim(p.dim, gy.dim()));
    } else {
      const bool ref_is_y = ctx->saved_data["ref_is_y"].toBool();
      const variable_list saved = ctx->get_saved_variables();
      const OptTensor b = ref_is_y ? std::nullopt : opt(saved[1]);
      std::tie(dx, db) =
          call_bias_act_backward(gy, saved[0], b, p.dim, p.act, p.alpha, p.gain, p.clamp, ref_is_y, need_b);
    }
    if (need_x) out[0] = dx;
    if (need_b) out[1] = db;
    return out;
  }
};

// ---- bias_act_backward: (dx, db); its derivative uses bias_act_backward (d grad) and bias_act_backward2 (d ref) ----
struct BiasActBackwardFn : torch::autograd::Function<BiasActBackwardFn> {
  static variable_list forward(AutogradContext* ctx, const Tensor& grad, const Tensor& ref, const OptTensor& b,
                               int64_t dim, c10::string_view act, double alpha, double gain, double clamp,
                               bool ref_is_y, bool bias_grad) {
    at::AutoDispatchBelowADInplaceOrView below;
    auto [dx, db] = call_bias_act_backward(grad, ref, b, dim, act, alpha, gain, clamp, ref_is_y, bias_grad);
    ActParams{dim, std::string(act), alpha, gain, clamp}.save(ctx);
    ctx->saved_data["ref_is_y"] = ref_is_y;
    ctx->saved_data["bias_grad"] = bias_grad;
    ctx->save_for_backward({grad, ref, b.value_or(Tensor())});
    ctx->set_materialize_grads(false);
    return {dx, db};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list out(10);
    const ActParams p = ActParams::load(ctx);
    const bool ref_is_y = ctx->saved_data["ref_is_y"].toBool();
    const variable_list saved = ctx->get_saved_variables();
    Tensor grad = saved[0], ref = saved[1], b = saved[2];
    const at::ScalarType dtype = ref.scalar_type();
    Tensor dd = grads[0];
    const Tensor& gdb = grads[1];
    if (ctx->saved_data["bias_grad"].toBool() && gdb.defined()) {  // db = sum(dx): its gradient broadcasts onto dx's
      std::vector<int64_t> shape(ref.dim(), 1);
      shape[wrap_dim(p.dim, ref.dim())] = -1;
      const Tensor gb = gdb.reshape(shape).expand_as(ref);
      if (!dd.defined()) {
        dd = gb;
      } else if (exact_dtype(dtype)) {
        dd = dd + gb;
      } else {  // fp16 / bf16: adding in half precision would round; run this step in fp32 instead
        dd = dd.to(at::kFloat) + gb.to(at::kFloat);
        grad = grad.to(at::kFloat);
        ref = ref.to(at::kFloat);
        if (b.defined()) b = b.to(at::kFloat);
      }
    }
    if (!dd.defined()) return out;
    const bool need_grad = ctx->needs_input_grad(0), need_ref = ctx->needs_input_grad(1);
    const bool need_b = needs_bias(ctx, b.defined(), 2);
    if (need_grad) {
      out[0] = std::get<0>(call_bias_act_backward(dd, ref, opt(b), p.dim, p.act, p.alpha, p.gain, p.clamp, ref_is_y,
                                                  false))
                   .to(dtype);
    }
    if ((need_ref || need_b) && kActTable[parse_act(p.act)].has_2nd) {
      const bool want_b = need_b && !ref_is_y;
      auto [r, rb] =
          call_bias_act_backward2(dd, grad, ref, opt(b), p.dim, p.act, p.alpha, p.gain, p.clamp, ref_is_y, want_b);
      if (need_ref) out[1] = r.to(dtype);
      if (want_b) out[2] = rb.to(dtype);
    }
    return out;
  }
};

// ---- bias_act_backward2: the end of the chain ----
struct BiasActBackward2Fn : torch::autograd::Function<BiasActBackward2Fn> {
  static variable_list forward(AutogradContext* ctx, const Tensor& grad_grad, const Tensor& grad, const Tensor& ref,
                               const OptTensor& b, int64_t dim, c10::string_view act, double alpha, double gain,
                               double clamp, bool ref_is_y, bool bias_grad) {
    at::AutoDispatchBelowADInplaceOrView below;
    auto [r, rb] = call_bias_act_backward2(grad_grad, grad, ref, b, dim, act, alpha, gain, clamp, ref_is_y, bias_grad);
    return {r, rb};
  }

  static variable_list backward(AutogradContext*, variable_list) {
    TORCH_CHECK_NOT_IMPLEMENTED(false,
                                "fastgan.bias_act: third-order derivatives are not implemented "
                                "(fastgan::bias_act_backward2 has no backward); use impl='reference' if you need them");
    return {};
  }
};

// ---- joint_linear: dA = gy * act'(y) * gain (bias_act_backward, which also sums db), then four matrix products ----
struct JointLinearFn : torch::autograd::Function<JointLinearFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& z, const Tensor& weight,
                        const Tensor& z_weight, const OptTensor& bias, c10::string_view act, double alpha,
                        double gain) {
    at::AutoDispatchBelowADInplaceOrView below;
    Tensor y = call_joint_linear(x, z, weight, z_weight, bias, act, alpha, gain);
    ctx->saved_data["act"] = std::string(act);
    ctx->saved_data["alpha"] = alpha;
    ctx->saved_data["gain"] = gain;
    ctx->saved_data["has_b"] = bias.has_value() && bias->defined();
    ctx->save_for_backward({x, z, weight, z_weight, y});
    ctx->set_materialize_grads(false);
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list out(8);
    const Tensor& gy = grads[0];
    if (!gy.defined()) return out;
    const std::string& act = ctx->saved_data["act"].toStringRef();
    const double alpha = ctx->saved_data["alpha"].toDouble(), gain = ctx->saved_data["gain"].toDouble();
    const variable_list s = ctx->get_saved_variables();  // x, z, weight, z_weight, y
    const bool nx = ctx->needs_input_grad(0), nz = ctx->needs_input_grad(1);
    const bool skip = weight_grads_skipped();  // inside a gradient penalty's inner gradient: only dx, dz are wanted
    const bool nw = !skip && ctx->needs_input_grad(2), nu = !skip && ctx->needs_input_grad(3);
    const bool nb = !skip && needs_bias(ctx, ctx->saved_data["has_b"].toBool(), 4);
    Tensor da, db;
    if (act == "linear") {
      da = gain == 1.0 ? gy : gy * gain;
      if (nb) db = da.sum(0);
    } else {
      std::tie(da, db) = call_bias_act_backward(gy, s[4], std::nullopt, 1, act, alpha, gain, -1.0, true, nb);
    }
    if (nx) out[0] = at::mm(da, s[2]);
    if (nz) out[1] = at::mm(da, s[3]);
    if (nw) out[2] = at::mm(da.t(), s[0]);
    if (nu) out[3] = at::mm(da.t(), s[1]);
    if (nb) out[4] = db;
    return out;
  }
};

Tensor bias_act_autograd(const Tensor& x, const OptTensor& b, int64_t dim, c10::string_view act, double alpha,
                         double gain, double clamp) {
  return BiasActFn::apply(x, b, dim, act, alpha, gain, clamp);
}

Pair bias_act_backward_autograd(const Tensor& grad, const Tensor& ref, const OptTensor& b, int64_t dim,
                                c10::string_view act, double alpha, double gain, double clamp, bool ref_is_y,
                                bool bias_grad) {
  auto r = BiasActBackwardFn::apply(grad, ref, b, dim, act, alpha, gain, clamp, ref_is_y, bias_grad);
  return {r[0], r[1]};
}

Pair bias_act_backward2_autograd(const Tensor& grad_grad, const Tensor& grad, const Tensor& ref, const OptTensor& b,
                                 int64_t dim, c10::string_view act, double alpha, double gain, double clamp,
                                 bool ref_is_y, bool bias_grad) {
  auto r = BiasActBackward2Fn::apply(grad_grad, grad, ref, b, dim, act, alpha, gain, clamp, ref_is_y, bias_grad);
  return {r[0], r[1]};
}

Tensor joint_linear_autograd(const Tensor& x, const Tensor& z, const Tensor& weight, const Tensor& z_weight,
                             const OptTensor& bias, c10::string_view act, double alpha, double gain) {
  return JointLinearFn::apply(x, z, weight, z_weight, bias, act, alpha, gain);
}

}  // namespace

TORCH_LIBRARY_IMPL(fastgan, Autograd, m) {
  m.impl("bias_act", &bias_act_autograd);
  m.impl("bias_act_backward", &bias_act_backward_autograd);
  m.impl("bias_act_backward2", &bias_act_backward2_autograd);
  m.impl("joint_linear", &joint_linear_autograd);
}

}  // namespace fastgan
