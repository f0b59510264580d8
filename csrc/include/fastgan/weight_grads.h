// The graph tasks that want input gradients only (fastgan.ops.input_grads, a gradient penalty's inner gradient):
// one registry for the C++ autograd kernels (csrc/autograd.cpp) and the Python ones (fastgan/ops/weight_grads.py,
// through fastgan._C), so a task marked from Python is seen by both.
#pragma once

#include <cstdint>

namespace fastgan {

void mark_input_grads_task(int64_t task_id);
void unmark_input_grads_task(int64_t task_id);
// True in the backward of a marked graph task: fastgan's ops then skip their weight and bias gradients.
bool weight_grads_skipped();

}  // namespace fastgan
