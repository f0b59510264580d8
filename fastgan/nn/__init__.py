"""Modules built on fastgan ops."""
from .bias_act import BiasAct

__all__ = ["BiasAct"]
