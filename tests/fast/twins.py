"""The check every compiled twin passes: it computes what the readable minivrnn.ops function computes.

``forward(module, **inputs) -> (out, cache)`` and ``backward(module, dout, cache) -> gradients`` call the same
public function of either module; outputs and gradients may be arrays or nested tuples / dicts of arrays.
Both run on the same random inputs and the same random upstream gradient, in float64 (rtol 1e-10) and in
float32 (a few float32 roundings apart), and must return the input's dtype.
"""
import numpy as np

TOLERANCES = {np.float64: 1e-10, np.float32: 2e-5}


def flatten(tree, path="out"):
    """[(path, array)] for the arrays in ``tree``, dict keys sorted (both modules must give the same keys)."""
    if isinstance(tree, dict):
        return [item for key in sorted(tree) for item in flatten(tree[key], f"{path}[{key!r}]")]
    if isinstance(tree, (tuple, list)):
        return [item for i, t in enumerate(tree) for item in flatten(t, f"{path}[{i}]")]
    if tree is None:
        return [(path, None)]
    return [(path, np.asarray(tree))]


def cast(tree, dtype):
    """``tree`` with every floating-point array converted to ``dtype``."""
    if isinstance(tree, dict):
        return {k: cast(v, dtype) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(cast(t, dtype) for t in tree)
    if isinstance(tree, np.ndarray) and tree.dtype.kind == "f":
        return tree.astype(dtype)
    return tree


def random_like(tree, rng):
    """A random tree of ``tree``'s structure, shapes and dtypes (the upstream gradient)."""
    if isinstance(tree, dict):
        return {k: random_like(v, rng) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(random_like(t, rng) for t in tree)
    return rng.normal(size=np.shape(tree)).astype(tree.dtype)


def assert_trees_close(got, expected, rtol, dtype):
    got, expected = flatten(got), flatten(expected)
    assert [p for p, _ in got] == [p for p, _ in expected]
    for (path, g), (_, e) in zip(got, expected):
        if e is None:
            assert g is None, path
            continue
        assert g.dtype == dtype and e.dtype == dtype and g.shape == e.shape, path
        scale = float(np.max(np.abs(e), initial=0.0))
        np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol * scale, err_msg=path)


def assert_twins_agree(readable, compiled, forward, backward, inputs, seed=0):
    """The compiled module's forward and backward equal the readable module's, in float64 and float32."""
    for dtype, rtol in TOLERANCES.items():
        typed = cast(inputs, dtype)
        out_r, cache_r = forward(readable, **typed)
        out_c, cache_c = forward(compiled, **typed)
        assert_trees_close(out_c, out_r, rtol, dtype)
        dout = random_like(out_r, np.random.default_rng(seed))
        assert_trees_close(backward(compiled, dout, cache_c), backward(readable, dout, cache_r), rtol, dtype)
