"""A reference kit for checking another VRNN implementation (PyTorch, JAX, ...) against minivrnn.

- ``golden_paths()``: one ``.npz`` of golden vectors per case (parameters, inputs, a mask with padded steps
  inside and at the end of sequences, noise, the loss, its per-step terms, every gradient, the final state, a
  generated sample), documented in README.md beside this file and made by generate.py.
- ``properties``: checks that take your callables (log-densities, KL, mixtures, the whole loss, padding,
  chunks, sampling) and raise ``CheckFailed`` (an AssertionError) whose message says what is off and where
  (diagnose.py); call them from a small pytest file (see README.md), or run them all at once with
  ``python -m minivrnn.reference_kit check my_module:loss_and_grads`` (command.py).
"""
from pathlib import Path

from .properties import (
    FLOAT32_RTOL,
    FLOAT64_ONLY,
    CheckFailed,
    check_chunks,
    check_gaussian_logpdf,
    check_gmm_logpdf,
    check_kl,
    check_loss_against_golden,
    check_padding,
    check_pen_logpdf,
    check_sample_against_golden,
    load_golden,
    takes_state0,
)

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def golden_paths(float32=False):
    """The golden files, sorted by name (e.g. ``.../golden/vrnn-gauss.npz``); ``float32=True`` leaves out the
    cases float32 cannot resolve (``FLOAT64_ONLY``)."""
    return sorted(p for p in GOLDEN_DIR.glob("*.npz") if not (float32 and p.stem in FLOAT64_ONLY))


__all__ = ["GOLDEN_DIR", "FLOAT32_RTOL", "FLOAT64_ONLY", "CheckFailed", "golden_paths", "load_golden",
           "check_gaussian_logpdf", "check_kl", "check_gmm_logpdf", "check_pen_logpdf", "check_loss_against_golden",
           "check_sample_against_golden", "check_padding", "check_chunks", "takes_state0"]
