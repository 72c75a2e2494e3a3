"""Slow, readable NumPy references for every Numba kernel, one file per component of minivrnn/ops.

They favour the textbook formula over speed; the kernels must agree with them (rtol 1e-10 in float64).
"""
