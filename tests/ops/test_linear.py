"""The maths of ops/linear.py, held for the readable module and its compiled twin alike."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minivrnn.fast import linear as fast_linear
from minivrnn.gradcheck import gradcheck
from minivrnn.ops import linear as ops_linear


@pytest.fixture(params=[ops_linear, fast_linear], ids=["ops", "fast"], scope="module")
def lin(request):
    return request.param


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 4, 5), (5, 1, 3, 2)])
def test_linear_gradients(lin, shape):
    T, B, I, O = shape
    rng = np.random.default_rng(0)
    inputs = {"x": rng.normal(size=(T, B, I)), **lin.init_linear(rng, I, O)}

    def forward(x, W, b):
        return lin.linear_forward({"W": W, "b": b}, x)[0]

    def backward(dy, x, W, b):
        dx, grads = lin.linear_backward(dy, lin.linear_forward({"W": W, "b": b}, x)[1])
        return {"x": dx, **grads}

    errors = gradcheck(forward, backward, inputs)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("widths", [[1], [4, 3], [5, 5, 2]])
def test_mlp_gradients(lin, widths):
    rng = np.random.default_rng(1)
    params = lin.init_mlp(rng, 3, widths)
    # Central differences straddle the ReLU kink only if a pre-activation lies within the step (1e-5) of 0:
    # with these normal draws that has probability ~1e-5 per entry (a fixed seed, so no flakiness).
    x = rng.normal(size=(4, 3))

    def forward(x, **p):
        return lin.mlp_forward(p, x)[0]

    def backward(dy, x, **p):
        dx, grads = lin.mlp_backward(dy, lin.mlp_forward(p, x)[1])
        return {"x": dx, **grads}

    errors = gradcheck(forward, backward, {"x": x, **params})
    assert max(errors.values()) < 1e-6, errors


def test_mlp_forward_matches_the_formula(lin):
    rng = np.random.default_rng(2)
    params = lin.init_mlp(rng, 3, [4, 2])
    x = rng.normal(size=(5, 3))
    h = np.maximum(x @ params["l0.W"] + params["l0.b"], 0)
    expected = np.maximum(h @ params["l1.W"] + params["l1.b"], 0)
    np.testing.assert_allclose(lin.mlp_forward(params, x)[0], expected, rtol=1e-12)


def test_mlp_relu_keeps_nan_as_np_maximum_does(lin):
    # A NaN (diverged weights, say) must reach the loss, where training notices it, not be cut to 0 by ReLU.
    rng = np.random.default_rng(4)
    params = lin.init_mlp(rng, 3, [4])
    x = rng.normal(size=(3, 3))
    x[1, 0] = np.nan
    y = lin.mlp_forward(params, x)[0]
    assert np.isnan(y[1]).all() and not np.isnan(y[[0, 2]]).any()
    np.testing.assert_array_equal(y[[0, 2]], np.maximum(x[[0, 2]] @ params["l0.W"] + params["l0.b"], 0))


def test_init_is_seeded_and_has_pytorch_bounds(lin, dtype):
    a = lin.init_mlp(np.random.default_rng(7), 16, [8, 4], dtype)
    b = lin.init_mlp(np.random.default_rng(7), 16, [8, 4], dtype)
    assert sorted(a) == ["l0.W", "l0.b", "l1.W", "l1.b"]
    assert a["l0.W"].shape == (16, 8) and a["l1.b"].shape == (4,)
    for k in a:
        assert a[k].dtype == dtype and np.array_equal(a[k], b[k])
    assert np.abs(a["l0.W"]).max() <= 1 / np.sqrt(16) and np.abs(a["l1.W"]).max() <= 1 / np.sqrt(8)


def test_float32_stays_float32_and_agrees_with_float64(lin):
    rng = np.random.default_rng(3)
    p64 = lin.init_mlp(rng, 3, [4])
    x64 = rng.normal(size=(2, 3))
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    y32, cache = lin.mlp_forward(p32, x64.astype(np.float32))
    dx32, g32 = lin.mlp_backward(np.ones_like(y32), cache)
    assert y32.dtype == dx32.dtype == g32["l0.W"].dtype == np.float32
    np.testing.assert_allclose(y32, lin.mlp_forward(p64, x64)[0], rtol=1e-5, atol=1e-6)


def test_bad_shapes_name_the_argument(lin):
    params = lin.init_linear(np.random.default_rng(0), 3, 2)
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., I\)"):
        lin.linear_forward(params, np.zeros(()))
    with pytest.raises(ValueError, match=r"W: expected shape \(I, O\) = \(5, \?\), got \(3, 2\)"):
        lin.linear_forward(params, np.zeros((4, 5)))


def test_an_mlp_checks_all_its_layers_and_names_the_one_that_does_not_fit(lin):
    params = lin.init_mlp(np.random.default_rng(0), 3, [4, 5])
    params["l1.W"] = np.zeros((6, 5))  # layer 0 gives 4 features, layer 1 expects 6
    with pytest.raises(ValueError, match=r"l1\.W: expected shape \(I1, I2\) = \(4, \?\), got \(6, 5\)"):
        lin.mlp_forward(params, np.zeros((2, 3)))
    params = lin.init_mlp(np.random.default_rng(0), 3, [4, 5])
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., I0\)"):
        lin.mlp_forward(params, np.zeros(()))
    y, cache = lin.mlp_forward(params, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"dy: expected shape"):
        lin.mlp_backward(np.zeros((2, 4)), cache)


@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5))
def test_shapes_preserved(lin, n, i, o):
    params = lin.init_linear(np.random.default_rng(0), i, o)
    y, cache = lin.linear_forward(params, np.ones((n, 2, i)))
    assert y.shape == (n, 2, o)
    dx, grads = lin.linear_backward(np.ones_like(y), cache)
    assert dx.shape == (n, 2, i) and grads["W"].shape == (i, o) and grads["b"].shape == (o,)


def test_mlp_backward_without_the_input_gradient_gives_the_same_parameter_gradients(lin):
    # phi_x reads the data, so the model skips its dx product; the weights' gradients must not change.
    rng = np.random.default_rng(7)
    params = lin.init_mlp(rng, 3, [4, 5])
    x = rng.normal(size=(6, 3))
    y, cache = lin.mlp_forward(params, x)
    dy = rng.normal(size=y.shape)
    dx, grads = lin.mlp_backward(dy, cache)
    skipped, grads_without = lin.mlp_backward(dy, cache, input_grad=False)
    assert dx.shape == x.shape and skipped is None
    assert grads.keys() == grads_without.keys()
    for key in grads:
        np.testing.assert_array_equal(grads_without[key], grads[key])
