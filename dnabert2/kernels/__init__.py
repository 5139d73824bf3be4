"""Triton kernels; importing this package needs triton."""
