"""fast/linear.py equals ops/linear.py (the maths of both: tests/ops/test_linear.py)."""
import numpy as np
import pytest

from minivrnn.fast import linear
from minivrnn.ops import linear as readable
from tests.fast.twins import assert_twins_agree


@pytest.mark.parametrize("lead", [(5,), (3, 4)])
def test_linear_matches_the_readable_ops(lead):
    rng = np.random.default_rng(0)
    inputs = {"params": readable.init_linear(rng, 3, 4), "x": rng.normal(size=lead + (3,))}
    assert_twins_agree(readable, linear, lambda m, params, x: m.linear_forward(params, x),
                       lambda m, d, cache: m.linear_backward(d, cache), inputs)


@pytest.mark.parametrize("widths, input_grad", [([4], True), ([5, 5, 2], True), ([5, 3], False)])
def test_mlp_matches_the_readable_ops(widths, input_grad):
    rng = np.random.default_rng(1)
    inputs = {"params": readable.init_mlp(rng, 3, widths), "x": rng.normal(size=(2, 6, 3))}
    assert_twins_agree(readable, linear, lambda m, params, x: m.mlp_forward(params, x),
                       lambda m, d, cache: m.mlp_backward(d, cache, input_grad), inputs)


def test_an_mlp_with_heads_beside_its_layers_counts_only_the_layers():
    # phi_prior's parameters sit beside prior.mu.W etc. in the model; sub(params, "prior.") passes both
    params = readable.init_mlp(np.random.default_rng(2), 3, [4])
    params["mu.W"], params["mu.b"] = np.zeros((4, 2)), np.zeros(2)
    x = np.random.default_rng(3).normal(size=(5, 3))
    np.testing.assert_allclose(linear.mlp_forward(params, x)[0], readable.mlp_forward(params, x)[0], rtol=1e-12)
