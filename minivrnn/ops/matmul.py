"""Matrix products over all T*B rows, split across Numba's threads when they are big enough to pay.

Outside the sequential chain, every product of a training step has one row per frame (N = T*B rows), and
rows are independent. With more than one thread, ``matmul`` (a @ b) gives each thread a contiguous block of
rows and one BLAS call on it; ``matmul_tn`` (a.T @ b, a weight gradient: a sum over the rows) gives each
thread its own partial sum, and the partial sums are added serially afterwards (no shared accumulator).
With one thread, or a product too small to pay for a second thread, both are NumPy's ``@`` - except those
with a small weight side, which run as blocks of rows (below). ``sum_rows`` is a bias gradient's sum over
the rows.

OpenBLAS copies ("packs") both operands into its own layout on every call, which for a skinny product
costs as much as the arithmetic; but at M*N*K <= 1e6 it takes a small-matrix path that reads the operands
as they are (measured with its SkylakeX kernels: 150-210 GFLOP/s there against 80-105 just above; its
Haswell kernels have no such path and gain nothing, nor lose). Two kinds of product are cut to fit:
- inside the sequential chain, B rows (one per sequence) times a whole weight matrix at every time step:
  ``column_blocks`` cuts the weight once per training step into column blocks, and ``dot_blocks``
  multiplies by them, one small product per block (32 or 64 columns wide where they fit: measured, 15-60 %
  faster than widths in between). A weight so deep that its blocks could be no wider than 16 does better the
  other way round, out.T = W.T @ a.T, one product whose left operand is the weight itself (measured at 32 rows
  by 1536 x 512: about 5 % faster), so ``chain_operand`` picks, by the product's shape, which form the loop gets;
- over all T*B rows with a small weight (the tiny model's): blocks of rows, one small product each.
"""
import numba
import numpy as np
from numba import njit, prange

from ._jit import KERNEL_OPTIONS, kernel


# Multiply-adds below which a product stays one BLAS call. A second thread already pays from ~1e6 (800 rows
# by 64 by 32), but the parallel kernels take seconds to compile: kept above the tiny model's largest product
# (5e6), a newcomer's first `--tiny` run never compiles them; speech-sized products (2e7 and up) split.
PARALLEL_MIN_WORK = 8_000_000


# OpenBLAS (0.3.x) multiplies without packing when M * N * K is at most this.
SMALL_GEMM_MNK = 1_000_000

# A product whose weight side has at most this many entries (I * O) runs on one thread as blocks of rows under
# SMALL_GEMM_MNK: measured 1.2-1.5x faster at the tiny model's sizes (800 rows by 32 by 96, say). With bigger
# weights the blocks get too thin to gain.
ROW_BLOCK_MAX_IO = 10_000


# A product with at most this many rows and a weight of at least this many entries (a generation step's: B
# rows by a whole weight) runs turned round, (b.T @ a.T).T, which NumPy's OpenBLAS does faster at these shapes:
# measured on one thread, GFLOP/s, 32 x 1024 x 1536 114 against 76, 32 x 512 x 1536 110 / 95, 32 x 1024 x 512
# 115 / 113; but with a small weight slower (16 x 64 x 96: 75 / 112).
SKINNY_MAX_ROWS = 64
SKINNY_MIN_IO = 262_144


def matmul(a, b):
    """a @ b for a (N, I) and b (I, O)."""
    if a.shape[0] <= SKINNY_MAX_ROWS and a.shape[1] * b.shape[1] >= SKINNY_MIN_IO:
        return np.ascontiguousarray((b.T @ a.T).T)
    n_chunks = _n_chunks(a.shape[0], a.shape[0] * a.shape[1] * b.shape[1])
    rows = _small_block_rows(a.shape[0], a.shape[1] * b.shape[1])
    if n_chunks == 1 and rows is None:
        return a @ b
    out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
    if n_chunks == 1:
        _row_blocks_kernel(np.ascontiguousarray(a), np.ascontiguousarray(b), out, rows)
        return out
    _rows_kernel(np.ascontiguousarray(a), np.ascontiguousarray(b), out, n_chunks)
    return out


def matmul_tn(a, b):
    """a.T @ b for a (N, I) and b (N, O): the sum over the N rows of outer products, e.g. a weight gradient."""
    n_chunks = _n_chunks(a.shape[0], a.shape[0] * a.shape[1] * b.shape[1])
    rows = _small_block_rows(a.shape[0], a.shape[1] * b.shape[1])
    if n_chunks == 1 and rows is None:
        return a.T @ b
    if n_chunks == 1:
        out = np.empty((a.shape[1], b.shape[1]), np.result_type(a, b))
        _tn_row_blocks_kernel(np.ascontiguousarray(a), np.ascontiguousarray(b), out, rows)
        return out
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


