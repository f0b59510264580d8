"""Modules built on fastgan ops."""
from .bias_act import BiasAct
from .joint_linear import EagerJointLinear, JointLinear
from .bigan import BiGANDiscriminator, BiGANEncoder, BiGANGenerator, GANDiscriminator, MLPCritic
from .dcgan import DCGANDiscriminator, DCGANEncoder, DCGANGenerator
from .minibatch import MinibatchDiscrimination, MinibatchStdDev
from .mmd import MMDLoss

__all__ = [
    "BiasAct",
    "BiGANDiscriminator",
    "BiGANEncoder",
    "BiGANGenerator",
    "DCGANDiscriminator",
    "DCGANEncoder",
    "DCGANGenerator",
    "EagerJointLinear",
    "GANDiscriminator",
    "JointLinear",
    "MinibatchDiscrimination",
    "MinibatchStdDev",
    "MLPCritic",
    "MMDLoss",
]
