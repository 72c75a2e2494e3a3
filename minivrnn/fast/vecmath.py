"""exp, expm1, log and log1p written as straight-line arithmetic, so that a loop calling them vectorises.

Numba compiles ``np.exp`` and ``np.log`` inside a loop to one libm call per element (never vectorised
without fastmath and SVML). Every GRU/LSTM gate and every standard deviation needs one, so in a small model
they were most of the recurrence's time. Here each function is range reduction plus a polynomial, with no
branches (only selects) and no calls, which LLVM turns into SIMD code, several elements per instruction: a
fraction of a libm call's cost per element (measured: docs/performance.md, "Polynomial exp and log").

    exp(x)    = 2^n e^r,  n = round(x / ln 2),  r = x - n ln 2 in [-ln2/2, ln2/2],
                e^r = 1 + r q(r),  q(r) = sum_k r^k / (k+1)!   (Taylor, to degree 7 in float32, 12 in float64)
    expm1(x)  = 2^n r q(r) + (2^n - 1)                           (no cancellation when n = 0)
    log(u)    = k ln 2 + log(m),  u = 2^k m,  m in [sqrt(2)/2, sqrt(2)),
                log(m) = 2 atanh(s) = 2 s sum_j s^(2j) / (2j+1),  s = (m - 1) / (m + 1), |s| <= 0.172
    log1p(e)  = log(u) * e / (u - 1),  u = 1 + e                 (Goldberg, 1991: corrects u's rounding)

2^n is built from its bits (the exponent field), in two factors so that subnormal and overflowing results
come out right. Each stays within a few ulps of NumPy's (tests/fast/test_vecmath.py holds it there). The
same code serves float32 and float64: the functions are Numba overloads that pick their constants by dtype
when compiled. Called from Python they are NumPy's own functions.

For a loop to vectorise, the rest of its body must allow it too: no Python division checks (``jit.py``),
helpers inlined (``jit.scalar_helper``), and few enough arrays, each read through its own row view.

The first time Numba compiles a call to one of them, the polynomials check themselves against NumPy on a few
values (``self_check``, run through fast/jit.py's ``plain_kernels``); if they disagree, or with
MINIVRNN_FORCE_PLAIN_KERNELS=1, the four names compile to NumPy's own np.exp, np.expm1, np.log and np.log1p
instead (one warning), so that callers need no change.
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from .jit import plain_kernels

NUMPY_ERRORS = {"error_model": "numpy"}  # division by 0 gives inf, without a branch (see jit.py)

# Terms of each series by dtype; the first term left out is far below half an ulp:
EXP_TERMS = {np.float32: 8, np.float64: 13}  # q(r) to degree 7 or 12: 0.347^8/9! < 2^-30, 0.347^13/14! < 2^-56
LOG_TERMS = {np.float32: 6, np.float64: 11}  # j < 6 or < 11: 0.0295^6 / 13 < 2^-34, 0.0295^11 / 23 < 2^-60


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float with IEEE-754 bit pattern ``bits`` (int32 -> float32, int64 -> float64)."""
    if bits == types.int32:
        return types.float32(types.int32), lambda context, builder, sig, args: builder.bitcast(
            args[0], ir.FloatType())
    if bits == types.int64:
        return types.float64(types.int64), lambda context, builder, sig, args: builder.bitcast(
            args[0], ir.DoubleType())
    return None


@intrinsic
def _bits_from_float(typingctx, x):
    """The IEEE-754 bit pattern of ``x`` (float32 -> int32, float64 -> int64)."""
    if x == types.float32:
        return types.int32(types.float32), lambda context, builder, sig, args: builder.bitcast(
            args[0], ir.IntType(32))
    if x == types.float64:
        return types.int64(types.float64), lambda context, builder, sig, args: builder.bitcast(
            args[0], ir.IntType(64))
    return None


def _layout(x):
    """Typing-time constants for a float type: (float, int, mantissa bits, exponent bias, lowest finite
    exponent argument, highest), or None for any other type."""
    if x == types.float32:
        return np.float32, np.int32, 23, 127, -104.0, 89.0
    if x == types.float64:
        return np.float64, np.int64, 52, 1023, -746.0, 710.0
    return None


