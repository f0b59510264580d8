"""fastgan ops: one module per op, named as the op (public function, fake kernels, autograd, Triton launchers), each
declared once in the registry (registry.py: resolution, namespaces, initialisation); reference.py holds their spec.

    fastgan.ops.OPS                      # op name -> its declaration (backends, kernels, reference)
    fastgan.ops.registry.backends(name)  # the backends an op has
    fastgan.ops.module(name)             # the op's module here (fastgan.ops.<name>)

The op functions are top-level API (fastgan.bias_act, fastgan.joint_linear, ...); here `fastgan.ops.<name>` is the
op's module, so that no public name shadows a module (docs/design.md, "One stem per op").
"""
import importlib

from . import bias_act, joint_linear, kernel_sum, minibatch_discrimination, reference, registry
from .bias_act import output_slope_ops
from .kernel_sum import median_bandwidth, median_distance, mmd2, mmd_test
from .registry import OPS
from .weight_grads import input_grads, weight_grads_skipped

__all__ = ["OPS", "bias_act", "input_grads", "joint_linear", "kernel_sum", "median_bandwidth", "median_distance",
           "minibatch_discrimination", "mmd2", "mmd_test", "module", "output_slope_ops", "reference", "registry",
           "weight_grads_skipped"]


def module(name: str):
    """The module of op `name` (a key of OPS): fastgan.ops.<name>, the stem its files share everywhere."""
    if name not in OPS:
        raise ValueError(f"name: expected an op of fastgan.ops.OPS ({', '.join(sorted(OPS))}), got {name!r}")
    return importlib.import_module(f"{__name__}.{name}")
