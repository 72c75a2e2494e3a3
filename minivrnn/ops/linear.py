"""Linear layers and ReLU MLPs (the paper's feature extractors phi^x, phi^z, phi^prior, phi^enc, phi^dec).

Weights are stored ``(in, out)`` and applied as ``y = x @ W + b`` (PyTorch's nn.Linear stores W.T).
Parameters live in plain dicts: a layer is ``{"W", "b"}``; an MLP is ``{"l0.W", "l0.b", "l1.W", ...}``.
"""
import numpy as np

from ..validate import check_arrays, check_like
from .activations import relu_backward, relu_forward


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
    y = x @ W + b  # (..., out)
    return y, (x, W)


def linear_backward(dy, cache, input_grad=True):
    """Backward of linear_forward: returns (dx, {"W": dW, "b": db}); dx is None if ``input_grad`` is False
    (a layer that reads the data needs no gradient for it)."""
    x, W = cache
    check_like("dy", dy, x.shape[:-1] + W.shape[1:], x.dtype, "... O")  # y is (..., out)
    x2 = x.reshape(-1, x.shape[-1])  # (N, in): every leading axis is a row of the same product
    dy2 = dy.reshape(-1, dy.shape[-1])  # (N, out)
    dx = dy @ W.T if input_grad else None  # (..., in)
    dW = x2.T @ dy2  # (in, out)
    db = dy2.sum(axis=0)  # (out,)
    return dx, {"W": dW, "b": db}


def init_mlp(rng, n_in, widths, dtype=np.float64):
    """An MLP with one ReLU layer per entry of ``widths``: keys ``l{i}.W`` and ``l{i}.b``."""
    params = {}
    for i, n_out in enumerate(widths):
        for key, value in init_linear(rng, n_in, n_out, dtype).items():
            params[f"l{i}.{key}"] = value
        n_in = n_out
    return params


def n_layers(keys):
    """The number of hidden layers ``l0, l1, ...`` among parameter names (other keys, such as heads that share
    a prefix, are not layers)."""
    return sum(1 for key in keys if key.startswith("l") and key.endswith(".W") and key[1:-2].isdigit())


def mlp_param_specs(params, n):
    """check_arrays specs chaining n layers: l{i}.W is (I{i}, I{i+1}) and l{i}.b is (I{i+1},), so that a layer
    that does not fit its neighbour is named by its full key."""
    specs = {}
    for i in range(n):
        specs[f"l{i}.W"] = (params[f"l{i}.W"], f"I{i} I{i + 1}")
        specs[f"l{i}.b"] = (params[f"l{i}.b"], f"I{i + 1}")
    return specs


def mlp_forward(params, x):
    """Every layer is Linear then ReLU; returns (y, cache) with y the last layer's activations."""
    n = n_layers(params)
    check_arrays(x=(x, "... I0"), **mlp_param_specs(params, n))
    caches = []
    for i in range(n):
        a, linear_cache = linear_forward({"W": params[f"l{i}.W"], "b": params[f"l{i}.b"]}, x)
        x, relu_cache = relu_forward(a)
        caches.append((linear_cache, relu_cache))
    return x, caches


def mlp_backward(dy, cache, input_grad=True):
    """Backward of mlp_forward, walking the layers in reverse: returns (dx, grads). With ``input_grad=False``
    (the MLP reads the data, as phi_x does) the first layer's dx is not computed and dx is None."""
    grads = {}
    for i in reversed(range(len(cache))):
        linear_cache, relu_cache = cache[i]
        da = relu_backward(dy, relu_cache)
        dy, layer_grads = linear_backward(da, linear_cache, input_grad or i > 0)
        grads[f"l{i}.W"], grads[f"l{i}.b"] = layer_grads["W"], layer_grads["b"]
    return dy, grads
