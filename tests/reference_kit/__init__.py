"""Helpers for the reference kit's tests: the PyTorch twin and broken copies of it, as the kit's adapters."""
