"""A finite-difference gradient checker, usable on anyone's forward/backward pair (depends on NumPy only).

The check: draw a random upstream gradient ``dy`` of the output's shape and form the scalar
``L(inputs) = sum(dy * forward(inputs))``. Its exact gradient is what ``backward(dy, inputs)`` returns;
its numerical gradient is the central difference ``(L(a + h) - L(a - h)) / (2 h)`` for every element of
every checked input, in float64. A random ``dy`` (rather than all ones) catches backward passes that are
right only for a uniform upstream gradient.

Example::

    from minivrnn.gradcheck import gradcheck
    errors = gradcheck(lambda x: np.tanh(x), lambda dy, x: {"x": dy * (1 - np.tanh(x) ** 2)},
                       {"x": np.random.default_rng(0).normal(size=(3, 4))})
    assert max(errors.values()) < 1e-6
"""
import numpy as np


def gradcheck(forward, backward, inputs, wrt=None, *, seed=0, step=1e-5):
    """Worst relative error between ``backward`` and central differences of ``forward``, per input.

    forward:  ``forward(**inputs)`` -> an array, or a tuple of arrays.
    backward: ``backward(dy, **inputs)`` -> ``{name: gradient}`` for (at least) every name in ``wrt``;
              ``dy`` has the structure of forward's output (a tuple when forward returns a tuple).
    inputs:   ``{name: array}``; converted to float64 copies, so the caller's arrays are never changed.
    wrt:      names to check (default: every floating-point input).
    Returns ``{name: error}`` where, for analytic ``a`` and numerical ``n``,
    ``error = max|a - n| / max(max|a|, max|n|)`` (0 when both are all zero): the worst element's error
    relative to the gradient's own scale, which stays meaningful when some entries are exactly zero.
    """
    inputs = {k: _as_float64(v) for k, v in inputs.items()}
    if wrt is None:
        wrt = [k for k, v in inputs.items() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    rng = np.random.default_rng(seed)
    y = forward(**_copies(inputs))
    dy = _like(y, rng)
    analytic = backward(_copies_of_output(dy), **_copies(inputs))
    errors = {}
    for name in wrt:
        if name not in analytic:
            raise KeyError(f"backward returned no gradient for {name!r}")
        a = np.asarray(analytic[name], dtype=np.float64)
        if a.shape != inputs[name].shape:
            raise ValueError(f"gradient for {name!r} has shape {a.shape}, expected {inputs[name].shape}")
        n = numerical_gradient(forward, inputs, name, dy, step)
        scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(n), initial=0.0))
        errors[name] = 0.0 if scale == 0.0 else float(np.max(np.abs(a - n)) / scale)
    return errors


def numerical_gradient(forward, inputs, name, dy, step=1e-5):
    """Central-difference gradient of ``sum(dy * forward(**inputs))`` with respect to ``inputs[name]``."""
    grad = np.zeros_like(inputs[name], dtype=np.float64)
    for index in np.ndindex(grad.shape):
        plus, minus = _copies(inputs), _copies(inputs)
        plus[name][index] += step
        minus[name][index] -= step
        grad[index] = (_contract(dy, forward(**plus)) - _contract(dy, forward(**minus))) / (2 * step)
    return grad


def _as_float64(value):
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return value.astype(np.float64, copy=True)
    return value


def _copies(inputs):
    return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in inputs.items()}


def _like(y, rng):
    if isinstance(y, tuple):
        return tuple(_like(part, rng) for part in y)
    return rng.standard_normal(np.shape(y))


def _copies_of_output(dy):
    if isinstance(dy, tuple):
        return tuple(_copies_of_output(part) for part in dy)
    return np.array(dy, copy=True)


def _contract(dy, y):
    if isinstance(dy, tuple):
        return sum(_contract(d, part) for d, part in zip(dy, y))
    return float(np.sum(dy * np.asarray(y, dtype=np.float64)))
