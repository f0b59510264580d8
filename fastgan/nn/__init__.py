"""Modules built on fastgan ops."""
from .bias_act import BiasAct
from .bigan import BiGANDiscriminator, BiGANEncoder, BiGANGenerator, GANDiscriminator, MLPCritic
from .dcgan import (
    DCGANDiscriminator,
    DCGANEncoder,
    DCGANFeatures,
    DCGANGenerator,
    FlatImageAdapter,
    crop_images,
    image_geometry,
    pad_images,
)
from .joint_linear import EagerJointLinear, JointLinear
from .layers import ConvAct, EagerAct, LinearAct, make_act, torch_act
from .minibatch_discrimination import MinibatchDiscrimination, MinibatchStdDev
from .mmd import MMDLoss

__all__ = [
    "BiasAct",
    "ConvAct",
    "EagerAct",
    "BiGANDiscriminator",
    "BiGANEncoder",
    "BiGANGenerator",
    "DCGANDiscriminator",
    "DCGANEncoder",
    "DCGANFeatures",
    "DCGANGenerator",
    "EagerJointLinear",
    "FlatImageAdapter",
    "GANDiscriminator",
    "JointLinear",
    "LinearAct",
    "MinibatchDiscrimination",
    "MinibatchStdDev",
    "MLPCritic",
    "MMDLoss",
    "crop_images",
    "image_geometry",
    "make_act",
    "pad_images",
    "torch_act",
]
