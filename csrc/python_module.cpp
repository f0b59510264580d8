// fastgan._C: importing it runs the op registrations above; it also reports how it was built.
#include <torch/extension.h>

#include "fastgan/activations.h"
#include "fastgan/weight_grads.h"

namespace {

pybind11::list activation_table() {
  pybind11::list out;
  for (int i = 0; i < fastgan::kNumActs; ++i) {
    const auto& a = fastgan::kActTable[i];
    pybind11::dict d;
    d["id"] = i;
    d["name"] = a.name;
    d["default_alpha"] = a.default_alpha;
    d["default_gain"] = a.default_gain;
    d["y_ok"] = a.y_ok;
    d["has_2nd"] = a.has_2nd;
    out.append(d);
  }
  return out;
}

pybind11::dict build_info() {
  pybind11::dict d;
#ifdef FASTGAN_WITH_CUDA
  d["cuda"] = true;
  d["cuda_archs"] = std::string(FASTGAN_CUDA_ARCHS_STR);
#else
  d["cuda"] = false;
  d["cuda_archs"] = std::string();
#endif
#ifdef _OPENMP
  d["openmp"] = true;
#else
  d["openmp"] = false;
#endif
  d["cpu_arch"] = std::string(FASTGAN_CPU_ARCH_STR);
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastgan C++/CUDA kernels (registered as torch.ops.fastgan.*)";
  m.def("activation_table", &activation_table, "The C++ activation table, for checking it against Python's");
  m.def("build_info", &build_info, "How this extension was built");
  // fastgan.ops.input_grads marks its graph task here, where the C++ autograd kernels (csrc/autograd.cpp) look
  m.def("mark_input_grads_task", &fastgan::mark_input_grads_task, "Marks a graph task as wanting input gradients only");
  m.def("unmark_input_grads_task", &fastgan::unmark_input_grads_task, "Unmarks a graph task");
  m.def("weight_grads_skipped", &fastgan::weight_grads_skipped,
        "True in the backward of a graph task marked by mark_input_grads_task");
}