def _ln2_parts(ft):
    """ln 2 = hi + lo to well beyond the float's precision, hi with trailing zero bits so that n * hi is exact
    for every exponent n (fdlibm's constants)."""
    if ft is np.float32:
        return np.float32(6.9314575195e-01), np.float32(1.4286067653e-06)
    return np.float64(6.93147180369123816490e-01), np.float64(1.90821492927058770002e-10)


def exp(x):
    """e^x (the Python version; compiled code gets the overload)."""
    return np.exp(x)


def expm1(x):
    """e^x - 1 (the Python version; compiled code gets the overload)."""
    return np.expm1(x)


def log(x):
    """log(x) (the Python version; compiled code gets the overload)."""
    return np.log(x)


def log1p(x):
    """log(1 + x) (the Python version; compiled code gets the overload)."""
    return np.log1p(x)


def _make_reduce(x):
    """The shared first half of exp and expm1: x -> (r q(r), 2^a, 2^b) with a + b = n. ln 2 is split in two,
    hi + lo, so that r = x - n ln 2 keeps its precision for large n."""
    ft, it, mant, bias, lo, hi = _layout(x)
    one, half, lo, hi = ft(1.0), ft(0.5), ft(lo), ft(hi)
    inv_ln2 = ft(1.0 / math.log(2.0))
    ln2_hi, ln2_lo = _ln2_parts(ft)
    coeffs = tuple(ft(1.0 / math.factorial(k + 1)) for k in reversed(range(EXP_TERMS[ft])))
    i_bias, i_mant = it(bias), it(mant)

    def reduce(x):
        xc = min(max(x, lo), hi)  # keeps n in range; out-of-range x is fixed up by the caller
        n = np.floor(xc * inv_ln2 + half)
        r = (x - n * ln2_hi) - n * ln2_lo
        q = coeffs[0]
        for c in coeffs[1:]:
            q = q * r + c
        k = it(n)
        a = k >> it(1)
        s1 = _float_from_bits(it((a + i_bias) << i_mant))  # 2^a (Numba widens int32 arithmetic: cast back)
        s2 = _float_from_bits(it((k - a + i_bias) << i_mant))
        return r * q, s1, s2

    return njit(error_model="numpy")(reduce), one, lo, hi


def _exp_impl(x):
    reduce, one, lo, hi = _make_reduce(x)
    zero, inf = one - one, _layout(x)[0](np.inf)

    def impl(x):
        rq, s1, s2 = reduce(x)
        y = (one + rq) * s1 * s2
        y = zero if x < lo else y
        return inf if x > hi else y  # (NaN stays NaN: both comparisons are false)

    return impl


def _expm1_impl(x):
    reduce, one, lo, hi = _make_reduce(x)
    ft, mant = _layout(x)[0], _layout(x)[2]
    inf, big = ft(np.inf), ft(mant * math.log(2.0) + 1.0)  # beyond big, e^x - 1 rounds to e^x

    def impl(x):
        rq, s1, s2 = reduce(x)
        y = (rq * s1) * s2 + (s1 * s2 - one)  # no cancellation for n = 0 (|x| <= ln2/2): y = r q(r)
        y = ((one + rq) * s1) * s2 if x > big else y  # (where 2^n alone would overflow first)
        y = -one if x < lo else y
        return inf if x > hi else y

    return impl


def _make_log(u):
    """log(u) for any float u (subnormal, 0, +inf and NaN included; NaN for u < 0)."""
    ft, it, mant, bias, _, _ = _layout(u)
    one, two, zero = ft(1.0), ft(2.0), ft(0.0)
    sqrt2 = ft(math.sqrt(2.0))
    ln2_hi, ln2_lo = _ln2_parts(ft)
    coeffs = tuple(ft(2.0 / (2 * j + 1)) for j in reversed(range(LOG_TERMS[ft])))
    i_bias, i_mant = it(bias), it(mant)
    mant_mask = it((1 << mant) - 1)
    one_bits = it(bias << mant)
    inf, nan, tiny, scale = ft(np.inf), ft(np.nan), ft(np.finfo(ft).tiny), ft(2.0**mant)

    def log_impl(u):
        sub = u < tiny  # a subnormal u is scaled into the normal range first
        v = u * scale if sub else u
        bits = _bits_from_float(v)
        k = (bits >> i_mant) - i_bias - (i_mant if sub else it(0))  # u = 2^k m with m in [1, 2)
        m = _float_from_bits(it((bits & mant_mask) | one_bits))
        big = m > sqrt2
        m = m * ft(0.5) if big else m  # now m in [sqrt(2)/2, sqrt(2)): |s| <= 0.172
        k = k + it(1) if big else k
        f = m - one  # exact (Sterbenz)
        s = f / (two + f)
        z = s * s
        p = coeffs[0]
        for c in coeffs[1:]:
            p = p * z + c
        kf = ft(k)
        y = kf * ln2_hi + (s * p + kf * ln2_lo)
        y = y if u < inf else u  # +inf and NaN pass through
        y = -inf if u == zero else y
        return nan if u < zero else y

    return njit(error_model="numpy")(log_impl), one


