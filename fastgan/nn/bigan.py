"""The BiGAN networks of permutation-invariant MNIST (Donahue, Kraehenbuehl, Darrell 2017, appendix C.1) and an MLP
critic, each in a fused form (fastgan ops) and an eager twin (torch ops) with the same parameters.

    D(x, z), G(z), E(x): two hidden layers of `hidden` (1024) units and a linear output layer;
      hidden 1: linear -> non-linearity
      hidden 2: linear -> parameter-free batch norm (BatchNorm1d(affine=False)) -> non-linearity
                (batch_norm=False: linear with bias -> non-linearity, like hidden 1)
      leaky ReLU 0.2 in D and E, ReLU in G, gain 1 everywhere (the paper's nets have no gain);
      D injects z at every layer (hidden 1, hidden 2 and the output) through a JointLinear: act(W h + U z + b).

Fused (eager=False): JointLinear (D), or F.linear + fastgan.bias_act with the layer's bias handed to bias_act (G, E,
MLPCritic); after the batch norm a fastgan BiasAct(None) applies the non-linearity. Eager twin (eager=True):
EagerJointLinear / F.linear with the bias, F.leaky_relu / F.relu. Both forms have the same parameter and buffer names
and shapes, so `twin.load_state_dict(fused.state_dict())` works and gives the same outputs and gradients.

The layer before a parameter-free batch norm has no bias: the batch norm subtracts the batch mean, which cancels any
bias exactly in training, so such a bias would only get a zero gradient (and in eval mode only shift the running mean
it is then subtracted with). Its weights are the only parameters of hidden layer 2.

Discriminators and critics return one logit per sample, shape (N,).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._checks import positive_int
from ..activations import get_act
from .joint_linear import EagerJointLinear, JointLinear
from .layers import LinearAct, make_act

__all__ = ["BiGANDiscriminator", "BiGANEncoder", "BiGANGenerator", "GANDiscriminator", "MLPCritic"]

_LEAK = 0.2


class _BiGANMLP(nn.Module):
    """in -> hidden (act) -> hidden (no bias, BatchNorm1d(affine=False), act) -> out (linear): G and E."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, act: str, eager: bool,
                 out_act: str = "linear", batch_norm: bool = True):
        super().__init__()
        self.eager, self.batch_norm = bool(eager), bool(batch_norm)
        alpha = _LEAK if act == "lrelu" else None
        self.fc1 = LinearAct(in_dim, hidden, act=act, alpha=alpha, gain=1.0, eager=eager)
        if batch_norm:
            self.fc2 = LinearAct(hidden, hidden, bias=False, eager=eager)
            self.bn2 = nn.BatchNorm1d(hidden, affine=False)
            self.act2 = make_act(act, alpha, 1.0, eager)
        else:  # bias + activation fused into the layer, like fc1
            self.fc2 = LinearAct(hidden, hidden, act=act, alpha=alpha, gain=1.0, eager=eager)
            self.bn2 = self.act2 = nn.Identity()
        self.out = LinearAct(hidden, out_dim, act=out_act, gain=1.0, eager=eager)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations (N, hidden)."""
        return self.act2(self.bn2(self.fc2(self.fc1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


class BiGANGenerator(_BiGANMLP):
    """G(z) -> x of the BiGAN permutation-invariant MNIST experiments: ReLU hidden layers, an output layer of x_dim
    units with activation `out_act` ('linear' by default; 'tanh' for data in [-1, 1], 'sigmoid' for [0, 1]: fused
    with the output bias). z (N, z_dim) -> (N, x_dim)."""

    def __init__(self, z_dim: int = 50, x_dim: int = 784, hidden: int = 1024,
                 eager: bool = False, out_act: str = "linear", batch_norm: bool = True):
        positive_int(z_dim, "z_dim"), positive_int(x_dim, "x_dim")
        super().__init__(z_dim, x_dim, positive_int(hidden, "hidden"), "relu", eager, out_act, batch_norm)
        self.z_dim, self.x_dim = z_dim, x_dim


class BiGANEncoder(_BiGANMLP):
    """E(x) -> z of the BiGAN permutation-invariant MNIST experiments: leaky ReLU 0.2 hidden layers, an output layer
    of z_dim units with activation `out_act` ('linear' by default; 'tanh' keeps E(x) in (-1, 1), the support of the
    BiGAN's uniform prior). x (N, x_dim) -> (N, z_dim)."""

    def __init__(self, x_dim: int = 784, z_dim: int = 50, hidden: int = 1024,
                 eager: bool = False, batch_norm: bool = True, out_act: str = "linear"):
        positive_int(x_dim, "x_dim"), positive_int(z_dim, "z_dim")
        super().__init__(x_dim, z_dim, positive_int(hidden, "hidden"), "lrelu", eager, out_act,
                         batch_norm=batch_norm)
        self.x_dim, self.z_dim = x_dim, z_dim


class GANDiscriminator(_BiGANMLP):
    """D(x) -> logit: the BiGAN discriminator's layers without z (a GAN's discriminator of the same architecture, the
    'D' baseline of the paper's Table 1): leaky ReLU 0.2 hidden layers, parameter-free BN in the second.
    x (N, x_dim) -> (N,); features(x) -> (N, hidden)."""

    def __init__(self, x_dim: int = 784, hidden: int = 1024, eager: bool = False,
                 batch_norm: bool = True):
        super().__init__(positive_int(x_dim, "x_dim"), 1, positive_int(hidden, "hidden"), "lrelu", eager,
                         batch_norm=batch_norm)
        self.x_dim = x_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).squeeze(1)


