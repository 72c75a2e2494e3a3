"""The checker itself: it must pass a right gradient, fail a wrong one, and never touch its inputs."""
import numpy as np

from minivrnn.gradcheck import gradcheck, numerical_gradient


def _inputs():
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(3, 4)), "w": rng.normal(size=(4,))}


def _forward(x, w):
    return np.tanh(x * w)


def _backward(dy, x, w):
    da = dy * (1 - np.tanh(x * w) ** 2)
    return {"x": da * w, "w": (da * x).sum(axis=0)}


def test_right_gradient_passes():
    errors = gradcheck(_forward, _backward, _inputs())
    assert set(errors) == {"x", "w"}
    assert max(errors.values()) < 1e-8


def test_wrong_gradient_fails_for_that_argument_only():
    def wrong(dy, x, w):
        grads = _backward(dy, x, w)
        grads["w"] = grads["w"] * 1.01
        return grads

    errors = gradcheck(_forward, wrong, _inputs())
    assert errors["x"] < 1e-8
    assert 0.005 < errors["w"] < 0.02


def test_inputs_are_not_mutated():
    inputs = _inputs()
    before = {k: v.copy() for k, v in inputs.items()}
    gradcheck(_forward, _backward, inputs)
    for k in inputs:
        assert np.array_equal(inputs[k], before[k])


def test_tuple_outputs_and_wrt():
    def forward(x, w):
        return x * w, np.sin(x).sum(axis=1)

    def backward(dys, x, w):
        dprod, dsin = dys
        return {"x": dprod * w + dsin[:, None] * np.cos(x)}

    errors = gradcheck(forward, backward, _inputs(), wrt=["x"])
    assert list(errors) == ["x"] and errors["x"] < 1e-8


def test_numerical_gradient_of_a_quadratic_is_exact():
    x = np.array([1.0, -2.0, 3.0])
    dy = np.array(1.0)
    g = numerical_gradient(lambda x: np.sum(x**2), {"x": x}, "x", dy)
    np.testing.assert_allclose(g, 2 * x, rtol=1e-8)


def test_a_forward_or_backward_that_writes_into_its_arguments_cannot_change_the_callers_arrays():
    seen = []

    def forward(x, w):
        seen.append(x.dtype)
        out = np.tanh(x * w)
        x *= 0.0  # a careless implementation scribbling on its input
        return out

    def backward(dy, x, w):
        grads = _backward(dy, x, w)
        w[...] = np.nan
        return grads

    inputs = {"x": _inputs()["x"].astype(np.float32), "w": _inputs()["w"]}
    before = {k: v.copy() for k, v in inputs.items()}
    gradcheck(forward, backward, inputs)
    for k in inputs:
        assert np.array_equal(inputs[k], before[k]) and inputs[k].dtype == before[k].dtype, k
    assert set(seen) == {np.dtype(np.float64)}  # float32 inputs are checked in float64