def _log_impl(u):
    log_impl, _ = _make_log(u)
    return lambda x: log_impl(x)


def _log1p_impl(e):
    log_impl, one = _make_log(e)
    inf = _layout(e)[0](np.inf)

    def impl(x):
        e = x
        u = one + e
        d = u - one
        y = log_impl(u) * (e / d) if d != one - one else e  # e / d undoes the rounding of 1 + e
        return inf if e == inf else y

    return impl


# --- the overloads: the polynomial, or NumPy's own function on the plain path (fast/jit.py) -----------------
#
# ``_poly_*`` always compile to the polynomial: the self-check below measures them; the public functions are
# the polynomial unless the check failed. The choice is made when Numba types a call, so it costs nothing per
# call.

def _poly_exp(x):
    return np.exp(x)


def _poly_expm1(x):
    return np.expm1(x)


def _poly_log(x):
    return np.log(x)


def _poly_log1p(x):
    return np.log1p(x)


def _register(public, poly, impl, plain):
    def poly_overload(x):
        return impl(x) if _layout(x) is not None else None

    def public_overload(x):
        if _layout(x) is None:
            return None
        return plain if plain_kernels() else impl(x)

    overload(poly, jit_options=NUMPY_ERRORS)(poly_overload)
    overload(public, jit_options=NUMPY_ERRORS)(public_overload)


_register(exp, _poly_exp, _exp_impl, lambda x: np.exp(x))
_register(expm1, _poly_expm1, _expm1_impl, lambda x: np.expm1(x))
_register(log, _poly_log, _log_impl, lambda x: np.log(x))
_register(log1p, _poly_log1p, _log1p_impl, lambda x: np.log1p(x))


# --- the self-check ------------------------------------------------------------------------------------------

# A few values across the range each function is used on in the models (gates, standard deviations, KL terms).
CHECK_VALUES = (-60.0, -9.5, -2.5, -0.7, -1e-3, 1e-5, 0.3, 1.0, 2.2, 10.0, 60.0)
CHECK_ULPS = 8  # far above the polynomials' error (tests/fast/test_vecmath.py), far below any real fault


@njit(error_model="numpy")
def _probe(a, out):
    """out[:, i] = the polynomials' exp of a[i] and log of |a[i]|. exp and log only: expm1 and log1p are built
    from the same two pieces (``_make_reduce``, ``_make_log``), and each function compiled adds to the check's
    cost on a first run. Not cached: compiled only when the check runs, once per cache key and machine."""
    for i in range(a.size):
        out[0, i] = _poly_exp(a[i])
        out[1, i] = _poly_log(abs(a[i]))


def self_check(references=(np.exp, np.log)):
    """Compile the polynomials and compare them with NumPy's functions (``references``: exp, log) on
    CHECK_VALUES in float32 and float64. Returns a list of problems (empty: all agree)."""
    problems = []
    for dtype in (np.float32, np.float64):
        a = np.array(CHECK_VALUES, dtype)
        out = np.empty((2, a.size), dtype)
        try:
            _probe(a, out)
        except Exception as error:  # a compile error is a failed check too
            return [f"vecmath: {type(error).__name__}: {error}"]
        for name, ref, arg, got in zip(("exp", "log"), references, (a, np.abs(a)), out):
            want = ref(arg.astype(np.float64))
            if not np.allclose(got, want, rtol=CHECK_ULPS * np.finfo(dtype).eps, atol=0):
                problems.append(f"vecmath.{name} differs from NumPy's in {np.dtype(dtype).name}")
    return problems
