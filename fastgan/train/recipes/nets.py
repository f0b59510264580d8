"""The networks a recipe builds (NetBuilder, a base of Recipe): the paper's MLPs, or under --arch dcgan the conv nets
on the data side; fused (fastgan ops) or the eager twins under cfg.backend='eager'. What a recipe's build() calls."""
from __future__ import annotations

import torch

from ...nn import (
    BiGANDiscriminator,
    BiGANEncoder,
    BiGANGenerator,
    DCGANDiscriminator,
    DCGANEncoder,
    DCGANFeatures,
    DCGANGenerator,
    FlatImageAdapter,
    GANDiscriminator,
    image_geometry,
)

ENCODER_OUT = "linear"  # E's output activation (cfg.extra['encoder_out']): 'linear' (the paper's) or 'tanh'
# --arch dcgan: the conv nets' base width (channels of D's first conv, G's last hidden deconv; widths base, 2 base,
# 4 base on 32 x 32, up to 8 base on 64 x 64: fastgan.nn.dcgan) when cfg.hidden is None; cfg.hidden, when given, is
# the base. 32 (not DCGAN's 64): a 2-core CPU trains it in minutes (docs/models/dcgan.md)
DCGAN_BASE = 32


def default_hidden(split) -> int:
    """The hidden width when cfg.hidden is None: the paper's 1024 for MNIST-sized inputs (>= 784), 512 for smaller
    images (digits; measured: docs/defaults.md), 128 for 2-D mixtures."""
    if split.image_shape is None:
        return 128
    return 1024 if split.dim >= 784 else 512


