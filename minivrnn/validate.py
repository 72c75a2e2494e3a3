"""Input checks shared by every public function.

A public function validates shapes and dtypes here, in plain Python, *before* any Numba kernel runs, so a
mistake gives a `ValueError` that names the argument and the shape it should have.

Shape specs are strings of dimension letters, e.g. ``"... K D"``: a leading ``...`` matches any number of
leading axes (the same ones for every argument), a letter binds a size that must agree across arguments,
and an integer is a fixed size.
"""
from functools import lru_cache

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_ARRAY_TYPES = (np.ndarray, np.generic)  # what check_like accepts: an array, or a NumPy scalar for shape ()


def check_arrays(**specs):
    """Check ``name=(array, "spec")`` pairs; return the bound sizes as a dict (``"..."`` -> leading shape).

    Every array must be a float32 or float64 ``np.ndarray`` and all must share one dtype.
    Raises ValueError naming the first argument that does not fit.

    A training step asks the same questions of the same shapes every time, so each answer that passed is
    remembered, keyed by the names, types, shapes, dtypes and specs: looking an answer up is several times
    cheaper than matching the spec again (measured: docs/performance.md, "Adam and the shape checks").
    """
    key = tuple([(name, type(array), getattr(array, "shape", None), getattr(array, "dtype", None), spec)
                 for name, (array, spec) in specs.items()])
    try:
        sizes = _PASSED.get(key)
    except TypeError:  # not hashable (an object whose "shape" is a list, say): no array, so the check says so
        return _check_arrays(specs)
    if sizes is None:
        sizes = _check_arrays(specs)
        if len(_PASSED) >= PASSED_MAX:
            _PASSED.clear()
        _PASSED[key] = sizes
    return dict(sizes)


_PASSED = {}  # check_arrays' key -> the sizes it returned
PASSED_MAX = 4096  # (forgotten all at once when full: shapes that change at every call do not pile up)


def _check_arrays(specs):
    """check_arrays' work, done once per key."""
    sizes = {}
    dtype = None
    first = None
    for name, (array, spec) in specs.items():
        if not isinstance(array, np.ndarray):
            raise ValueError(f"{name}: expected a NumPy array, got {type(array).__name__}")
        if array.dtype not in FLOAT_DTYPES:
            raise ValueError(f"{name}: expected dtype float32 or float64, got {array.dtype}")
        if dtype is None:
            dtype, first = array.dtype, name
        elif array.dtype != dtype:
            raise ValueError(f"{name}: expected dtype {dtype} (the dtype of {first}), got {array.dtype}")
        _match_shape(name, array.shape, _tokens(spec), sizes)
    return sizes


def check_like(name, array, shape, dtype, spec=None):
    """Check that ``array`` has exactly ``shape`` and ``dtype``: an upstream gradient against the forward's output.

    For the backward passes, which know the expected shape and dtype exactly (from their cache), so the check
    is a tuple and a dtype comparison rather than check_arrays' spec matching. ``spec`` (e.g. ``"... K"``)
    only labels the message. A NumPy scalar passes for shape () (``a.sum(axis=-1)`` of a (K,) array is one).
    Raises ValueError in check_arrays' style, naming ``name``.
    """
    if not (isinstance(array, _ARRAY_TYPES) and array.shape == shape and array.dtype == dtype):
        _raise_like(name, array, shape, dtype, spec)


def _raise_like(name, array, shape, dtype, spec):
    if not isinstance(array, _ARRAY_TYPES):
        raise ValueError(f"{name}: expected a NumPy array, got {type(array).__name__}")
    if array.shape != shape:
        expected = tuple(shape)
        if spec is not None:
            sizes = {}
            _match_shape("the expected shape", expected, spec.split(), sizes)  # binds the spec's letters
            expected = _describe(spec.split(), sizes)
        raise ValueError(f"{name}: expected shape {expected}, got {tuple(array.shape)}")
    raise ValueError(f"{name}: expected dtype {dtype} (the dtype of the forward's output), got {array.dtype}")


@lru_cache(maxsize=None)
def _tokens(spec):
    """``"... K D"`` -> ``("...", "K", "D")`` (the same few specs come back on every call)."""
    return tuple(spec.split())


def _match_shape(name, shape, tokens, sizes):
    lead = tokens[0] == "..."
    fixed = tokens[1:] if lead else tokens
    ok = len(shape) >= len(fixed) if lead else len(shape) == len(fixed)
    if ok:
        n_lead = len(shape) - len(fixed)
        if lead:
            ok = sizes.setdefault("...", shape[:n_lead]) == shape[:n_lead]
        for token, size in zip(fixed, shape[n_lead:]):
            if not ok:
                break
            if token.isdigit():
                ok = int(token) == size
            else:
                ok = sizes.setdefault(token, size) == size
    if not ok:
        raise ValueError(f"{name}: expected shape {_describe(tokens, sizes)}, got {tuple(shape)}")


def _describe(tokens, sizes):
    """``("...", "K", "D")`` -> ``"(..., K, D) = (4, 3, 2)"`` with the sizes known so far."""
    letters = "(" + ", ".join(tokens) + ")"
    values = []
    for token in tokens:
        if token == "...":
            values.extend(str(s) for s in sizes.get("...", ("...",)))
        elif token.isdigit():
            values.append(token)
        else:
            values.append(str(sizes.get(token, "?")))
    inner = ", ".join(values)
    if len(values) == 1:
        inner += ","
    return f"{letters} = ({inner})"