# A chain product (rows, K) @ (K, N) with rows * K >= TRANSPOSED_MIN_ROWS_K and TRANSPOSED_MIN_N <= N <= K runs
# transposed (``chain_operand``): that is, a deep weight whose column blocks could be no wider than 16. Measured
# on one thread, GFLOP/s transposed against in column blocks: 32 x 1536 x 512 122 / 116 (blocks of 16); but
# 32 x 512 x 512 129 / 153 and 16 x 1536 x 512 91 / 105 (blocks of 32), 32 x 128 x 512 99 / 151, 32 x 1536 x
# 128 121 / 127, 8 x 1536 x 512 55 / 67; and with N > K (32 x 512 x 1536, 2048) no faster inside the chain. At
# the paper-ish size this is the backward loop's products with the recurrence's two sides, W_h.T and W_i.T.
TRANSPOSED_MIN_ROWS_K = SMALL_GEMM_MNK // 32 + 1
TRANSPOSED_MIN_N = 256


def chain_operand(W, rows, WT=None):
    """W (K, N) in the form ``dot_blocks`` multiplies ``rows``-row left operands by fastest: a tuple (array,
    transposed). Transposed, the array is W.T (1, N, K) (pass WT = W.T, C-contiguous, if it exists already);
    otherwise it is ``column_blocks(W, rows)``."""
    K, N = W.shape
    if rows * K >= TRANSPOSED_MIN_ROWS_K and TRANSPOSED_MIN_N <= N <= K:
        return (np.ascontiguousarray(W.T) if WT is None else WT)[None], True
    return column_blocks(W, rows), False


# The column widths a block may have, widest first. Measured on one thread at 16 and 32 rows, GFLOP/s: a width
# that is a multiple of 32 runs 15-60 % faster than one in between (32 x 512 x 2048 in blocks of 32: 131, of 56:
# 106; 32 x 512 x 1536: 134 / 105; 32 x 512 x 128: 187 / 117 in blocks of 48); 16 is the narrowest that still
# gains over the whole weight.
BLOCK_WIDTHS = (64, 32, 16)


def column_blocks(W, rows):
    """W (K, N) as zero-padded column blocks (n, K, width) for ``dot_blocks`` with ``rows``-row left operands:
    width the widest of BLOCK_WIDTHS with rows * K * width <= SMALL_GEMM_MNK. A W small enough already is one
    block, (1, K, N), and so is one with K so large that no width fits."""
    K, N = W.shape
    fitting = [width for width in BLOCK_WIDTHS if rows * K * width <= SMALL_GEMM_MNK]
    if rows * K * N <= SMALL_GEMM_MNK or not fitting:
        return np.ascontiguousarray(W)[None]
    width = fitting[0]
    n = _ceil_div(N, width)
    blocks = np.zeros((n, K, width), W.dtype)
    for i in range(n):
        part = W[:, i * width:(i + 1) * width]
        blocks[i, :, :part.shape[1]] = part
    return blocks


def _ceil_div(a, b):
    return -(-a // b)


def _small_block_rows(n_rows, weight_size):
    """Rows per block for the small-matrix path, or None when the product should stay one BLAS call."""
    if weight_size > ROW_BLOCK_MAX_IO:
        return None
    rows = SMALL_GEMM_MNK // weight_size
    return rows if rows < n_rows else None


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


@kernel
def dot_blocks(a, operand, out):
    """out = a @ W for W given as ``chain_operand(W, rows)``; a (rows, K), out (rows, N). Transposed, one product
    out.T = W.T @ a.T; otherwise one product per column block (a single block is W itself, never padded)."""
    blocks, transposed = operand
    if transposed:
        out_t = np.empty((out.shape[1], out.shape[0]), out.dtype)
        np.dot(blocks[0], a.T, out_t)
        out[:] = out_t.T
        return
    N, width = out.shape[1], blocks.shape[2]
    if blocks.shape[0] == 1:
        np.dot(a, blocks[0], out)
        return
    part = np.empty((a.shape[0], width), out.dtype)
    for i in range(blocks.shape[0]):
        np.dot(a, blocks[i], part)
        j0 = i * width
        j1 = min(j0 + width, N)
        out[:, j0:j1] = part[:, :j1 - j0]


@kernel
def _row_blocks_kernel(a, b, out, rows):
    """out = a @ b, ``rows`` rows of a at a time."""
    for r0 in range(0, a.shape[0], rows):
        r1 = min(r0 + rows, a.shape[0])
        np.dot(a[r0:r1], b, out[r0:r1])


@kernel
def _tn_row_blocks_kernel(a, b, out, rows):
    """out = a.T @ b, summed over blocks of ``rows`` rows in order."""
    part = np.empty_like(out)
    out[:] = 0
    for r0 in range(0, a.shape[0], rows):
        r1 = min(r0 + rows, a.shape[0])
        np.dot(a[r0:r1].T, b[r0:r1], part)
        out += part
