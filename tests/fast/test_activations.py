"""fast/activations.py: the compiled twins equal ops/activations.py; the scalar helpers equal NumPy's functions.
The maths itself is tested for both modules in tests/ops/test_activations.py."""
import numpy as np
import pytest
from numba import njit
from scipy.special import expit

from minivrnn.fast import activations as act
from minivrnn.ops import activations as readable
from tests.fast.twins import assert_twins_agree

NAMES = ("relu", "tanh", "sigmoid", "softplus", "logsumexp", "log_softmax")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale", [1.0, 20.0])
def test_matches_the_readable_ops(name, scale):
    a = np.random.default_rng(1).normal(scale=scale, size=(7, 5))
    assert_twins_agree(readable, act, lambda m, a: getattr(m, f"{name}_forward")(a),
                       lambda m, dy, cache: getattr(m, f"{name}_backward")(dy, cache), {"a": a})


def test_logsumexp_rows_wider_than_a_vector_and_one_wide():
    for shape in [(3, 1), (2, 257)]:
        a = np.random.default_rng(2).normal(scale=10.0, size=shape)
        np.testing.assert_allclose(act.logsumexp_forward(a)[0], readable.logsumexp_forward(a)[0], rtol=1e-12)


def test_non_contiguous_input():
    a = np.random.default_rng(2).normal(size=(4, 3)).T  # Fortran order view
    for name in ("softplus", "sigmoid", "logsumexp", "relu"):
        np.testing.assert_allclose(getattr(act, f"{name}_forward")(a)[0],
                                   getattr(readable, f"{name}_forward")(np.ascontiguousarray(a))[0], rtol=1e-12)


@njit
def _apply_scalar_helpers(a, tanh_out, log1p_out, softplus_out, slope_out):
    one = a.dtype.type(1.0)
    for i in range(a.size):
        tanh_out[i] = act.tanh_scalar(a[i], one)
        log1p_out[i] = act.log1p_scalar(abs(a[i]), one)
        softplus_out[i], slope_out[i] = act.softplus_scalar(a[i], one)


@pytest.mark.parametrize("dtype, ulps", [(np.float64, 4), (np.float32, 4)])
def test_scalar_helpers_match_the_library_functions_to_a_few_ulps(dtype, ulps):
    # Every scale from subnormal-adjacent to saturated, both signs, and the branch point of tanh_scalar (0.35).
    rng = np.random.default_rng(5)
    scales = [1e-30, 1e-8, 1e-3, 0.1, 0.35, 1.0, 5.0, 30.0, 1e4]
    a = np.concatenate([rng.normal(size=200) * s for s in scales] + [[0.0, -0.0, 0.35, -0.35, 0.3499]])
    a = a.astype(dtype)
    outs = [np.empty_like(a) for _ in range(4)]
    _apply_scalar_helpers(a, *outs)
    expected = [np.tanh(a), np.log1p(np.abs(a)), np.logaddexp(0, a), expit(a.astype(np.float64))]
    tiny = np.finfo(dtype).tiny
    for name, got, want in zip(["tanh", "log1p", "softplus", "sigmoid"], outs, expected):
        want = want.astype(dtype)
        rel = np.abs(got.astype(np.float64) - want) / np.maximum(np.abs(want.astype(np.float64)), tiny)
        assert rel.max() <= ulps * np.finfo(dtype).eps, (name, a[np.argmax(rel)], rel.max())
