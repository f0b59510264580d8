"""fastgan ops: one module per op (public function, fake kernels, autograd, Triton launchers), each declared once in
the registry (registry.py: resolution, namespaces, initialisation); reference.py holds their spec.

    fastgan.ops.OPS                      # op name -> its declaration (backends, kernels, reference)
    fastgan.ops.registry.backends(name)  # the backends an op has
"""
from . import reference, registry
from .fused_act import bias_act, output_slope_ops
from .joint import joint_linear
from .minibatch_disc import minibatch_discrimination
from .mmd import kernel_sum, median_bandwidth, median_distance, mmd2, mmd_test
from .registry import OPS
from .weight_grads import input_grads, weight_grads_skipped

__all__ = ["OPS", "bias_act", "joint_linear", "kernel_sum", "median_bandwidth", "median_distance",
           "minibatch_discrimination", "mmd2", "mmd_test", "output_slope_ops", "reference", "registry", "input_grads",
           "weight_grads_skipped"]
