"""fast/lstm.py: the whole-sequence kernels, and the cell equal to ops/lstm.py (the maths of one step, for
both modules: tests/ops/test_lstm.py)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from minivrnn.gradcheck import gradcheck
from minivrnn.fast import lstm
from minivrnn.fast.lstm import (
    KEYS,
    init_lstm,
    lstm_cell_backward,
    lstm_cell_forward,
    lstm_sequence_backward,
    lstm_sequence_forward,
    pack,
    unpack,
)
from minivrnn.ops import lstm as readable
from tests.fast.twins import assert_twins_agree

SHAPES = [(1, 1, 1, 1), (4, 3, 2, 3), (3, 1, 1, 2), (2, 2, 3, 1)]  # (T, B, I, H)


def problem(T, B, I, H, seed=0):
    """Parameters, inputs xs (T, B, I) and start states h0, c0 (B, H), all float64."""
    rng = np.random.default_rng(seed)
    params = init_lstm(rng, I, H)
    return params, rng.normal(size=(T, B, I)), rng.uniform(-1, 1, size=(B, H)), rng.normal(size=(B, H))


def ragged_mask(lengths, T):
    """(T, B) mask with mask[t, b] = 1 for t < lengths[b]."""
    return (np.arange(T)[:, None] < np.asarray(lengths)[None, :]).astype(np.float64)


def sequence_pair(mask):
    """forward/backward for gradcheck over xs, h0, c0 and every parameter (the mask is held fixed)."""

    def forward(xs, h0, c0, **p):
        return lstm_sequence_forward(p, xs, h0, c0, mask)[0]

    def backward(dstates, xs, h0, c0, **p):
        dxs, dh0, dc0, grads = lstm_sequence_backward(dstates, lstm_sequence_forward(p, xs, h0, c0, mask)[1])
        return {"xs": dxs, "h0": dh0, "c0": dc0, **grads}

    return forward, backward



@pytest.mark.parametrize("shape", SHAPES)
def test_sequence_gradients(shape):
    params, xs, h0, c0 = problem(*shape)
    errors = gradcheck(*sequence_pair(None), {"xs": xs, "h0": h0, "c0": c0, **params})
    assert set(errors) == {"xs", "h0", "c0", *KEYS}
    assert max(errors.values()) < 1e-6, errors


def test_sequence_gradients_with_a_ragged_mask():
    params, xs, h0, c0 = problem(5, 3, 2, 3)
    errors = gradcheck(*sequence_pair(ragged_mask([5, 3, 1], 5)), {"xs": xs, "h0": h0, "c0": c0, **params})
    assert max(errors.values()) < 1e-6, errors


def readable_sequence(params, xs, h0, c0, mask=None):
    """The LSTM over time as a loop of ops/lstm.py's cell; padded rows keep both h and c. Returns (hs, cs)."""
    mask = np.ones(xs.shape[:2]) if mask is None else mask
    h, c, hs, cs = h0, c0, [], []
    for t in range(len(xs)):
        padded = mask[t][:, None] == 0  # (B, 1)
        (h_new, c_new), _ = readable.lstm_cell_forward(params, xs[t], h, c)
        h, c = np.where(padded, h, h_new), np.where(padded, c, c_new)
        hs.append(h)
        cs.append(c)
    return np.stack(hs), np.stack(cs)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lengths", [None, "ragged"])
def test_sequence_matches_a_loop_of_the_readable_cell(shape, lengths):
    T, B, I, H = shape
    params, xs, h0, c0 = problem(*shape, seed=1)
    params = {k: 3 * v for k, v in params.items()}  # saturate some gates too
    mask = None if lengths is None else ragged_mask(np.arange(B) % (T + 1), T)  # includes length 0
    (hs, cs), _ = lstm_sequence_forward(params, np.asfortranarray(xs), h0, c0, mask)
    hs_ref, cs_ref = readable_sequence(params, xs, h0, c0, mask)
    np.testing.assert_allclose(hs, hs_ref, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(cs, cs_ref, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 2, 4)])
