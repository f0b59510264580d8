"""DCGAN-style convolutional G, D and E (Radford et al. 2016), fused (fastgan.bias_act) and eager twins.

Every layer is a 5x5, stride-2 convolution (padding 2; transposed: output_padding 1, so each doubles or halves the
size), then the bias and activation. The nets have L = log2(S / 4) such layers, so that they meet the dense layers
at 4 x 4, DCGAN's geometry at every size (S = 64: L = 4, the paper's nets; S = 32: L = 3):

    D, E  x (N, nc, S, S) -> conv1 base -> conv2 2 base -> ... -> convL 2^(L-1) base (4 x 4), lrelu 0.2
          D: -> linear logit (N,);  E: -> linear z (N, z_dim)
    G     z (N, z_dim) -> fc to 2^(L-1) base x 4 x 4, relu -> deconv1 2^(L-2) base -> ... -> deconv(L-1) base
          -> deconvL nc, tanh: (N, nc, S, S)

Why 4 x 4 and not one more layer at S = 32 (2 x 2, the 64 x 64 stack applied to 32 x 32, as this module had before):
measured on 28 x 28 MNIST padded to 32, in one plain-torch training loop, the G that starts at 2 x 2 with four
transposed convolutions collapses to one image within 300 steps whatever D it faces, and the same G starting at 4 x 4
with three trains (docs/models/dcgan.md).

S (`size`) is 64 or 32; widths scale with `base` (default 64: 64-128-256-512 at S = 64). Gain 1 everywhere. G's output
activation is `out_act` (tanh by default, for images in [-1, 1]); E's is `out_act` too (linear by default).
DCGANFeatures is the D / E trunk alone: (N, nc, S, S) -> (N, 2^(L-1) base 16), for heads of one's own.

batch_norm=False (batch-norm-free): the conv has no bias of its own; its bias is a parameter handed to
fastgan.bias_act(h, bias, dim=1, act), which adds it, applies the activation in one pass and reduces the bias
gradient in the backward pass of the activation. batch_norm=True: conv (no bias) -> BatchNorm2d (affine, the DCGAN
way) -> bias_act without a bias (the batch norm's shift is the bias), except on D's and E's first layer and G's
output layer, which, as in DCGAN, have no batch norm and keep their bias.

eager=True: the same parameters (names, shapes) computed with F.conv2d / F.conv_transpose2d with the bias and torch
activations, so `twin.load_state_dict(fused.state_dict())` gives the same outputs and gradients.

Initialisation (DCGAN): weights N(0, 0.02), biases 0, batch-norm scales N(1, 0.02) and shifts 0.

Joint discriminator (z_dim given): a BiGAN D(x, z). The conv features h (N, 2^(L-1) base 4 4) and z meet in one
hidden layer before the output, a fused JointLinear:  logit = w . lrelu(W h + U z + b) + c. A nonlinearity after the
mixing is required: adding a projection of z to the features right before a linear output would make the logit
f(x) + g(z), which cannot tell matching (x, z) pairs from mismatched ones.

Flat data (FlatImageAdapter): fastgan's trainer hands networks rows (N, D) of images (C, H, W) flattened. The adapter
views a row as its image and pads it to S x S with the value -1 (the background of images in [-1, 1], tanh's range)
around the centre: S = 32 for images up to 32 x 32 (28 x 28 MNIST: 2 pixels on each side; 8 x 8 digits: 12), 64 up
to 64 x 64. Padding rather than a stack shaped for 28 x 28 keeps one network for every image size, the DCGAN
geometry (each 5x5 stride-2 layer halves or doubles an even size) and the nets above unchanged, at the cost of the
padded area (28 -> 32: 31 % more pixels; 8 -> 32: 16x, digits are tiny anyway). G's 32 x 32 output is cropped to its
centre H x W and flattened, so the border it paints reaches no loss and gets no gradient. D / E also get
features(x): the trunk's last hidden layer, flattened (N, 2^(L-1) base 16).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import positive_int
from ..activations import get_act
from .joint_linear import EagerJointLinear, JointLinear
from .layers import ConvAct, LinearAct, make_act

__all__ = ["DCGANDiscriminator", "DCGANEncoder", "DCGANFeatures", "DCGANGenerator", "FlatImageAdapter",
           "crop_images", "image_geometry", "n_layers", "pad_images"]

_LEAK = 0.2
_SIZES = (32, 64)


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size not in _SIZES:
        raise ValueError(f"size: expected an image size of 32 or 64, got {size!r}")
    return size


def n_layers(size: int) -> int:
    """The number of stride-2 layers of the nets at image size `size` (32 or 64): log2(size / 4), from or to 4 x 4."""
    return _check_size(size).bit_length() - 3


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
    """The L = n_layers(S) downsampling layers of D and E, conv1 .. convL: (N, nc, S, S) -> (N, 2^(L-1) base 16)."""

    def __init__(self, nc: int, size: int, base: int, batch_norm: bool, eager: bool):
        super().__init__()
        self.nc, self.size = positive_int(nc, "nc"), _check_size(size)
        self.base, self.batch_norm, self.eager = positive_int(base, "base"), bool(batch_norm), bool(eager)
        depth = n_layers(size)
        widths = (nc, *(base * 2 ** i for i in range(depth)))
        for i in range(depth):  # conv1 has no batch norm (DCGAN)
            self.add_module(f"conv{i + 1}", ConvAct(widths[i], widths[i + 1], batch_norm=batch_norm and i > 0,
                                                    act="lrelu", alpha=_LEAK, eager=eager))
        self.features = widths[-1] * 16

    @property
    def layers(self) -> list:
        """conv1 .. convL, in order (read by name: a module swapped in under that name is the one used)."""
        return [getattr(self, f"conv{i + 1}") for i in range(n_layers(self.size))]

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, self.nc, self.size)
        for layer in self.layers:
            x = layer(x)
        return x.flatten(1)


class DCGANDiscriminator(_ConvTrunk):
    """D(x) -> logit (N,), or with z_dim a joint BiGAN D(x, z) -> logit (N,):

        h = convL(...(conv1(x))).flatten(1)
        z_dim None:  logit = out(h)                           out: LinearAct(features, 1)
        z_dim given: logit = out(joint(h, z))                 joint: JointLinear(features, z_dim, joint_hidden, lrelu)

    joint_hidden defaults to 16 base (1024 for base 64). Differentiable twice (gradient penalties w.r.t. x and z).
    """

    def __init__(self, nc: int = 3, size: int = 64, base: int = 64, batch_norm: bool = False, z_dim: int | None = None,
                 eager: bool = False, joint_hidden: int | None = None):
        super().__init__(nc, size, base, batch_norm, eager)
        self.z_dim = None if z_dim is None else positive_int(z_dim, "z_dim")
        if z_dim is None:
            if joint_hidden is not None:
                raise ValueError(f"joint_hidden: only used with z_dim (a joint D(x, z)), got {joint_hidden!r}")
            self.joint = None
            self.out = LinearAct(self.features, 1, eager=eager)
        else:
            self.joint_hidden = 16 * base if joint_hidden is None else positive_int(joint_hidden, "joint_hidden")
            JL = EagerJointLinear if eager else JointLinear
            self.joint = JL(self.features, z_dim, self.joint_hidden, act="lrelu", alpha=_LEAK, gain=1.0)
            self.out = LinearAct(self.joint_hidden, 1, eager=eager)
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


class DCGANFeatures(_ConvTrunk):
    """The conv trunk of D and E alone: (N, nc, S, S) -> (N, 2^(L-1) base 16), lrelu 0.2 features (for a head of
    one's own, e.g. minibatch discrimination)."""

    def __init__(self, nc: int = 3, size: int = 64, base: int = 64, batch_norm: bool = False,
                 eager: bool = False):
        super().__init__(nc, size, base, batch_norm, eager)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)


