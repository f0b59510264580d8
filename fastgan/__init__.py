"""fastgan: fused kernels for adversarial generative training in PyTorch.

    import fastgan
    y = fastgan.bias_act(x, b, act="lrelu", clamp=256)       # C++ on CPU, CUDA on GPU, Triton on request
    with fastgan.use_backend("reference"): ...               # the pure-PyTorch spec, for comparison
    fastgan.backend_info()                                   # what was built and what runs
"""
import torch  # noqa: F401  (first: fastgan._C links against its libraries)

from . import _ext

_ext.load()  # runs the C++ op registrations (torch.ops.fastgan.*) when the extension is built

from . import nn, ops  # noqa: E402
from .activations import ACTIVATIONS  # noqa: E402
from .allocator import allocator_info, tune_cpu_allocator  # noqa: E402
from .backend import backend_info, current_backend, use_backend  # noqa: E402
from .nn.fusion import FuseReport, fuse  # noqa: E402
from .ops import input_grads, median_bandwidth, median_distance, mmd2, mmd_test  # noqa: E402
from .ops.bias_act import bias_act  # noqa: E402
from .ops.joint_linear import joint_linear  # noqa: E402
from .ops.kernel_sum import kernel_sum  # noqa: E402
from .ops.minibatch_discrimination import minibatch_discrimination  # noqa: E402
from .penalties import gradient_penalty, wgan_critic_loss  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "ACTIVATIONS",
    "allocator_info",
    "backend_info",
    "bias_act",
    "joint_linear",
    "kernel_sum",
    "median_bandwidth",
    "median_distance",
    "minibatch_discrimination",
    "mmd2",
    "mmd_test",
    "current_backend",
    "fuse",
    "FuseReport",
    "gradient_penalty",
    "input_grads",
    "wgan_critic_loss",
    "nn",
    "ops",
    "tune_cpu_allocator",
    "use_backend",
]
