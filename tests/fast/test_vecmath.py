"""vecmath's exp, expm1, log and log1p against NumPy's (libm's), in float32 and float64: to a few units in the
last place at every scale, and exactly at the special values."""
import numpy as np
import pytest
from numba import njit

from minivrnn.fast import vecmath

# Each bound sits just above the worst error measured over this grid, in both dtypes (measured:
# docs/performance.md, "Polynomial exp and log").
ULPS = {"exp": 1.5, "expm1": 2, "log": 2.5, "log1p": 3}


@njit
def _apply(name_code, a, out):
    for i in range(a.size):
        if name_code == 0:
            out[i] = vecmath.exp(a[i])
        elif name_code == 1:
            out[i] = vecmath.expm1(a[i])
        elif name_code == 2:
            out[i] = vecmath.log(a[i])
        else:
            out[i] = vecmath.log1p(a[i])


NAMES = ["exp", "expm1", "log", "log1p"]
REFERENCE = {"exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p}


def _compiled(name, a):
    out = np.empty_like(a)
    with np.errstate(over="ignore", under="ignore"):  # (NUMBA_DISABLE_JIT=1 runs NumPy's, which warns)
        _apply(NAMES.index(name), a, out)
    return out


def _grid(dtype, positive):
    rng = np.random.default_rng(11)
    scales = [1e-30, 1e-8, 1e-3, 0.1, 0.35, 1.0, 5.0, 30.0, 80.0, 300.0, 700.0]
    a = np.concatenate([rng.normal(size=2000) * s for s in scales])
    a = np.abs(a) if positive else a
    return a.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_matches_numpy_to_a_few_ulps_at_every_scale(name, dtype):
    a = _grid(dtype, positive=name.startswith("log"))
    with np.errstate(over="ignore", under="ignore"):
        want = REFERENCE[name](a.astype(np.float64)).astype(dtype)  # the correctly rounded value, nearly
    got = _compiled(name, a)
    info = np.finfo(dtype)
    normal = np.isfinite(want) & (np.abs(want) >= info.tiny)
    rel = np.abs(got[normal].astype(np.float64) - want[normal]) / np.abs(want[normal].astype(np.float64))
    assert rel.max() <= ULPS[name] * info.eps, (name, a[normal][np.argmax(rel)], rel.max() / info.eps)
    # Overflow and underflow land where NumPy's do: +inf, or a subnormal within one subnormal step of it.
    rest = ~normal
    assert np.array_equal(np.isinf(got[rest]), np.isinf(want[rest]))
    finite = rest & np.isfinite(want)
    assert np.all(np.abs(got[finite].astype(np.float64) - want[finite]) <= 2 * info.smallest_subnormal)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values(dtype):
    info = np.finfo(dtype)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, info.tiny, info.smallest_subnormal, info.max,
                         -info.max, 1.0, -1.0, 2.0], dtype)
    with np.errstate(all="ignore"):
        for name in NAMES:
            got, want = _compiled(name, specials), REFERENCE[name](specials)
            same = (got == want) | (np.isnan(got) & np.isnan(want))
            close = np.isclose(got, want, rtol=4 * info.eps, atol=0)
            assert np.all(same | close), (name, specials[~(same | close)], got[~(same | close)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_code_keeps_the_dtype(dtype):
    # float32 in, float32 out: the constants are chosen by dtype at compile time, never promoted to float64.
    a = np.linspace(0.1, 3.0, 7).astype(dtype)
    for name in NAMES:
        assert _compiled(name, a).dtype == dtype


def test_python_fallbacks_are_numpys():
    x = np.array([0.25, 3.0])
    for name in NAMES:
        assert np.array_equal(getattr(vecmath, name)(x), REFERENCE[name](x))
