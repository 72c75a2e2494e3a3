"""``gemm(a, b, out, accumulate)``: out = a @ b, or out += a @ b, straight through BLAS's sgemm/dgemm.

Inside a kernel ``np.dot(a, b, out)`` can only overwrite ``out``. The chain's products are cut into tiles
(matmul.py, ``chain_operand``), each a sum over slices of the inner dimension; ``accumulate=True`` adds
each slice's product into ``out`` inside BLAS itself (its beta = 1), with no extra pass over memory. It calls
the same function ``np.dot`` does in compiled code, Numba's ``numba_xxgemm``, which finds SciPy's BLAS.

Each of ``a`` (M, K), ``b`` (K, N) and ``out`` (M, N) may be a view with any row stride, but its rows must be
contiguous (unit stride along the last axis), as every row view of a C-contiguous array is. BLAS works in
column-major order, where such an array is its own transpose: so the call computes out.T = b.T @ a.T.
Called from Python (or with NUMBA_DISABLE_JIT=1), ``gemm`` is NumPy's ``@``.

The hand-written signature is not checked by anything but use: so the first time Numba compiles a call to
``gemm``, the bridge checks itself against np.dot on a few small products (``self_check``, run through
fast/jit.py's ``plain_kernels``). If it disagrees, or with MINIVRNN_FORCE_PLAIN_KERNELS=1, ``gemm`` compiles to
Numba's own np.dot instead (on contiguous copies, then set or added: slower, one warning).
"""
import numpy as np
from numba import njit, types
from numba.extending import overload

from .jit import KERNEL_OPTIONS, plain_kernels, scalar_helper


def gemm(a, b, out, accumulate):
    """out = a @ b (accumulate False) or out += a @ b (accumulate True); the Python version."""
    _check_operands(a, b, out)
    if accumulate:
        out += a @ b
    else:
        out[...] = a @ b


@scalar_helper
def _check_operands(a, b, out):
    """ValueError unless a (M, K) @ b (K, N) fits out (M, N) and every operand's rows are contiguous."""
    M, K = a.shape
    N = b.shape[1]
    if b.shape[0] != K or out.shape[0] != M or out.shape[1] != N:
        raise ValueError("gemm: shapes do not match")
    size = a.itemsize
    if (K > 1 and a.strides[1] != size) or (N > 1 and (b.strides[1] != size or out.strides[1] != size)):
        raise ValueError("gemm: every operand's rows must be contiguous")


# BLAS's alpha and beta are passed by pointer: [alpha, beta to overwrite, beta to accumulate].
_SCALARS = {np.float32: np.array([1.0, 0.0, 1.0], np.float32), np.float64: np.array([1.0, 0.0, 1.0])}
_KIND = {np.float32: ord("s"), np.float64: ord("d")}  # Numba's code for sgemm, dgemm
_NO_TRANSPOSE = ord("n")


def _xxgemm(dtype):
    """Numba's BLAS bridge, as an external function for this float type."""
    ptr = types.CPointer(dtype)
    # the arguments: kind, trans a, trans b, m, n, k; then as commented below
    sig = types.intc(types.char, types.char, types.char, types.intp, types.intp, types.intp,
                     ptr, ptr, types.intp, ptr, types.intp,  # alpha, A, lda, B, ldb
                     ptr, ptr, types.intp)  # beta, C, ldc
    return types.ExternalFunction("numba_xxgemm", sig)


def _bridge_gemm(a, b, out, accumulate):
    """``gemm`` that always compiles to the BLAS bridge: what ``self_check`` measures."""
    gemm(a, b, out, accumulate)


def _typed(a, b, out):
    """True if gemm has an implementation for these Numba types (2-d arrays of one float type)."""
    arrays = (a, b, out)
    if not all(isinstance(x, types.Array) and x.ndim == 2 for x in arrays):
        return False
    return a.dtype == b.dtype == out.dtype and a.dtype in (types.float32, types.float64)