class DCGANEncoder(_ConvTrunk):
    """E(x) -> z: the discriminator's conv trunk and an output layer of z_dim units, activation `out_act` (linear by
    default; its bias and activation fused). (N, nc, S, S) -> (N, z_dim)."""

    def __init__(self, nc: int = 3, size: int = 64, z_dim: int = 100, base: int = 64, batch_norm: bool = False,
                 eager: bool = False, out_act: str = "linear"):
        super().__init__(nc, size, base, batch_norm, eager)
        self.z_dim = positive_int(z_dim, "z_dim")
        get_act(out_act)
        self.out = LinearAct(self.features, z_dim, act=out_act, gain=1.0, eager=eager)
        _dcgan_init_linear(self.out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.trunk(x))


class DCGANGenerator(nn.Module):
    """G(z) -> images in [-1, 1]: z (N, z_dim) -> (N, nc, size, size).

    fc projects z to 2^(L-1) base x 4 x 4 (with batch_norm: no bias, then BatchNorm2d on the reshaped map, bn0);
    ReLU; L = n_layers(size) transposed convs deconv1 .. deconvL (ReLU, batch norm optional) and `out_act` (tanh) on
    the last one (bias, no batch norm).
    """

    def __init__(self, z_dim: int = 100, nc: int = 3, size: int = 64, base: int = 64, batch_norm: bool = False,
                 eager: bool = False, out_act: str = "tanh"):
        super().__init__()
        get_act(out_act)
        self.z_dim, self.nc = positive_int(z_dim, "z_dim"), positive_int(nc, "nc")
        self.size, self.base = _check_size(size), positive_int(base, "base")
        self.batch_norm, self.eager = bool(batch_norm), bool(eager)
        depth = n_layers(size)
        self.s0, c0 = 4, base * 2 ** (depth - 1)
        # without batch norm the per-unit bias and the ReLU are fused into the projection
        self.fc = LinearAct(z_dim, c0 * self.s0 ** 2, bias=not batch_norm, act="linear" if batch_norm else "relu",
                            gain=1.0, eager=eager)
        _dcgan_init_linear(self.fc)
        if batch_norm:
            self.bn0 = nn.BatchNorm2d(c0)
            nn.init.normal_(self.bn0.weight, 1.0, 0.02)
            self.act0 = make_act("relu", None, 1.0, eager)
        widths = (*(base * 2 ** i for i in reversed(range(depth))), nc)
        for i in range(depth):
            last = i == depth - 1
            self.add_module(f"deconv{i + 1}", ConvAct(widths[i], widths[i + 1], transposed=True,
                                                      batch_norm=batch_norm and not last,
                                                      act=out_act if last else "relu", eager=eager))

    @property
    def layers(self) -> list:
        """deconv1 .. deconvL, in order (read by name: a module swapped in under that name is the one used)."""
        return [getattr(self, f"deconv{i + 1}") for i in range(n_layers(self.size))]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).unflatten(1, (self.layers[0].in_channels, self.s0, self.s0))
        if self.batch_norm:
            h = self.act0(self.bn0(h))
        for layer in self.layers:
            h = layer(h)
        return h


