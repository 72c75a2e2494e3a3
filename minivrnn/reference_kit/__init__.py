"""A reference kit for checking another VRNN implementation (PyTorch, JAX, ...) against minivrnn.

- ``golden_paths()``: one ``.npz`` of golden vectors per variant (parameters, inputs, mask, noise, the loss,
  its per-step terms, every gradient, a generated sample), documented in README.md beside this file.
- ``properties``: checks that take your callables (log-densities, KL, mixtures, the whole loss, sampling)
  and raise AssertionError with a clear message; call them from a small pytest file (see README.md).
"""
from pathlib import Path

from .properties import (
    check_gaussian_logpdf,
    check_gmm_logpdf,
    check_kl,
    check_loss_against_golden,
    check_padding,
    check_pen_logpdf,
    check_sample_against_golden,
    load_golden,
)

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def golden_paths():
    """The golden files, sorted by name (e.g. ``.../golden/vrnn-gauss.npz``)."""
    return sorted(GOLDEN_DIR.glob("*.npz"))


__all__ = ["GOLDEN_DIR", "golden_paths", "load_golden", "check_gaussian_logpdf", "check_kl", "check_gmm_logpdf",
           "check_pen_logpdf", "check_loss_against_golden", "check_sample_against_golden", "check_padding"]
