"""The Numba options every kernel of minivrnn is compiled with.

- ``cache=True``: compiled machine code is saved next to the source, so only the first run compiles.
- ``error_model="numpy"``: a float division by zero gives inf or nan, as in NumPy, instead of raising
  ZeroDivisionError as Python would. Python's rule needs a test and a branch at every division, which stops
  LLVM from vectorising a loop that divides (a sigmoid's 1 / (1 + e), for one): ~10 ns per element
  instead of ~1.
"""
from numba import njit

KERNEL_OPTIONS = {"cache": True, "error_model": "numpy"}

kernel = njit(**KERNEL_OPTIONS)  # the decorator: @kernel in place of @njit(cache=True)

# For the scalar helpers kernels call element by element (activations.py): inlined into each caller by Numba
# itself, so that the caller's loop still vectorises (LLVM does not inline one that returns a tuple).
scalar_helper = njit(inline="always", **KERNEL_OPTIONS)
