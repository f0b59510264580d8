"""fastgan ops: one module per op (public function, fake kernel, autograd); reference.py holds their spec."""
from . import reference
from .bias_act import bias_act

__all__ = ["bias_act", "reference"]
