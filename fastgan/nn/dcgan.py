"""DCGAN-style convolutional G, D and E (Radford et al. 2016), fused (fastgan.bias_act) and eager twins.

Every layer is a 5x5, stride-2 convolution (padding 2; transposed: output_padding 1, so each doubles or halves the
size), then the bias and activation:

    D, E  x (N, nc, S, S) -> conv1 base -> conv2 2 base -> conv3 4 base -> conv4 8 base (S/16 x S/16), lrelu 0.2
          D: -> linear logit (N,);  E: -> linear z (N, z_dim)
    G     z (N, z_dim) -> fc to 8 base x S/16 x S/16, relu -> deconv1 4 base -> deconv2 2 base -> deconv3 base
          -> deconv4 nc, tanh: (N, nc, S, S)

S (`size`) is 64 or 32; widths scale with `base` (default 64: 64-128-256-512). Gain 1 everywhere.

batch_norm=False (batch-norm-free): the conv has no bias of its own; its bias is a parameter handed to
fastgan.bias_act(h, bias, dim=1, act), which adds it, applies the activation in one pass and reduces the bias
gradient in the backward pass of the activation. batch_norm=True: conv (no bias) -> BatchNorm2d (affine, the DCGAN
way) -> bias_act without a bias (the batch norm's shift is the bias), except on D's and E's first layer and G's
output layer, which, as in DCGAN, have no batch norm and keep their bias.

eager=True: the same parameters (names, shapes) computed with F.conv2d / F.conv_transpose2d with the bias and torch
activations, so `twin.load_state_dict(fused.state_dict())` gives the same outputs and gradients.

Initialisation (DCGAN): weights N(0, 0.02), biases 0, batch-norm scales N(1, 0.02) and shifts 0.

Joint discriminator (z_dim given): a BiGAN D(x, z). The conv features h (N, 8 base S/16 S/16) and z meet in one
hidden layer before the output, a fused JointLinear:  logit = w . lrelu(W h + U z + b) + c. A nonlinearity after the
mixing is required: adding a projection of z to the features right before a linear output would make the logit
f(x) + g(z), which cannot tell matching (x, z) pairs from mismatched ones.
"""
from __future__ import annotations

import torch
from torch import nn

from .._checks import positive_int
from .joint_linear import EagerJointLinear, JointLinear
from .layers import ConvAct, LinearAct, make_act

__all__ = ["DCGANDiscriminator", "DCGANEncoder", "DCGANGenerator"]

_LEAK = 0.2
_SIZES = (32, 64)


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size not in _SIZES:
        raise ValueError(f"size: expected an image size of 32 or 64, got {size!r}")
    return size


def _dcgan_init_linear(layer: nn.Module) -> None:
    for name in ("weight", "z_weight"):
        w = getattr(layer, name, None)
        if w is not None:
            nn.init.normal_(w, 0.0, 0.02)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)


