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
as they are, much faster than a packed product just above that size with its SkylakeX kernels (its Haswell
kernels have no such path and gain nothing, nor lose; measured: docs/performance.md, "Products over all T*B
rows"). Two kinds of product are cut to fit:
- inside the sequential chain, B rows (one per sequence) times a whole weight matrix at every time step:
  ``chain_operand`` cuts the weight once per training step into blocks of 64 columns, and ``dot_blocks``
  multiplies by them one tile at a time, 128 rows of a block deep, adding each tile's product into the
  output inside BLAS (blas.py). A tile (128 x 64) and its slice of the left operand (32 x 128) stay in
  the core's first-level cache, so tiles run faster than whole column blocks or the product turned round
  (out.T = W.T @ a.T) (measured: docs/performance.md, "The chain's products in tiles");
- over all T*B rows with a small weight (the tiny model's): blocks of rows, one small product each.
"""
from functools import lru_cache

import numpy as np
from numba import njit, prange

from .jit import KERNEL_OPTIONS, kernel
from .blas import gemm
from . import threads


# Multiply-adds (rows * I * O, a whole product) below which a product stays one BLAS call (threads.n_chunks).
# A second thread already pays for much smaller products, but the parallel kernels take seconds to compile:
# kept above the tiny model's largest product, a newcomer's first `--tiny` run never compiles them, while
# speech-sized products split (measured: docs/performance.md, "Products over all T*B rows").
PARALLEL_MIN_WORK = 8_000_000


# OpenBLAS (0.3.x) multiplies without packing when M * N * K is at most this.
SMALL_GEMM_MNK = 1_000_000

# A product whose weight side has at most this many entries (I * O) runs on one thread as blocks of rows under
# SMALL_GEMM_MNK, faster than one packed product at the tiny model's sizes (measured: docs/performance.md,
# "Products over all T*B rows"). With bigger weights the blocks get too thin to gain.
ROW_BLOCK_MAX_IO = 10_000


# A product with at most this many rows and a weight of at least this many entries (a generation step's: B
# rows by a whole weight) runs turned round, (b.T @ a.T).T, which NumPy's OpenBLAS does faster at these shapes;
# with a small weight it is slower, hence both thresholds (measured: docs/performance.md, "Products over all
# T*B rows").
SKINNY_MAX_ROWS = 64
SKINNY_MIN_IO = 262_144


def matmul(a, b):
    """a @ b for a (N, I) and b (I, O)."""
    if a.shape[0] <= SKINNY_MAX_ROWS and a.shape[1] * b.shape[1] >= SKINNY_MIN_IO:
        return np.ascontiguousarray((b.T @ a.T).T)
    n_chunks = threads.n_chunks(a.shape[0], a.shape[0] * a.shape[1] * b.shape[1], PARALLEL_MIN_WORK)
    rows = _small_block_rows(a.shape[0], a.shape[1] * b.shape[1])
    if n_chunks == 1 and rows is None:
        return a @ b
    out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
    if n_chunks == 1:
        _row_blocks_kernel(np.ascontiguousarray(a), np.ascontiguousarray(b), out, rows)
        return out
    _rows_kernel(np.ascontiguousarray(a), np.ascontiguousarray(b), out, n_chunks)
    return out


def matmul_tn(a, b, out=None):
    """a.T @ b for a (N, I) and b (N, O): the sum over the N rows of outer products, e.g. a weight gradient.
    ``out`` (I, O), if given, receives it (a block of rows of a bigger array, say) and is returned."""
    n_chunks = threads.n_chunks(a.shape[0], a.shape[0] * a.shape[1] * b.shape[1], PARALLEL_MIN_WORK)
    rows = _small_block_rows(a.shape[0], a.shape[1] * b.shape[1])
    if n_chunks == 1 and rows is None:
        return np.matmul(a.T, b, out=out)
    if out is None:
        out = np.empty((a.shape[1], b.shape[1]), np.result_type(a, b))
    if n_chunks == 1:
        _tn_row_blocks_kernel(np.ascontiguousarray(a), np.ascontiguousarray(b), out, rows)
        return out
    partial = np.empty((n_chunks, a.shape[1], b.shape[1]), np.result_type(a, b))  # (chunks, I, O)
    _tn_kernel(np.ascontiguousarray(a), np.ascontiguousarray(b), partial, n_chunks)
    out[:] = partial[0]
    for chunk in range(1, n_chunks):  # the serial reduction, always in the same order
        out += partial[chunk]
    return out


def sum_rows(a):
    """a.sum(axis=0) for a (N, O): the sum over the N rows, e.g. a bias gradient, as the product ones (N,) @ a
    (BLAS's matrix-vector product, faster than a compiled pass adding row after row and much faster than
    NumPy's reduction; measured: docs/performance.md, "Products over all T*B rows")."""
    return ones(a.shape[0], a.dtype) @ a


@lru_cache(maxsize=64)
def ones(n, dtype):
    """A read-only vector of ``n`` ones, made once per length and dtype: the sums over rows (``sum_rows``) and
    along rows (``terms @ ones``) are products with it, and a training step asks for the same few lengths."""
    v = np.ones(n, dtype)
    v.flags.writeable = False
    return v


# The chain's tiles: blocks of TILE_WIDTH columns, multiplied TILE_DEPTHS[0] rows deep (fewer where B is so large
# that a tile product would leave the small-matrix path). Tiles of 64 x 128 beat the former column blocks and
# the product turned round at every chain shape measured, and the other tile shapes tried (32 or 64 wide by
# 256 deep) did no better (measured: docs/performance.md, "The chain's products in tiles").
TILE_WIDTH = 64
TILE_DEPTHS = (128, 64, 32)

# A product with fewer multiply-adds than this (rows * K * N) stays one call: tiles cost a call each, which the
# tiny model's products cannot repay; from about here they gain (measured: docs/performance.md, "The chain's
# products in tiles").
TILED_MIN_WORK = 2**19


def chain_operand(W, rows, empty=np.empty):
    """W (K, N) in the form ``dot_blocks`` multiplies ``rows``-row left operands by: tiles (n, m, depth, width),
    W's columns in n blocks of ``width`` (the last zero-padded: ``column_blocks``), each block cut into m tiles of
    ``depth`` of its rows (the last tile's rows past K are never read). A product too small to gain, or with rows
    so many that no tile fits the small-matrix path, is W itself as one tile: W[None, None] (1, 1, K, N). Its
    shape says how it is cut, so that the chain's records hold each operand as one array.

    W may also be given in pieces, the nested list ``np.block`` would join (``[[A, B]]`` for [A | B],
    ``[[A], [B]]`` for A above B): the blocks are then copied from the pieces, without joining them first.
    ``empty(shape, dtype)`` makes the array of tiles (the chain passes one that reuses an array on 2 MiB
    pages: memory.py)."""
    pieces = _as_pieces(W)
    K, N = _joined_shape(pieces)
    depths = [d for d in TILE_DEPTHS if rows * d * TILE_WIDTH <= SMALL_GEMM_MNK]
    if rows * K * N < TILED_MIN_WORK or not depths or (N <= TILE_WIDTH and K <= depths[0]):
        return np.ascontiguousarray(_joined(pieces))[None, None]
    depth, width = depths[0], min(TILE_WIDTH, N)
    tiles = empty((_ceil_div(N, width), _ceil_div(K, depth), depth, width), pieces[0][0].dtype)
    # the blocks (n, K, width) are the tiles' first K rows of each block, rows past K left as they are
    column_blocks(pieces, width, lambda shape, dtype: tiles.reshape(shape[0], -1, width)[:, :K])
    return tiles


def column_blocks(W, width, empty=np.empty):
    """W (K, N), or its pieces as in ``chain_operand``, as column blocks (n, K, width), n = ceil(N / width), the
    last zero-padded. Each piece is copied straight into its blocks when its columns start on a block boundary
    (so each piece but a row's last must be a whole number of blocks wide); otherwise the pieces are joined."""
    pieces = _as_pieces(W)
    if any(p.shape[1] % width for row in pieces for p in row[:-1]):
        pieces = [[_joined(pieces)]]
    K, N = _joined_shape(pieces)
    blocks = empty((_ceil_div(N, width), K, width), pieces[0][0].dtype)
    k0 = 0
    for row in pieces:  # a row of pieces fills rows k0:k1 of every block, each piece its own blocks
        k1, i0 = k0 + row[0].shape[0], 0
        for piece in row:
            n = _ceil_div(piece.shape[1], width)
            _copy_column_blocks(piece, blocks[i0:i0 + n, k0:k1])
            i0 += n
        k0 = k1
    return blocks


def _copy_column_blocks(W, blocks):
    """blocks (n, K, width) = W (K, N)'s columns, the last block zero-padded."""
    K, N = W.shape
    width = blocks.shape[2]
    full = N // width
    # the whole blocks in one copy: W's columns (K, full, width) as (full, K, width), a view even of W.T
    blocks[:full] = W[:, :full * width].reshape(K, full, width).transpose(1, 0, 2)
    if full < blocks.shape[0]:
        blocks[full, :, :N - full * width] = W[:, full * width:]
        blocks[full, :, N - full * width:] = 0


def _as_pieces(W):
    """A weight or the nested list of its pieces, as the nested list (rows of pieces)."""
    return [[W]] if isinstance(W, np.ndarray) else [list(row) for row in W]


def _joined_shape(pieces):
    """The shape (K, N) of np.block(pieces)."""
    K = N = 0
    for row in pieces:
        K += row[0].shape[0]
    for piece in pieces[0]:
        N += piece.shape[1]
    return K, N


def _joined(pieces):
    """np.block(pieces): a copy only when there is more than one piece (and np.concatenate, with far less
    overhead than np.block, for a single row or a single column of pieces)."""
    if len(pieces) == 1:
        return pieces[0][0] if len(pieces[0]) == 1 else np.concatenate(pieces[0], axis=1)
    if all(len(row) == 1 for row in pieces):
        return np.concatenate([row[0] for row in pieces], axis=0)
    return np.block(pieces)


def _ceil_div(a, b):
    return -(-a // b)


def _small_block_rows(n_rows, weight_size):
    """Rows per block for the small-matrix path, or None when the product should stay one BLAS call."""
    if weight_size > ROW_BLOCK_MAX_IO:
        return None
    rows = SMALL_GEMM_MNK // weight_size
    return rows if rows < n_rows else None


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
def dot_blocks(a, tiles, out):
    """out = a @ W for W given as ``tiles = chain_operand(W, rows)``; a (rows, K), out (rows, N): for each block
    of columns, the sum over its tiles of a[:, k0:k1] @ tile, added up inside BLAS (the padding is never
    multiplied)."""
    K, depth, width, N = a.shape[1], tiles.shape[2], tiles.shape[3], out.shape[1]
    for i in range(tiles.shape[0]):
        j0 = i * width
        j1 = min(j0 + width, N)
        for k in range(tiles.shape[1]):  # (K = 0: one empty product, which sets out to 0)
            k0 = k * depth
            k1 = min(k0 + depth, K)
            gemm(a[:, k0:k1], tiles[i, k, :k1 - k0, :j1 - j0], out[:, j0:j1], k > 0)


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