# ---------------------------------------------------------------------------------------- flat rows <-> padded images
def image_geometry(image_shape, dim: int | None = None) -> tuple[tuple[int, int, int], int]:
    """((C, H, W), S) for images of `image_shape` ((H, W) or (C, H, W)): S, the conv nets' size, is 32 for images up
    to 32 x 32 and 64 up to 64 x 64. `dim`, if given, must be C * H * W (the length of a flat row)."""
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list)) else None
    if shape is None or len(shape) not in (2, 3) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
        raise ValueError(f"image_shape: expected (H, W) or (C, H, W) of positive ints, got {image_shape!r}")
    c, h, w = (1, *shape) if len(shape) == 2 else shape
    if max(h, w) > max(_SIZES):
        raise ValueError(f"image_shape: the DCGAN nets take images up to {max(_SIZES)} x {max(_SIZES)}, got {h} x {w}")
    if dim is not None and dim != c * h * w:
        raise ValueError(f"image_shape: rows of {dim} values are not images of shape {(c, h, w)} ({c * h * w} values)")
    return (c, h, w), next(s for s in _SIZES if max(h, w) <= s)


def _margins(h: int, w: int, size: int) -> tuple[int, int]:
    return (size - h) // 2, (size - w) // 2  # top, left: centred (an odd margin puts the extra pixel at the bottom)