class GaussianEncoder(torch.nn.Module):
    """An encoder net with 2 z_dim outputs read as a diagonal Gaussian: moments(x) -> (mean, log-variance);
    forward(x) -> the mean (the code evaluation reads)."""

    def __init__(self, net: torch.nn.Module, z_dim: int):
        super().__init__()
        self.net, self.z_dim = net, z_dim

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(x)
        return h[:, :self.z_dim], h[:, self.z_dim:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.moments(x)[0]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The net's last hidden layer (what its output layer reads, the mean and the log-variance alike)."""
        return self.net.features(x)


class NetBuilder:
    """The net builders of a recipe: set_up_nets(cfg, split) reads the run's widths, backend, batch norm and
    architecture once; generator / encoder / discriminator / ... build what a recipe's build() asks for."""

    def set_up_nets(self, cfg, split, encoder_out: str) -> None:
        self.hidden = cfg.hidden or default_hidden(split)
        eager = cfg.backend == "eager"
        bn = cfg.batch_norm if cfg.batch_norm is not None else split.image_shape is not None
        self.kw = dict(hidden=self.hidden, eager=eager, batch_norm=bn)
        # the backend every fastgan op of this run takes (Recipe.step and evaluate enter it: fastgan.use_backend):
        # cfg.backend, or under 'eager' the pure-PyTorch reference for the ops outside the twin nets (MMD, minibatch
        # discrimination), so that a like-for-like comparison has no fastgan kernel on the eager side
        self.backend = "reference" if eager else cfg.backend
        self.out_act = "tanh" if split.image_shape is not None else "linear"
        self.encoder_out = encoder_out
        self.image = None  # --arch dcgan: ((C, H, W), S) of the data's images (nn.image_geometry)
        if cfg.arch == "dcgan":
            if split.image_shape is None:
                raise ValueError(f"arch: 'dcgan' builds conv nets for images; data {cfg.data!r} has none (rows of "
                                 f"{split.dim} values, no image shape): use arch 'mlp'")
            try:
                self.image = image_geometry(split.image_shape, split.dim)
            except ValueError as e:
                raise ValueError(f"arch: 'dcgan' on data {cfg.data!r}: {e}") from None
        self.base = cfg.hidden or DCGAN_BASE  # the conv nets' width (DCGAN_BASE)
        self.conv_kw = dict(base=self.base, eager=eager, batch_norm=bn)

    # ---- the networks a recipe builds (fused, or the eager twins under cfg.backend='eager'; self.kw) ----
    # cfg.arch 'mlp': the paper's MLPs (self.kw). 'dcgan': a net whose input or output is the data (x_dim = the
    # data's row length) is a DCGAN-style conv net on the flat rows (conv_net); any other (e.g. an adversary on
    # latent codes) stays an MLP.
    def generator(self, z_dim: int, x_dim: int, out_act: str | None = None) -> torch.nn.Module:
        """G: z (N, z_dim) -> x (N, x_dim); out_act defaults to the data's (tanh for images, linear for 2-D)."""
        if self.convolutional(x_dim):
            return self.conv_net("G", z_dim, out_act=out_act or self.out_act)
        return BiGANGenerator(z_dim, x_dim, out_act=out_act or self.out_act, **self.kw)

    def encoder(self, x_dim: int, z_dim: int, out_act: str | None = None) -> torch.nn.Module:
        """E: x (N, x_dim) -> (N, z_dim); out_act defaults to cfg.extra['encoder_out'] (ENCODER_OUT)."""
        if self.convolutional(x_dim):
            return self.conv_net("E", z_dim, out_act=out_act or self.encoder_out)
        return BiGANEncoder(x_dim, z_dim, out_act=out_act or self.encoder_out, **self.kw)

    def gaussian_encoder(self, x_dim: int, z_dim: int) -> GaussianEncoder:
        """E: x -> a diagonal Gaussian over codes (GaussianEncoder on an encoder of 2 z_dim linear outputs)."""
        return GaussianEncoder(self.encoder(x_dim, 2 * z_dim, out_act="linear"), z_dim)

    def discriminator(self, x_dim: int) -> torch.nn.Module:
        """D: x (N, x_dim) -> one logit per row (N,); D.features(x) its last hidden layer (for the conv D: its last
        conv layer, flattened)."""
        if self.convolutional(x_dim):
            return self.conv_net("D")
        return GANDiscriminator(x_dim, **self.kw)

    def joint_discriminator(self, x_dim: int, z_dim: int) -> torch.nn.Module:
        """A BiGAN's D(x, z) -> one logit per row (N,): z injected at every layer of the MLP; in the conv D, z meets
        the conv features in one joint hidden layer (DCGANDiscriminator's joint mode)."""
        if self.convolutional(x_dim):
            return self.conv_net("D", z_dim)
        return BiGANDiscriminator(x_dim, z_dim, **self.kw)

    def convolutional(self, x_dim: int) -> bool:
        """Whether the net on the data side of width x_dim is a conv net (cfg.arch 'dcgan', x_dim the data's)."""
        return self.image is not None and x_dim == self.split.dim

    def conv_net(self, kind: str, z_dim: int | None = None, out_act: str | None = None,
                 batch_norm: bool | None = None) -> torch.nn.Module:
        """A DCGAN-style net (fastgan.nn.dcgan, width self.base) on the data's flat image rows (FlatImageAdapter:
        padded to S x S with -1, G's output cropped back): kind 'G' z (N, z_dim) -> rows, 'E' rows -> (N, z_dim),
        'D' rows -> logits (z_dim given: a joint D(x, z)), 'features' rows -> the conv trunk's features.
        out_act: G's (default tanh) or E's (default linear); batch_norm: None = the run's (cfg.batch_norm; on for
        images by default), False for a critic that must be batch-norm-free."""
        if self.image is None:
            raise ValueError(f"arch: conv nets need arch 'dcgan' on image data, got arch {self.cfg.arch!r}")
        (c, _, _), size = self.image
        kw = {**self.conv_kw, **({} if batch_norm is None else {"batch_norm": bool(batch_norm)})}
        if kind == "G":
            net = DCGANGenerator(z_dim, c, size, out_act=out_act or "tanh", **kw)
        elif kind == "E":
            net = DCGANEncoder(c, size, z_dim, out_act=out_act or "linear", **kw)
        elif kind == "D":
            net = DCGANDiscriminator(c, size, z_dim=z_dim, **kw)
        elif kind == "features":
            net = DCGANFeatures(c, size, **kw)
        else:
            raise ValueError(f"kind: expected 'G', 'E', 'D' or 'features', got {kind!r}")
        return FlatImageAdapter(net, self.split.image_shape)
