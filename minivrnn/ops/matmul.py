"""Matrix products over all T*B rows, split across Numba's threads when they are big enough to pay.

Outside the sequential chain, every product of a training step has one row per frame (N = T*B rows), and
rows are independent. With more than one thread, ``matmul`` (a @ b) gives each thread a contiguous block of
rows and one BLAS call on it; ``matmul_tn`` (a.T @ b, a weight gradient: a sum over the rows) gives each
thread its own partial sum, and the partial sums are added serially afterwards (no shared accumulator).
With one thread, or a product too small to pay for a second thread, both are NumPy's ``@``. ``sum_rows``
is the bias gradient's sum over the rows.
"""
import numba
import numpy as np
from numba import njit, prange

from ._jit import KERNEL_OPTIONS, kernel


# Multiply-adds below which a product stays one BLAS call. A second thread already pays from ~1e6 (800 rows
# by 64 by 32), but the parallel kernels take seconds to compile: kept above the tiny model's largest product
# (5e6), a newcomer's first `--tiny` run never compiles them; speech-sized products (2e7 and up) split.
PARALLEL_MIN_WORK = 8_000_000


def matmul(a, b):
    """a @ b for a (N, I) and b (I, O)."""
    n_chunks = _n_chunks(a.shape[0], a.shape[0] * a.shape[1] * b.shape[1])
    if n_chunks == 1:
        return a @ b
    out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
    _rows_kernel(np.ascontiguousarray(a), np.ascontiguousarray(b), out, n_chunks)
    return out


def matmul_tn(a, b):
    """a.T @ b for a (N, I) and b (N, O): the sum over the N rows of outer products, e.g. a weight gradient."""
    n_chunks = _n_chunks(a.shape[0], a.shape[0] * a.shape[1] * b.shape[1])
    if n_chunks == 1:
        return a.T @ b
    partial = np.empty((n_chunks, a.shape[1], b.shape[1]), np.result_type(a, b))  # (chunks, I, O)
    _tn_kernel(np.ascontiguousarray(a), np.ascontiguousarray(b), partial, n_chunks)
    total = partial[0]
    for chunk in range(1, n_chunks):  # the serial reduction, always in the same order
        total += partial[chunk]
    return total


def sum_rows(a):
    """a.sum(axis=0) for a (N, O): the sum over the N rows, e.g. a bias gradient (one vectorised pass, added
    row after row in order, as NumPy does along axis 0; ~5x faster than NumPy's reduction at these sizes)."""
    out = np.zeros(a.shape[1], a.dtype)
    _sum_rows_kernel(np.ascontiguousarray(a), out)
    return out


def _n_chunks(rows, work):
    """One block of rows per thread when the product is big enough, else one block."""
    if work < PARALLEL_MIN_WORK:
        return 1
    return max(1, min(rows, numba.get_num_threads()))


@njit(parallel=True, **KERNEL_OPTIONS)
def _rows_kernel(a, b, out, n_chunks):
    """out[rows of chunk c] = a[rows of chunk c] @ b, the chunks in parallel."""
    N = a.shape[0]
    for chunk in prange(n_chunks):
        r0, r1 = chunk * N // n_chunks, (chunk + 1) * N // n_chunks
        np.dot(a[r0:r1], b, out[r0:r1])


@njit(parallel=True, **KERNEL_OPTIONS)
def _tn_kernel(a, b, partial, n_chunks):
    """partial[c] = a[rows of chunk c].T @ b[rows of chunk c], the chunks in parallel."""
    N = a.shape[0]
    for chunk in prange(n_chunks):
        r0, r1 = chunk * N // n_chunks, (chunk + 1) * N // n_chunks
        np.dot(a[r0:r1].T, b[r0:r1], partial[chunk])


@kernel
def _sum_rows_kernel(a, out):
    """out += every row of a (N, O), in order."""
    for n in range(a.shape[0]):
        row = a[n]
        for j in range(a.shape[1]):
            out[j] += row[j]
