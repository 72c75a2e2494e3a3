"""The compiled twins of ops/linear.py's linear layers and ReLU MLPs, with the same names and results.

The matrix products go through matmul.py; the bias and the ReLU are added in one pass over the output.
Initialisation and the parameter layout are ops/linear.py's.
"""
from functools import lru_cache

from ..ops.linear import init_linear, init_mlp, mlp_param_specs, n_layers  # noqa: F401  (shared, not compiled)
from ..validate import check_arrays, check_like
from .activations import relu_grad
from .jit import kernel
from .matmul import matmul, matmul_tn, sum_rows


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
    y (N, O), several times faster than NumPy's ``y += b`` then ``np.maximum`` (measured: docs/performance.md,
    "Fused passes")."""
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



def mlp_forward(params, x):
    """Every layer is Linear then ReLU; returns (y, cache) with y the last layer's activations."""
    n = _count_layers(tuple(params))
    check_arrays(x=(x, "... I0"), **mlp_param_specs(params, n))  # every layer's shapes, in one check
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
        da = relu_grad(dy, relu_cache)
        dy, layer_grads = _affine_backward(da, x, W, input_grad or i > 0)
        grads[f"l{i}.W"], grads[f"l{i}.b"] = layer_grads["W"], layer_grads["b"]
    return dy, grads





@lru_cache(maxsize=1024)
def _count_layers(keys):
    """ops.linear.n_layers, remembered by the keys (a training step asks it of the same keys every time)."""
    return n_layers(keys)
