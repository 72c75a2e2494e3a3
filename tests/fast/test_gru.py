"""fast/gru.py: the whole-sequence kernels, and the cell equal to ops/gru.py (the maths of one step, for
both modules: tests/ops/test_gru.py)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from minivrnn.gradcheck import gradcheck
from minivrnn.fast import gru
from minivrnn.fast.gru import (
    KEYS,
    gru_cell_backward,
    gru_cell_forward,
    gru_sequence_backward,
    gru_sequence_forward,
    init_gru,
    pack,
    unpack,
)
from minivrnn.ops import gru as readable
from tests.fast.twins import assert_twins_agree

SHAPES = [(1, 1, 1, 1), (4, 3, 2, 3), (3, 1, 1, 2), (2, 2, 3, 1)]  # (T, B, I, H)


def problem(T, B, I, H, seed=0):
    """Parameters, inputs xs (T, B, I) and a start state h0 (B, H) in [-1, 1], all float64."""
    rng = np.random.default_rng(seed)
    return init_gru(rng, I, H), rng.normal(size=(T, B, I)), rng.uniform(-1, 1, size=(B, H))


def ragged_mask(lengths, T):
    """(T, B) mask with mask[t, b] = 1 for t < lengths[b]."""
    return (np.arange(T)[:, None] < np.asarray(lengths)[None, :]).astype(np.float64)


def sequence_pair(mask):
    """forward/backward for gradcheck over xs, h0 and every parameter (the mask is held fixed)."""

    def forward(xs, h0, **p):
        return gru_sequence_forward(p, xs, h0, mask)[0]

    def backward(dhs, xs, h0, **p):
        dxs, dh0, grads = gru_sequence_backward(dhs, gru_sequence_forward(p, xs, h0, mask)[1])
        return {"xs": dxs, "h0": dh0, **grads}

    return forward, backward



@pytest.mark.parametrize("shape", SHAPES)
def test_sequence_gradients(shape):
    params, xs, h0 = problem(*shape)
    errors = gradcheck(*sequence_pair(None), {"xs": xs, "h0": h0, **params})
    assert set(errors) == {"xs", "h0", *KEYS}
    assert max(errors.values()) < 1e-6, errors


def test_sequence_gradients_with_a_ragged_mask():
    params, xs, h0 = problem(5, 3, 2, 3)
    errors = gradcheck(*sequence_pair(ragged_mask([5, 3, 1], 5)), {"xs": xs, "h0": h0, **params})
    assert max(errors.values()) < 1e-6, errors


def readable_sequence(params, xs, h0, mask=None):
    """The GRU over time as a loop of ops/gru.py's cell; rows with mask[t, b] == 0 keep their state."""
    mask = np.ones(xs.shape[:2]) if mask is None else mask
    h, hs = h0, []
    for t in range(len(xs)):
        padded = mask[t][:, None] == 0  # (B, 1)
        h = np.where(padded, h, readable.gru_cell_forward(params, xs[t], h)[0])
        hs.append(h)
    return np.stack(hs)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lengths", [None, "ragged"])
def test_sequence_matches_a_loop_of_the_readable_cell(shape, lengths):
    T, B, I, H = shape
    params, xs, h0 = problem(*shape, seed=1)
    params = {k: 3 * v for k, v in params.items()}  # saturate some gates too
    mask = None if lengths is None else ragged_mask(np.arange(B) % (T + 1), T)  # includes length 0
    xs_f = np.asfortranarray(xs)  # a non-contiguous layout must not change the answer
    np.testing.assert_allclose(gru_sequence_forward(params, xs_f, h0, mask)[0],
                               readable_sequence(params, xs, h0, mask), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 2, 4)])
def test_cell_matches_the_readable_ops(shape):
    B, I, H = shape
    params, xs, h0 = problem(1, B, I, H, seed=2)
    inputs = {"params": {k: 3 * v for k, v in params.items()}, "x": xs[0], "h": h0}
    assert_twins_agree(readable, gru, lambda m, params, x, h: m.gru_cell_forward(params, x, h),
                       lambda m, d, cache: m.gru_cell_backward(d, cache), inputs)


def test_zero_weights_halve_the_state():
    """All parameters 0: r = u = 1/2 and n = tanh(0) = 0, so h' = h / 2 whatever x is."""
    params = {k: np.zeros_like(v) for k, v in init_gru(np.random.default_rng(0), 2, 3).items()}
    h0 = np.array([[0.8, -0.6, 0.1]])
    hs = gru_sequence_forward(params, np.ones((3, 1, 2)), h0)[0]
    np.testing.assert_array_equal(hs[:, 0], h0 * np.array([[0.5], [0.25], [0.125]]))