def test_cell_matches_the_readable_ops(shape):
    B, I, H = shape
    params, xs, h0, c0 = problem(1, B, I, H, seed=2)
    inputs = {"params": {k: 3 * v for k, v in params.items()}, "x": xs[0], "h": h0, "c": c0}
    assert_twins_agree(readable, lstm, lambda m, params, x, h, c: m.lstm_cell_forward(params, x, h, c),
                       lambda m, d, cache: m.lstm_cell_backward(d, cache), inputs)


def test_zero_weights_halve_the_cell():
    """All parameters 0: i = f = o = 1/2 and g = 0, so c' = c / 2 and h' = tanh(c') / 2 whatever x is."""
    params = {k: np.zeros_like(v) for k, v in init_lstm(np.random.default_rng(0), 2, 3).items()}
    c0 = np.array([[0.8, -6.0, 0.1]])
    (hs, cs), _ = lstm_sequence_forward(params, np.ones((3, 1, 2)), np.ones((1, 3)), c0)
    np.testing.assert_array_equal(cs[:, 0], c0 * np.array([[0.5], [0.25], [0.125]]))
    np.testing.assert_allclose(hs, 0.5 * np.tanh(cs), rtol=1e-15)


def test_masked_steps_keep_the_state_and_get_no_gradient():
    params, xs, h0, c0 = problem(5, 3, 2, 3, seed=2)
    mask = ragged_mask([5, 3, 1], 5)
    padded = mask == 0  # (T, B)
    (hs, cs), cache = lstm_sequence_forward(params, xs, h0, c0, mask)
    for states, start in ((hs, h0), (cs, c0)):
        prev = np.concatenate([start[None], states[:-1]])
        np.testing.assert_array_equal(states[padded], prev[padded])
    rng = np.random.default_rng(3)
    dxs = lstm_sequence_backward((rng.normal(size=hs.shape), rng.normal(size=cs.shape)), cache)[0]
    assert np.all(dxs[padded] == 0) and np.all(dxs[~padded] != 0)
    # What is in the padding does not matter, and each row equals that row run alone for its length.
    xs_junk = np.where(padded[..., None], 1e3, xs)
    np.testing.assert_array_equal(lstm_sequence_forward(params, xs_junk, h0, c0, mask)[0][1], cs)
    for b, length in enumerate([5, 3, 1]):
        (h_alone, c_alone), _ = lstm_sequence_forward(params, xs[:length, b:b + 1], h0[b:b + 1], c0[b:b + 1])
        np.testing.assert_allclose(hs[:length, b:b + 1], h_alone, rtol=1e-14)
        np.testing.assert_allclose(cs[:length, b:b + 1], c_alone, rtol=1e-14)


def test_float32_in_float32_out_and_agrees_with_float64():
    params, xs, h0, c0 = problem(4, 3, 2, 3, seed=4)
    mask = ragged_mask([4, 2, 1], 4)
    rng = np.random.default_rng(5)
    dhs, dcs = rng.normal(size=(4, 3, 3)), rng.normal(size=(4, 3, 3))
    results = {}
    for dt in (np.float64, np.float32):
        p = {k: v.astype(dt) for k, v in params.items()}
        states, cache = lstm_sequence_forward(p, xs.astype(dt), h0.astype(dt), c0.astype(dt), mask.astype(dt))
        dxs, dh0, dc0, grads = lstm_sequence_backward((dhs.astype(dt), dcs.astype(dt)), cache)
        state1, cell_cache = lstm_cell_forward(p, xs[0].astype(dt), h0.astype(dt), c0.astype(dt))
        dx, dh, dc, cell_grads = lstm_cell_backward((dhs[0].astype(dt), dcs[0].astype(dt)), cell_cache)
        results[dt] = [*states, dxs, dh0, dc0, *grads.values(), *state1, dx, dh, dc, *cell_grads.values()]
    for a32, a64 in zip(results[np.float32], results[np.float64]):
        assert a32.dtype == np.float32
        np.testing.assert_allclose(a32, a64, rtol=1e-5, atol=1e-5)



