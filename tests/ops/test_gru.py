"""The maths of one GRU step (ops/gru.py), held for the readable module and its compiled twin alike."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from minivrnn.fast import gru as fast_gru
from minivrnn.gradcheck import gradcheck
from minivrnn.ops import gru as ops_gru


@pytest.fixture(params=[ops_gru, fast_gru], ids=["ops", "fast"], scope="module")
def gru(request):
    return request.param


def problem(gru, B, I, H, seed=0):
    """Parameters, an input x (B, I) and a state h (B, H) in [-1, 1], all float64."""
    rng = np.random.default_rng(seed)
    return gru.init_gru(rng, I, H), rng.normal(size=(B, I)), rng.uniform(-1, 1, size=(B, H))


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 2, 4), (2, 5, 1)])
def test_cell_gradients(gru, shape):
    params, x, h = problem(gru, *shape)

    def forward(x, h, **p):
        return gru.gru_cell_forward(p, x, h)[0]

    def backward(dh_new, x, h, **p):
        dx, dh, grads = gru.gru_cell_backward(dh_new, gru.gru_cell_forward(p, x, h)[1])
        return {"x": dx, "h": dh, **grads}

    params = {k: 2 * v for k, v in params.items()}  # some gates away from 1/2
    errors = gradcheck(forward, backward, {"x": x, "h": h, **params})
    assert set(errors) == {"x", "h", *gru.KEYS}
    assert max(errors.values()) < 1e-6, errors


def test_one_step_matches_the_convention_written_out(gru):
    """H = I = B = 1 with math.exp/math.tanh. b_hn != 0 separates PyTorch's r * (h W_hn + b_hn) from
    the original GRU's (r * h) W_hn (docs/equations.md, "GRU convention")."""
    v = dict(W_ir=0.5, W_iz=-0.3, W_in=0.8, W_hr=0.2, W_hz=0.7, W_hn=-0.6,
             b_ir=0.1, b_iz=-0.2, b_in=0.3, b_hr=-0.4, b_hz=0.5, b_hn=0.9)
    x, h = 1.5, -0.4
    r = 1 / (1 + math.exp(-(x * v["W_ir"] + v["b_ir"] + h * v["W_hr"] + v["b_hr"])))
    u = 1 / (1 + math.exp(-(x * v["W_iz"] + v["b_iz"] + h * v["W_hz"] + v["b_hz"])))
    n = math.tanh(x * v["W_in"] + v["b_in"] + r * (h * v["W_hn"] + v["b_hn"]))
    expected = (1 - u) * n + u * h
    params = {k: np.full((1, 1) if k[0] == "W" else (1,), value) for k, value in v.items()}
    h_new = gru.gru_cell_forward(params, np.array([[x]]), np.array([[h]]))[0]
    assert h_new[0, 0] == pytest.approx(expected, rel=1e-14)


def test_zero_weights_halve_the_state(gru):
    """All parameters 0: r = u = 1/2 and n = tanh(0) = 0, so h' = h / 2 whatever x is."""
    params = {k: np.zeros_like(v) for k, v in gru.init_gru(np.random.default_rng(0), 2, 3).items()}
    h = np.array([[0.8, -0.6, 0.1]])
    np.testing.assert_array_equal(gru.gru_cell_forward(params, np.ones((1, 2)), h)[0], h / 2)


def test_init_is_seeded_with_pytorch_bounds(dtype):
    a = ops_gru.init_gru(np.random.default_rng(7), 100, 4, dtype)
    b = ops_gru.init_gru(np.random.default_rng(7), 100, 4, dtype)
    assert list(a) == ["W_ir", "W_iz", "W_in", "W_hr", "W_hz", "W_hn",
                       "b_ir", "b_iz", "b_in", "b_hr", "b_hz", "b_hn"] == list(ops_gru.KEYS)
    assert a["W_ir"].shape == (100, 4) and a["W_hn"].shape == (4, 4) and a["b_hz"].shape == (4,)
    for k in a:
        assert a[k].dtype == dtype and np.array_equal(a[k], b[k])
        assert np.abs(a[k]).max() <= 0.5  # 1 / sqrt(H), H = 4
    assert np.abs(a["W_ir"]).max() > 0.1  # the bound is 1/sqrt(H), not 1/sqrt(I)


def test_bad_shapes_name_the_argument(gru):
    params, x, h = problem(gru, 2, 2, 4)
    with pytest.raises(ValueError, match=r"x: expected shape \(B, I\)"):
        gru.gru_cell_forward(params, x[None], h)
    with pytest.raises(ValueError, match=r"h: expected shape \(B, H\) = \(2, 4\), got \(2, 3\)"):
        gru.gru_cell_forward(params, x, h[:, :3])
    with pytest.raises(ValueError, match=r"W_hn: expected shape \(H, H\)"):
        gru.gru_cell_forward({**params, "W_hn": np.zeros((4, 3))}, x, h)
    with pytest.raises(ValueError, match="h: expected dtype float64"):
        gru.gru_cell_forward(params, x, h.astype(np.float32))


@given(st.data(), st.sampled_from([np.float32, np.float64]))
def test_state_stays_in_the_unit_box_for_large_inputs(gru, data, dtype):
    """h' = (1 - u) n + u h is a convex combination of n in [-1, 1] and h, so |h'| <= 1 when |h| <= 1."""
    B, I, H = data.draw(st.tuples(*[st.integers(1, 3)] * 3), label="(B, I, H)")
    x = data.draw(arrays(dtype, (B, I), elements=st.floats(-1e4, 1e4, width=32)), label="x")
    h = data.draw(arrays(dtype, (B, H), elements=st.floats(-1, 1, width=32)), label="h")
    params = {k: 10 * v for k, v in gru.init_gru(np.random.default_rng(I + 10 * H), I, H, dtype).items()}
    h_new, cache = gru.gru_cell_forward(params, x, h)
    assert h_new.shape == (B, H) and h_new.dtype == dtype and np.all(np.abs(h_new) <= 1)
    dx, dh, grads = gru.gru_cell_backward(np.ones_like(h_new), cache)
    assert dx.shape == x.shape and dh.shape == h.shape and dx.dtype == dh.dtype == dtype
    assert all(grads[k].shape == params[k].shape and np.all(np.isfinite(grads[k])) for k in gru.KEYS)