def _check_images(x: torch.Tensor, nc: int, size: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != (nc, size, size):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x: expected images of shape (N, {nc}, {size}, {size}), got {shape}")


class _ConvTrunk(nn.Module):
    """The four downsampling layers of D and E: (N, nc, S, S) -> (N, 8 base * (S/16)^2)."""

    def __init__(self, nc: int, size: int, base: int, batch_norm: bool, impl: str | None, eager: bool):
        super().__init__()
        self.nc, self.size = positive_int(nc, "nc"), _check_size(size)
        self.base, self.batch_norm, self.eager = positive_int(base, "base"), bool(batch_norm), bool(eager)
        widths = (nc, base, 2 * base, 4 * base, 8 * base)
        for i in range(4):  # conv1 has no batch norm (DCGAN)
            self.add_module(f"conv{i + 1}", ConvAct(widths[i], widths[i + 1], batch_norm=batch_norm and i > 0,
                                                    act="lrelu", alpha=_LEAK, impl=impl, eager=eager))
        self.features = 8 * base * (size // 16) ** 2

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, self.nc, self.size)
        h = self.conv4(self.conv3(self.conv2(self.conv1(x))))
        return h.flatten(1)


class DCGANDiscriminator(_ConvTrunk):
    """D(x) -> logit (N,), or with z_dim a joint BiGAN D(x, z) -> logit (N,):

        h = conv4(conv3(conv2(conv1(x)))).flatten(1)
        z_dim None:  logit = out(h)                           out: LinearAct(features, 1)
        z_dim given: logit = out(joint(h, z))                 joint: JointLinear(features, z_dim, joint_hidden, lrelu)

    joint_hidden defaults to 16 base (1024 for base 64). Differentiable twice (gradient penalties w.r.t. x and z).
    """

    def __init__(self, nc: int = 3, size: int = 64, base: int = 64, batch_norm: bool = False, z_dim: int | None = None,
                 impl: str | None = None, eager: bool = False, joint_hidden: int | None = None):
        super().__init__(nc, size, base, batch_norm, impl, eager)
        self.z_dim = None if z_dim is None else positive_int(z_dim, "z_dim")
        if z_dim is None:
            if joint_hidden is not None:
                raise ValueError(f"joint_hidden: only used with z_dim (a joint D(x, z)), got {joint_hidden!r}")
            self.joint = None
            self.out = LinearAct(self.features, 1, impl=impl, eager=eager)
        else:
            self.joint_hidden = 16 * base if joint_hidden is None else positive_int(joint_hidden, "joint_hidden")
            JL = EagerJointLinear if eager else JointLinear
            self.joint = JL(self.features, z_dim, self.joint_hidden, act="lrelu", alpha=_LEAK, gain=1.0, impl=impl)
            self.out = LinearAct(self.joint_hidden, 1, impl=impl, eager=eager)
            _dcgan_init_linear(self.joint)
        _dcgan_init_linear(self.out)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if (z is None) != (self.z_dim is None):
            raise ValueError("z: a joint discriminator (z_dim given) needs z, a plain one takes none; got "
                             f"z={'None' if z is None else 'a tensor'} with z_dim={self.z_dim}")
        h = self.trunk(x)
        if self.joint is not None:
            h = self.joint(h, z)
        return self.out(h).squeeze(1)


class DCGANEncoder(_ConvTrunk):
    """E(x) -> z: the discriminator's conv trunk and a linear output of z_dim units. (N, nc, S, S) -> (N, z_dim)."""

    def __init__(self, nc: int = 3, size: int = 64, z_dim: int = 100, base: int = 64, batch_norm: bool = False,
                 impl: str | None = None, eager: bool = False):
        super().__init__(nc, size, base, batch_norm, impl, eager)
        self.z_dim = positive_int(z_dim, "z_dim")
        self.out = LinearAct(self.features, z_dim, impl=impl, eager=eager)
        _dcgan_init_linear(self.out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.trunk(x))


class DCGANGenerator(nn.Module):
    """G(z) -> images in [-1, 1]: z (N, z_dim) -> (N, nc, size, size).

    fc projects z to 8 base x S/16 x S/16 (with batch_norm: no bias, then BatchNorm2d on the reshaped map, bn0);
    ReLU; four transposed convs (ReLU, batch norm optional) and tanh on the last one (bias, no batch norm).
    """

    def __init__(self, z_dim: int = 100, nc: int = 3, size: int = 64, base: int = 64, batch_norm: bool = False,
                 impl: str | None = None, eager: bool = False):
        super().__init__()
        self.z_dim, self.nc = positive_int(z_dim, "z_dim"), positive_int(nc, "nc")
        self.size, self.base = _check_size(size), positive_int(base, "base")
        self.batch_norm, self.eager = bool(batch_norm), bool(eager)
        self.s0, c0 = size // 16, 8 * base
        # without batch norm the per-unit bias and the ReLU are fused into the projection
        self.fc = LinearAct(z_dim, c0 * self.s0 ** 2, bias=not batch_norm, act="linear" if batch_norm else "relu",
                            gain=1.0, impl=impl, eager=eager)
        _dcgan_init_linear(self.fc)
        if batch_norm:
            self.bn0 = nn.BatchNorm2d(c0)
            nn.init.normal_(self.bn0.weight, 1.0, 0.02)
            self.act0 = make_act("relu", None, 1.0, impl, eager)
        widths = (c0, 4 * base, 2 * base, base, nc)
        for i in range(4):
            last = i == 3
            self.add_module(f"deconv{i + 1}", ConvAct(widths[i], widths[i + 1], transposed=True,
                                                      batch_norm=batch_norm and not last,
                                                      act="tanh" if last else "relu", impl=impl, eager=eager))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).unflatten(1, (8 * self.base, self.s0, self.s0))
        if self.batch_norm:
            h = self.act0(self.bn0(h))
        return self.deconv4(self.deconv3(self.deconv2(self.deconv1(h))))
