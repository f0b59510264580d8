"""fastgan ops: one module per op (public function, fake kernel, autograd); reference.py holds their spec."""
from . import reference
from .bias_act import bias_act
from .joint_linear import joint_linear
from .minibatch_disc import minibatch_discrimination
from .mmd import kernel_sum, median_bandwidth, median_distance, mmd2, mmd_test
from .weight_grads import input_grads, weight_grads_skipped

__all__ = ["bias_act", "joint_linear", "kernel_sum", "median_bandwidth", "median_distance", "minibatch_discrimination",
           "mmd2", "mmd_test", "reference", "input_grads", "weight_grads_skipped"]