@overload(gemm, jit_options=KERNEL_OPTIONS)
def _gemm_overload(a, b, out, accumulate):
    if not _typed(a, b, out):
        return None
    return _plain_impl if plain_kernels() else _bridge_impl(a)


# (not cached, and without the operand check, a cached helper: the probe below must not read the kernel cache,
# whose lookup is what starts the check: fast/jit.py)
@overload(_bridge_gemm, jit_options={"error_model": "numpy"})
def _bridge_gemm_overload(a, b, out, accumulate):
    return _bridge_impl(a, check=False) if _typed(a, b, out) else None


def _plain_impl(a, b, out, accumulate):
    """The plain path (fast/jit.py): Numba's own np.dot, on contiguous copies (Numba's np.dot needs them)."""
    _check_operands(a, b, out)
    M, K = a.shape
    N = b.shape[1]
    if M == 0 or N == 0:
        return
    if K == 0:  # an empty sum
        if not accumulate:
            out[:] = 0
        return
    product = np.dot(np.ascontiguousarray(a), np.ascontiguousarray(b))
    if accumulate:
        out += product
    else:
        out[:] = product


def _bridge_impl(a, check=True):
    import scipy.linalg.cython_blas  # noqa: F401  (where numba_xxgemm finds sgemm and dgemm, as for np.dot)

    dtype = np.float32 if a.dtype == types.float32 else np.float64
    xxgemm, kind, scalars = _xxgemm(a.dtype), _KIND[dtype], _SCALARS[dtype]
    n = _NO_TRANSPOSE

    def impl(a, b, out, accumulate):
        if check:
            _check_operands(a, b, out)
        M, K = a.shape
        N, size = b.shape[1], a.itemsize
        if M == 0 or N == 0:
            return
        if K == 0:  # an empty sum
            if not accumulate:
                out[:] = 0
            return
        beta = scalars[2:] if accumulate else scalars[1:]
        # leading dimensions: the row strides, at least the row length (BLAS checks it)
        lda, ldb, ldc = max(a.strides[0] // size, K), max(b.strides[0] // size, N), max(out.strides[0] // size, N)
        status = xxgemm(kind, n, n, N, M, K, scalars.ctypes, b.ctypes, ldb, a.ctypes, lda, beta.ctypes,
                        out.ctypes, ldc)
        if status != 0:
            raise RuntimeError("gemm: no BLAS found (SciPy's scipy.linalg.cython_blas)")

    return impl


# --- the self-check ------------------------------------------------------------------------------------------

@njit
def _probe(a, b, out, accumulate):
    """The bridge on the views it is given (not cached: compiled only when the check runs, once per key and
    machine)."""
    _bridge_gemm(a, b, out, accumulate)


def self_check(dot=np.dot):
    """Compile the bridge and compare its products with ``dot``'s (NumPy's) on small row views, setting and
    accumulating, in float32 and float64. Returns a list of problems (empty: all agree)."""
    rng = np.random.default_rng(0)
    problems = []
    for dtype, rtol in ((np.float32, 1e-4), (np.float64, 1e-12)):
        big_a, big_b = rng.normal(size=(5, 9)).astype(dtype), rng.normal(size=(9, 8)).astype(dtype)
        a, b = big_a[:, 2:8], big_b[2:8, 1:4]  # views with row strides other than their widths
        for accumulate in (False, True):
            big_out = rng.normal(size=(5, 7)).astype(dtype)
            out = big_out[:, 1:4]
            want = (out.astype(np.float64) if accumulate else 0) + dot(a.astype(np.float64), b.astype(np.float64))
            try:
                _probe(a, b, out, accumulate)
            except Exception as error:  # a compile error or no BLAS is a failed check too
                return [f"blas.gemm: {type(error).__name__}: {error}"]
            if not np.allclose(out, want, rtol=rtol, atol=rtol):
                problems.append(f"blas.gemm differs from np.dot in {np.dtype(dtype).name}"
                                f"{' (accumulating)' if accumulate else ''}")
    return problems