def pad_images(x: torch.Tensor, image_shape, size: int, value: float = -1.0) -> torch.Tensor:
    """Rows (N, C H W) -> images (N, C, size, size): each row viewed as its (C, H, W) image, centred, padded with
    `value` (-1: the background of images in [-1, 1])."""
    (c, h, w), _ = image_geometry(image_shape, x.shape[-1])
    top, left = _margins(h, w, _check_size(size))
    return F.pad(x.reshape(x.shape[0], c, h, w), (left, size - w - left, top, size - h - top), value=value)


def crop_images(images: torch.Tensor, image_shape) -> torch.Tensor:
    """Images (N, C, S, S) -> rows (N, C H W): the centre H x W of each (pad_images' inverse)."""
    (c, h, w), _ = image_geometry(image_shape)
    size = images.shape[-1]
    top, left = _margins(h, w, size)
    return images[:, :, top:top + h, left:left + w].reshape(images.shape[0], c * h * w)


class FlatImageAdapter(nn.Module):
    """A DCGAN-style net on flat rows of images (see the module's docstring): `net` is a DCGANGenerator (z -> rows
    (N, C H W): its S x S output cropped to the centre H x W) or a DCGANDiscriminator / DCGANEncoder / DCGANFeatures
    (rows (N, C H W), padded to S x S with -1, [and z for a joint D] -> its output). features(x) (D, E, features):
    the trunk's last hidden layer, flattened. The wrapped net is `self.net` (state-dict keys `net.*`, the same in
    the fused net and its eager twin)."""

    def __init__(self, net: nn.Module, image_shape):
        super().__init__()
        if not isinstance(net, (DCGANGenerator, _ConvTrunk)):
            raise TypeError(f"net: expected a DCGAN-style net of fastgan.nn.dcgan, got {type(net).__name__}")
        (c, h, w), size = image_geometry(image_shape)
        if (net.nc, net.size) != (c, size):
            raise ValueError(f"net: images {(c, h, w)} need nc={c}, size={size}; got nc={net.nc}, size={net.size}")
        self.net, self.image_shape, self.size = net, (c, h, w), size
        self.generates = isinstance(net, DCGANGenerator)
        self.dim = c * h * w

    def to_images(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x: expected rows of shape (N, {self.dim}) (images {self.image_shape}), "
                             f"got {tuple(x.shape)}")
        return pad_images(x, self.image_shape, self.size)

    def forward(self, x: torch.Tensor, *rest) -> torch.Tensor:
        if self.generates:
            return crop_images(self.net(x, *rest), self.image_shape)
        return self.net(self.to_images(x), *rest)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The conv trunk's output on rows x: (N, 2^(L-1) base 16)."""
        if self.generates:
            raise TypeError("features: a generator has no features of x (only D, E and DCGANFeatures do)")
        return self.net.trunk(self.to_images(x))

    @property
    def out(self) -> nn.Module:
        """The wrapped D's or E's output layer: a plain D(x) is out(features(x)).squeeze(1), E(x) is out(features(x))
        (a joint D has its joint layer in between)."""
        out = getattr(self.net, "out", None)
        if out is None:
            raise AttributeError(f"out: {type(self.net).__name__} has no output layer")
        return out

    @property
    def n_features(self) -> int:
        """The width of features(x)."""
        if self.generates:
            raise TypeError("n_features: a generator has no features of x")
        return self.net.features

    def extra_repr(self) -> str:
        return f"image_shape={self.image_shape}, size={self.size}"