class BiGANDiscriminator(nn.Module):
    """D(x, z) -> logit of the BiGAN permutation-invariant MNIST experiments, z injected at every layer:

        h1 = lrelu(W1 x + U1 z + b1)                      fc1: JointLinear(x_dim, z_dim, hidden, act='lrelu')
        h2 = lrelu(BN(W2 h1 + U2 z))                      fc2: JointLinear(..., bias=False, act='linear'), bn2, act2
        logit = w3 h2 + u3 z + b3                         out: JointLinear(hidden, z_dim, 1, act='linear')

    x (N, x_dim), z (N, z_dim) -> (N,). Differentiable twice (gradient penalties w.r.t. x and z).
    batch_norm=False: h2 = lrelu(W2 h1 + U2 z + b2) (fc2 with a bias and the activation fused; for data where batch
    statistics would let D ignore a shift of a whole batch, e.g. 2-D mixtures).
    """

    def __init__(self, x_dim: int = 784, z_dim: int = 50, hidden: int = 1024,
                 eager: bool = False, batch_norm: bool = True):
        super().__init__()
        self.x_dim, self.z_dim = positive_int(x_dim, "x_dim"), positive_int(z_dim, "z_dim")
        self.hidden, self.eager, self.batch_norm = positive_int(hidden, "hidden"), bool(eager), bool(batch_norm)
        JL = EagerJointLinear if eager else JointLinear
        self.fc1 = JL(x_dim, z_dim, hidden, act="lrelu", alpha=_LEAK, gain=1.0)
        if batch_norm:
            self.fc2 = JL(hidden, z_dim, hidden, bias=False, act="linear", alpha=0.0, gain=1.0)
            self.bn2 = nn.BatchNorm1d(hidden, affine=False)
            self.act2 = make_act("lrelu", _LEAK, 1.0, eager)
        else:  # bias + activation fused into the joint layer, like fc1
            self.fc2 = JL(hidden, z_dim, hidden, act="lrelu", alpha=_LEAK, gain=1.0)
            self.bn2 = self.act2 = nn.Identity()
        self.out = JL(hidden, z_dim, 1, act="linear", alpha=0.0, gain=1.0)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x, z)
        h = self.act2(self.bn2(self.fc2(h, z)))
        return self.out(h, z).squeeze(1)


class MLPCritic(nn.Module):
    """A batch-norm-free MLP critic (WGAN-GP style): LinearAct(act) for each width in `hidden`, then a linear output
    to one unit. x (N, in_dim) -> (N,). All layers are in `self.layers` (the last one is the output), each with
    weight, bias, act, alpha and gain: what a fused gradient-penalty path needs to walk the net."""

    def __init__(self, in_dim: int, hidden: Sequence[int] = (1024, 1024), act: str = "lrelu", alpha: float = 0.2,
                 eager: bool = False):
        super().__init__()
        self.in_dim = positive_int(in_dim, "in_dim")
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
            raise ValueError(f"hidden: expected a sequence of positive ints, got {hidden!r}")
        for h in hidden:
            if isinstance(h, bool) or not isinstance(h, int) or h < 1:
                raise ValueError(f"hidden: expected a sequence of positive ints, got {tuple(hidden)!r}")
        get_act(act)
        self.hidden, self.act, self.alpha, self.eager = tuple(hidden), act, alpha, bool(eager)
        widths = (in_dim,) + self.hidden
        hidden_layers = [LinearAct(a, b, act=act, alpha=alpha, gain=1.0, eager=eager)
                         for a, b in zip(widths, widths[1:])]
        self.layers = nn.ModuleList(hidden_layers + [LinearAct(widths[-1], 1, eager=eager)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x.squeeze(1)
