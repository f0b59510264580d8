"""Triton kernels of fastgan, installed as the subpackage fastgan._triton (import it under that name)."""
