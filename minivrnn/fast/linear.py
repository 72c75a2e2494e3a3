"""Linear layers and ReLU MLPs (the paper's feature extractors phi^x, phi^z, phi^prior, phi^enc, phi^dec).

Weights are stored ``(in, out)`` and applied as ``y = x @ W + b`` (PyTorch's nn.Linear stores W.T).
Parameters live in plain dicts: a layer is ``{"W", "b"}``; an MLP is ``{"l0.W", "l0.b", "l1.W", ...}``.
"""
from functools import lru_cache

import numpy as np

from ..validate import check_arrays, check_like
from .activations import _relu_grad
from .jit import kernel
from .matmul import matmul, matmul_tn, sum_rows


def init_linear(rng, n_in, n_out, dtype=np.float64):
    """PyTorch's default nn.Linear initialisation: W, b ~ U(-1/sqrt(n_in), 1/sqrt(n_in))."""
    bound = 1.0 / np.sqrt(n_in)
    return {
        "W": rng.uniform(-bound, bound, size=(n_in, n_out)).astype(dtype),  # (in, out)
        "b": rng.uniform(-bound, bound, size=(n_out,)).astype(dtype),  # (out,)
    }


def linear_forward(params, x):
    """y = x @ W + b for x of shape (..., in); returns (y, cache)."""
    W, b = params["W"], params["b"]
    check_arrays(x=(x, "... I"), W=(W, "I O"), b=(b, "O"))
    return _affine(x, W, b), (x, W)


def linear_backward(dy, cache, input_grad=True):
    """Backward of linear_forward: returns (dx, {"W": dW, "b": db}); dx is None if ``input_grad`` is False."""
    x, W = cache
    check_like("dy", dy, x.shape[:-1] + W.shape[1:], x.dtype, "... O")  # y is (..., out)
    return _affine_backward(dy, x, W, input_grad)


def _affine(x, W, b, relu=False):
    """x @ W + b, or ReLU(x @ W + b) with ``relu``; shapes already checked."""
    x2 = x.reshape(-1, x.shape[-1])  # (N, in), N the product of the leading axes: one matrix product
    y = matmul(x2, W)
    _add_bias_kernel(y, b, relu)  # in place: no second (N, out) array
    return y.reshape(x.shape[:-1] + (W.shape[1],))  # (..., out)


@kernel
def _add_bias_kernel(y, b, relu):
    """y = y + b row by row, then max(., 0) if ``relu`` (NaN stays NaN, as with np.maximum), in one pass over
    y (N, O): NumPy's ``y += b`` then ``np.maximum`` take 11 us at 800 x 32, this 2."""
    zero = y.dtype.type(0.0)
    for i in range(y.shape[0]):
        row = y[i]
        if relu:
            for j in range(y.shape[1]):
                v = row[j] + b[j]
                row[j] = zero if v < zero else v
        else:
            for j in range(y.shape[1]):
                row[j] += b[j]


def _affine_backward(dy, x, W, input_grad):
    """linear_backward after its check."""
    x2 = x.reshape(-1, x.shape[-1])  # (N, in)
    dy2 = dy.reshape(-1, dy.shape[-1])  # (N, out)
    dx = matmul(dy2, W.T).reshape(x.shape) if input_grad else None  # (..., in)
    return dx, {"W": matmul_tn(x2, dy2), "b": sum_rows(dy2)}


def init_mlp(rng, n_in, widths, dtype=np.float64):
    """An MLP with one ReLU layer per entry of ``widths``: keys ``l{i}.W`` and ``l{i}.b``."""
    params = {}
    for i, n_out in enumerate(widths):
        for key, value in init_linear(rng, n_in, n_out, dtype).items():
            params[f"l{i}.{key}"] = value
        n_in = n_out
    return params


def mlp_forward(params, x):
    """Every layer is Linear then ReLU; returns (y, cache) with y the last layer's activations."""
    n = _n_layers(params)
    check_arrays(x=(x, "... I0"), **_layer_specs(params, n))  # every layer's shapes, in one check
    caches = []
    for i in range(n):
        W = params[f"l{i}.W"]
        y = _affine(x, W, params[f"l{i}.b"], relu=True)
        caches.append(((x, W), y))  # (linear_forward's cache, relu_forward's: y > 0 exactly where a > 0)
        x = caches[-1][1]
    return x, caches


def mlp_backward(dy, cache, input_grad=True):
    """Backward of mlp_forward, walking the layers in reverse: returns (dx, grads). With ``input_grad=False``
    (the MLP reads the data, as phi_x does) the first layer's dx product is skipped and dx is None."""
    if cache:  # (an MLP with no layers passes dy through)
        y = cache[-1][1]
        check_like("dy", dy, y.shape, y.dtype, "... O")
    grads = {}
    for i in reversed(range(len(cache))):
        (x, W), relu_cache = cache[i]
        da = _relu_grad(dy, relu_cache)
        dy, layer_grads = _affine_backward(da, x, W, input_grad or i > 0)
        grads[f"l{i}.W"], grads[f"l{i}.b"] = layer_grads["W"], layer_grads["b"]
    return dy, grads


def _layer_specs(params, n):
    """check_arrays specs chaining the layers: l{i}.W is (I{i}, I{i+1}) and l{i}.b is (I{i+1},)."""
    specs = {}
    for i in range(n):
        specs[f"l{i}.W"] = (params[f"l{i}.W"], f"I{i} I{i + 1}")
        specs[f"l{i}.b"] = (params[f"l{i}.b"], f"I{i + 1}")
    return specs


def _n_layers(params):
    """Hidden layers ``l0, l1, ...`` (other keys, such as heads that share a prefix, are not layers)."""
    return _count_layers(tuple(params))


@lru_cache(maxsize=1024)
def _count_layers(keys):
    """_n_layers by the keys alone (a training step asks it of the same keys every time)."""
    return sum(1 for key in keys if key.startswith("l") and key.endswith(".W") and key[1:-2].isdigit())