def test_pack_places_the_gates_side_by_side_and_unpack_inverts_it():
    params = init_lstm(np.random.default_rng(8), 2, 3)
    W_i, W_h, b_i, b_h = pack(params)
    assert W_i.shape == (2, 12) and W_h.shape == (3, 12) and b_i.shape == b_h.shape == (12,)
    np.testing.assert_array_equal(W_i[:, 6:9], params["W_ig"])
    np.testing.assert_array_equal(b_h[9:], params["b_ho"])
    back = unpack(W_i, W_h, b_i, b_h)
    assert list(back) == list(params)
    for k in params:
        np.testing.assert_array_equal(back[k], params[k])


def test_bad_shapes_name_the_argument():
    params, xs, h0, c0 = problem(3, 2, 2, 4)
    with pytest.raises(ValueError, match=r"c0: expected shape \(B, H\) = \(2, 4\), got \(2, 3\)"):
        lstm_sequence_forward(params, xs, h0, c0[:, :3])
    with pytest.raises(ValueError, match=r"h0: expected shape \(B, H\)"):
        lstm_sequence_forward(params, xs, h0[:1], c0)
    with pytest.raises(ValueError, match=r"mask: expected shape \(T, B\) = \(3, 2\), got \(3,\)"):
        lstm_sequence_forward(params, xs, h0, c0, np.ones(3))
    with pytest.raises(ValueError, match=r"W_if: expected shape \(I, H\) = \(2, 4\)"):
        lstm_sequence_forward({**params, "W_if": np.zeros((2, 5))}, xs, h0, c0)
    with pytest.raises(ValueError, match=r"c: expected shape \(B, H\)"):
        lstm_cell_forward(params, xs[0], h0, c0[None])
    (hs, cs), cache = lstm_sequence_forward(params, xs, h0, c0)
    with pytest.raises(ValueError, match=r"dcs: expected shape \(T, B, H\) = \(3, 2, 4\)"):
        lstm_sequence_backward((hs, cs[:, :1]), cache)


@given(st.data(), st.sampled_from([np.float32, np.float64]))
def test_states_stay_bounded_for_large_inputs(data, dtype):
    """|h| = |o tanh(c)| <= 1 (< 1 in exact arithmetic; saturation can round it to 1) and, as
    c' = f c + i g with f, i in [0, 1] and |g| <= 1, |c_t| <= |c_0| + t."""
    T, B, I, H = data.draw(st.tuples(*[st.integers(1, 3)] * 4), label="(T, B, I, H)")
    xs = data.draw(arrays(dtype, (T, B, I), elements=st.floats(-1e4, 1e4, width=32)), label="xs")
    h0 = data.draw(arrays(dtype, (B, H), elements=st.floats(-1, 1, width=32)), label="h0")
    c0 = data.draw(arrays(dtype, (B, H), elements=st.floats(-10, 10, width=32)), label="c0")
    params = {k: 10 * v for k, v in init_lstm(np.random.default_rng(T + 10 * H), I, H, dtype).items()}
    (hs, cs), cache = lstm_sequence_forward(params, xs, h0, c0)
    assert hs.shape == cs.shape == (T, B, H) and hs.dtype == cs.dtype == dtype
    assert np.all(np.abs(hs) <= 1)
    steps = np.arange(1, T + 1)[:, None, None]  # (T, 1, 1)
    assert np.all(np.abs(cs) <= (np.abs(c0) + steps) * (1 + 1e-6))
    dxs, dh0, dc0, grads = lstm_sequence_backward((np.ones_like(hs), np.ones_like(cs)), cache)
    assert dxs.shape == xs.shape and dh0.shape == h0.shape and dc0.shape == c0.shape
    assert all(grads[k].shape == params[k].shape and np.all(np.isfinite(grads[k])) for k in KEYS)
    assert all(a.dtype == dtype and np.all(np.isfinite(a)) for a in (dxs, dh0, dc0))
