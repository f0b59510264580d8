"""Modules built on fastgan ops."""
from .bias_act import BiasAct
from .bigan import BiGANDiscriminator, BiGANEncoder, BiGANGenerator, GANDiscriminator, MLPCritic
from .dcgan import DCGANDiscriminator, DCGANEncoder, DCGANGenerator
from .joint_linear import EagerJointLinear, JointLinear
from .layers import ConvAct, EagerAct, LinearAct, make_act, torch_act
from .minibatch import MinibatchDiscrimination, MinibatchStdDev
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
    "DCGANGenerator",
    "EagerJointLinear",
    "GANDiscriminator",
    "JointLinear",
    "LinearAct",
    "MinibatchDiscrimination",
    "MinibatchStdDev",
    "MLPCritic",
    "MMDLoss",
    "make_act",
    "torch_act",
]