def test_masked_steps_keep_the_state_and_get_no_gradient():
    params, xs, h0 = problem(5, 3, 2, 3, seed=2)
    mask = ragged_mask([5, 3, 1], 5)
    padded = mask == 0  # (T, B)
    hs, cache = gru_sequence_forward(params, xs, h0, mask)
    h_prev = np.concatenate([h0[None], hs[:-1]])
    np.testing.assert_array_equal(hs[padded], h_prev[padded])
    dxs = gru_sequence_backward(np.random.default_rng(3).normal(size=hs.shape), cache)[0]
    assert np.all(dxs[padded] == 0) and np.all(dxs[~padded] != 0)
    # What is in the padding does not matter, and each row equals that row run alone for its length.
    xs_junk = np.where(padded[..., None], 1e3, xs)
    np.testing.assert_array_equal(gru_sequence_forward(params, xs_junk, h0, mask)[0], hs)
    for b, length in enumerate([5, 3, 1]):
        alone = gru_sequence_forward(params, xs[:length, b:b + 1], h0[b:b + 1])[0]
        np.testing.assert_allclose(hs[:length, b:b + 1], alone, rtol=1e-14)


def test_float32_in_float32_out_and_agrees_with_float64():
    params, xs, h0 = problem(4, 3, 2, 3, seed=4)
    mask = ragged_mask([4, 2, 1], 4)
    dhs = np.random.default_rng(5).normal(size=(4, 3, 3))
    results = {}
    for dt in (np.float64, np.float32):
        p = {k: v.astype(dt) for k, v in params.items()}
        hs, cache = gru_sequence_forward(p, xs.astype(dt), h0.astype(dt), mask.astype(dt))
        dxs, dh0, grads = gru_sequence_backward(dhs.astype(dt), cache)
        h1, cell_cache = gru_cell_forward(p, xs[0].astype(dt), h0.astype(dt))
        dx, dh, cell_grads = gru_cell_backward(dhs[0].astype(dt), cell_cache)
        results[dt] = [hs, dxs, dh0, *grads.values(), h1, dx, dh, *cell_grads.values()]
    for a32, a64 in zip(results[np.float32], results[np.float64]):
        assert a32.dtype == np.float32
        np.testing.assert_allclose(a32, a64, rtol=1e-5, atol=1e-5)



def test_pack_places_the_gates_side_by_side_and_unpack_inverts_it():
    params = init_gru(np.random.default_rng(8), 2, 3)
    W_i, W_h, b_i, b_h = pack(params)
    assert W_i.shape == (2, 9) and W_h.shape == (3, 9) and b_i.shape == b_h.shape == (9,)
    np.testing.assert_array_equal(W_i[:, 3:6], params["W_iz"])
    np.testing.assert_array_equal(b_h[6:], params["b_hn"])
    back = unpack(W_i, W_h, b_i, b_h)
    assert list(back) == list(params)
    for k in params:
        np.testing.assert_array_equal(back[k], params[k])


def test_bad_shapes_name_the_argument():
    params, xs, h0 = problem(3, 2, 2, 4)
    with pytest.raises(ValueError, match=r"h0: expected shape \(B, H\) = \(2, 4\), got \(2, 3\)"):
        gru_sequence_forward(params, xs, h0[:, :3])
    with pytest.raises(ValueError, match=r"xs: expected shape \(T, B, I\)"):
        gru_sequence_forward(params, xs[..., :1], h0)
    with pytest.raises(ValueError, match=r"mask: expected shape \(T, B\) = \(3, 2\), got \(2, 3\)"):
        gru_sequence_forward(params, xs, h0, np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"W_hn: expected shape \(H, H\)"):
        gru_sequence_forward({**params, "W_hn": np.zeros((4, 3))}, xs, h0)
    with pytest.raises(ValueError, match=r"x: expected shape \(B, I\)"):
        gru_cell_forward(params, xs, h0)
    with pytest.raises(ValueError, match="h0: expected dtype float64"):
        gru_sequence_forward(params, xs, h0.astype(np.float32))
    hs, cache = gru_sequence_forward(params, xs, h0)
    with pytest.raises(ValueError, match=r"dhs: expected shape \(T, B, H\) = \(3, 2, 4\)"):
        gru_sequence_backward(hs[1:], cache)


@given(st.data(), st.sampled_from([np.float32, np.float64]))
def test_state_stays_in_the_unit_box_for_large_inputs(data, dtype):
    """h' = (1 - u) n + u h is a convex combination of n in [-1, 1] and h, so |h| <= 1 for ever."""
    T, B, I, H = data.draw(st.tuples(*[st.integers(1, 3)] * 4), label="(T, B, I, H)")
    xs = data.draw(arrays(dtype, (T, B, I), elements=st.floats(-1e4, 1e4, width=32)), label="xs")
    h0 = data.draw(arrays(dtype, (B, H), elements=st.floats(-1, 1, width=32)), label="h0")
    params = {k: 10 * v for k, v in init_gru(np.random.default_rng(T + 10 * H), I, H, dtype).items()}
    hs, cache = gru_sequence_forward(params, xs, h0)
    assert hs.shape == (T, B, H) and hs.dtype == dtype and np.all(np.abs(hs) <= 1)
    dxs, dh0, grads = gru_sequence_backward(np.ones_like(hs), cache)
    assert dxs.shape == xs.shape and dh0.shape == h0.shape and dxs.dtype == dh0.dtype == dtype
    assert all(grads[k].shape == params[k].shape and np.all(np.isfinite(grads[k])) for k in KEYS)
    assert np.all(np.isfinite(dxs)) and np.all(np.isfinite(dh0))
