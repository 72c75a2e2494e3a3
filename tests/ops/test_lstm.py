"""The maths of one LSTM step (ops/lstm.py), held for the readable module and its compiled twin alike."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from minivrnn.fast import lstm as fast_lstm
from minivrnn.gradcheck import gradcheck
from minivrnn.ops import lstm as ops_lstm


@pytest.fixture(params=[ops_lstm, fast_lstm], ids=["ops", "fast"], scope="module")
def lstm(request):
    return request.param


def problem(lstm, B, I, H, seed=0):
    """Parameters, an input x (B, I) and states h, c (B, H), all float64."""
    rng = np.random.default_rng(seed)
    return lstm.init_lstm(rng, I, H), rng.normal(size=(B, I)), rng.uniform(-1, 1, size=(B, H)), rng.normal(size=(B, H))


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 2, 4), (2, 5, 1)])
def test_cell_gradients(lstm, shape):
    params, x, h, c = problem(lstm, *shape)

    def forward(x, h, c, **p):
        return lstm.lstm_cell_forward(p, x, h, c)[0]

    def backward(dstate, x, h, c, **p):
        dx, dh, dc, grads = lstm.lstm_cell_backward(dstate, lstm.lstm_cell_forward(p, x, h, c)[1])
        return {"x": dx, "h": dh, "c": dc, **grads}

    params = {k: 2 * v for k, v in params.items()}  # some gates away from 1/2
    errors = gradcheck(forward, backward, {"x": x, "h": h, "c": c, **params})
    assert set(errors) == {"x", "h", "c", *lstm.KEYS}
    assert max(errors.values()) < 1e-6, errors


def test_one_step_matches_the_convention_written_out(lstm):
    """H = I = B = 1 with math.exp/math.tanh, every gate with its own weights (docs/equations.md, "LSTM
    convention")."""
    names = [f"{p}{g}" for p in ("W_i", "W_h", "b_i", "b_h") for g in "ifgo"]
    v = dict(zip(names, np.linspace(-0.9, 0.8, 16)))
    x, h, c = 1.5, -0.4, 0.7
    pre = {g: x * v[f"W_i{g}"] + v[f"b_i{g}"] + h * v[f"W_h{g}"] + v[f"b_h{g}"] for g in "ifgo"}
    i, f, o = (1 / (1 + math.exp(-pre[g])) for g in "ifo")
    g = math.tanh(pre["g"])
    c_new = f * c + i * g
    h_new = o * math.tanh(c_new)
    params = {k: np.full((1, 1) if k[0] == "W" else (1,), value) for k, value in v.items()}
    (h1, c1), _ = lstm.lstm_cell_forward(params, np.array([[x]]), np.array([[h]]), np.array([[c]]))
    assert h1[0, 0] == pytest.approx(h_new, rel=1e-14) and c1[0, 0] == pytest.approx(c_new, rel=1e-14)


def test_zero_weights_halve_the_cell(lstm):
    """All parameters 0: i = f = o = 1/2 and g = 0, so c' = c / 2 and h' = tanh(c') / 2 whatever x is."""
    params = {k: np.zeros_like(v) for k, v in lstm.init_lstm(np.random.default_rng(0), 2, 3).items()}
    c = np.array([[0.8, -6.0, 0.1]])
    (h1, c1), _ = lstm.lstm_cell_forward(params, np.ones((1, 2)), np.ones((1, 3)), c)
    np.testing.assert_array_equal(c1, c / 2)
    np.testing.assert_allclose(h1, 0.5 * np.tanh(c / 2), rtol=1e-15)


def test_init_is_seeded_with_pytorch_bounds(dtype):
    a = ops_lstm.init_lstm(np.random.default_rng(7), 100, 4, dtype)
    b = ops_lstm.init_lstm(np.random.default_rng(7), 100, 4, dtype)
    assert list(a) == ["W_ii", "W_if", "W_ig", "W_io", "W_hi", "W_hf", "W_hg", "W_ho",
                       "b_ii", "b_if", "b_ig", "b_io", "b_hi", "b_hf", "b_hg", "b_ho"] == list(ops_lstm.KEYS)
    assert a["W_ii"].shape == (100, 4) and a["W_ho"].shape == (4, 4) and a["b_hg"].shape == (4,)
    for k in a:
        assert a[k].dtype == dtype and np.array_equal(a[k], b[k])
        assert np.abs(a[k]).max() <= 0.5  # 1 / sqrt(H), H = 4
    assert np.abs(a["W_ii"]).max() > 0.1  # the bound is 1/sqrt(H), not 1/sqrt(I)


def test_bad_shapes_name_the_argument(lstm):
    params, x, h, c = problem(lstm, 2, 2, 4)
    with pytest.raises(ValueError, match=r"c: expected shape \(B, H\) = \(2, 4\), got \(2, 3\)"):
        lstm.lstm_cell_forward(params, x, h, c[:, :3])
    with pytest.raises(ValueError, match=r"W_if: expected shape \(I, H\) = \(2, 4\)"):
        lstm.lstm_cell_forward({**params, "W_if": np.zeros((2, 5))}, x, h, c)
    with pytest.raises(ValueError, match=r"c: expected shape \(B, H\)"):
        lstm.lstm_cell_forward(params, x, h, c[None])


@given(st.data(), st.sampled_from([np.float32, np.float64]))
def test_states_stay_bounded_for_large_inputs(lstm, data, dtype):
    """|h'| = |o tanh(c')| <= 1 and, as c' = f c + i g with f, i in [0, 1] and |g| <= 1, |c'| <= |c| + 1."""
    B, I, H = data.draw(st.tuples(*[st.integers(1, 3)] * 3), label="(B, I, H)")
    x = data.draw(arrays(dtype, (B, I), elements=st.floats(-1e4, 1e4, width=32)), label="x")
    h = data.draw(arrays(dtype, (B, H), elements=st.floats(-1, 1, width=32)), label="h")
    c = data.draw(arrays(dtype, (B, H), elements=st.floats(-10, 10, width=32)), label="c")
    params = {k: 10 * v for k, v in lstm.init_lstm(np.random.default_rng(I + 10 * H), I, H, dtype).items()}
    (h1, c1), cache = lstm.lstm_cell_forward(params, x, h, c)
    assert h1.shape == c1.shape == (B, H) and h1.dtype == c1.dtype == dtype
    assert np.all(np.abs(h1) <= 1) and np.all(np.abs(c1) <= (np.abs(c) + 1) * (1 + 1e-6))
    dx, dh, dc, grads = lstm.lstm_cell_backward((np.ones_like(h1), np.ones_like(c1)), cache)
    assert dx.shape == x.shape and dh.shape == h.shape and dc.shape == c.shape
    assert all(grads[k].shape == params[k].shape and np.all(np.isfinite(grads[k])) for k in lstm.KEYS)
    assert all(a.dtype == dtype and np.all(np.isfinite(a)) for a in (dx, dh, dc))
