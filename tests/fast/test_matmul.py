"""The row-split products equal NumPy's @ (the kernels run their chunks in parallel; the answer must not care)."""
import numba
import numpy as np
import pytest

from minivrnn.fast import matmul as mm
from minivrnn.fast.threads import n_chunks


@pytest.mark.parametrize("n_chunks", [1, 2, 3])
@pytest.mark.parametrize("N", [1, 5, 64])
def test_row_blocks_equal_one_product(rng, N, n_chunks):
    a, b = rng.normal(size=(N, 7)), rng.normal(size=(7, 4))
    out = np.empty((N, 4))
    mm._rows_kernel(a, b, out, min(n_chunks, N))
    np.testing.assert_allclose(out, a @ b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n_chunks", [1, 2, 3])
@pytest.mark.parametrize("N", [1, 5, 64])
def test_partial_sums_add_up_to_the_transposed_product(rng, N, n_chunks):
    a, b = rng.normal(size=(N, 7)), rng.normal(size=(N, 4))
    n_chunks = min(n_chunks, N)
    partial = np.empty((n_chunks, 7, 4))
    mm._tn_kernel(a, b, partial, n_chunks)
    np.testing.assert_allclose(partial.sum(axis=0), a.T @ b, rtol=1e-10, atol=1e-12)
    last = slice((n_chunks - 1) * N // n_chunks, N)  # chunk c holds rows c*N//n up to (c+1)*N//n
    np.testing.assert_allclose(partial[-1], a[last].T @ b[last], rtol=1e-10, atol=1e-12)


def test_big_products_split_over_the_threads_and_agree(rng, monkeypatch):
    monkeypatch.setattr(mm, "PARALLEL_MIN_WORK", 1)  # every product splits (with at least two threads)
    assert n_chunks(100, 10**9, mm.PARALLEL_MIN_WORK) == min(100, numba.get_num_threads())
    a, b, c = rng.normal(size=(50, 6)), rng.normal(size=(6, 3)), rng.normal(size=(50, 3))
    np.testing.assert_allclose(mm.matmul(a, b), a @ b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mm.matmul_tn(a, c), a.T @ c, rtol=1e-10, atol=1e-12)
    f32 = mm.matmul(a.astype(np.float32), b.astype(np.float32))
    assert f32.dtype == np.float32


@pytest.mark.parametrize("path", ["one call", "row blocks", "threads"])
def test_matmul_tn_writes_into_a_block_of_rows_of_a_bigger_array(rng, monkeypatch, path):
    # chain.py writes a weight gradient's rows for each of its inputs straight into the one gradient array.
    if path == "threads":
        monkeypatch.setattr(mm, "PARALLEL_MIN_WORK", 1)
    n = 5000 if path == "row blocks" else 50  # 8 by 30: under ROW_BLOCK_MAX_IO, in blocks of 1e6 // 240 rows
    a, b = rng.normal(size=(n, 8)), rng.normal(size=(n, 30))
    if path == "row blocks":
        assert mm._small_block_rows(n, 8 * 30) is not None
    grad = np.full((20, 30), np.nan)
    out = mm.matmul_tn(a, b, out=grad[5:13])
    np.testing.assert_allclose(grad[5:13], a.T @ b, rtol=1e-12, atol=1e-12)
    assert np.shares_memory(out, grad) and np.isnan(grad[:5]).all() and np.isnan(grad[13:]).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("N", [0, 1, 7, 800])
def test_sum_rows_is_the_sum_over_rows(rng, N, dtype):
    a = rng.normal(size=(N, 5)).astype(dtype)
    got = mm.sum_rows(a)
    assert got.dtype == dtype and got.shape == (5,)
    np.testing.assert_allclose(got, a.astype(np.float64).sum(axis=0), rtol=1e-12 if dtype == np.float64 else 1e-5,
                               atol=1e-12 if dtype == np.float64 else 1e-5)


def test_the_vector_of_ones_is_shared_and_read_only():
    # sum_rows and the Gaussian's row sums reuse one vector per length and dtype: no caller may change it
    v = mm.ones(6, np.dtype(np.float32))
    assert v is mm.ones(6, np.dtype(np.float32)) and v.dtype == np.float32 and (v == 1).all()
    assert mm.ones(6, np.dtype(np.float64)).dtype == np.float64
    with pytest.raises(ValueError):
        v[0] = 2


def test_small_products_stay_one_call():
    assert n_chunks(800, mm.PARALLEL_MIN_WORK - 1, mm.PARALLEL_MIN_WORK) == 1


def _blocks(tiles, K):
    """The column blocks (n, K, width) that ``tiles`` (n, m, depth, width) cut in depth: each block's first K rows."""
    return tiles.reshape(tiles.shape[0], -1, tiles.shape[3])[:, :K]


def _dot_blocks_in_both_dtypes(rng, a, W, tiles):
    """dot_blocks with ``tiles`` gives a @ W, in float64 and in float32."""
    out = np.full((a.shape[0], W.shape[1]), np.nan)  # every entry must be written
    mm.dot_blocks(a, tiles, out)
    np.testing.assert_allclose(out, a @ W, rtol=1e-12, atol=1e-12)
    out32 = np.full(out.shape, np.nan, np.float32)
    mm.dot_blocks(a.astype(np.float32), tiles.astype(np.float32), out32)
    np.testing.assert_allclose(out32, a @ W, rtol=1e-4, atol=1e-4 * np.sqrt(W.shape[0]))


@pytest.mark.parametrize("rows, K, N, depth", [(32, 128, 512, 128), (32, 384, 128, 128), (16, 128, 512, 128),
                                               (32, 512, 1536, 128), (32, 1536, 100, 128), (32, 600, 200, 128),
                                               (100, 512, 256, 128), (128, 512, 256, 64), (200, 512, 256, 64)])
def test_chain_weights_are_cut_into_tiles_that_make_up_the_whole(rng, rows, K, N, depth):
    # Blocks of 64 columns (the last zero-padded: 100 = 64 + 36), multiplied 128 rows deep, or less where B is
    # so large that rows * 128 * 64 would leave OpenBLAS's small-matrix path (1e6 multiply-adds).
    W = rng.normal(size=(K, N))
    tiles = mm.chain_operand(W, rows)
    n = -(-N // mm.TILE_WIDTH)
    assert tiles.shape == (n, -(-K // depth), depth, mm.TILE_WIDTH)  # the last tile's rows past K: never read
    assert rows * depth * mm.TILE_WIDTH <= mm.SMALL_GEMM_MNK
    blocks = _blocks(tiles, K)
    np.testing.assert_array_equal(np.concatenate(list(blocks), axis=1)[:, :N], W)
    np.testing.assert_array_equal(np.concatenate(list(blocks), axis=1)[:, N:], 0)
    _dot_blocks_in_both_dtypes(rng, rng.normal(size=(rows, K)), W, tiles)


@pytest.mark.parametrize("rows, K, N", [(16, 32, 128), (16, 96, 32), (32, 128, 64), (16, 128, 128),
                                        (500, 512, 512)])
def test_small_products_and_very_many_rows_keep_the_weight_whole(rng, rows, K, N):
    # Under 2^19 multiply-adds a tile's call costs more than it saves (the tiny model's products); within one
    # tile already (32 x 128 x 64); or 500 rows: even 500 x 32 x 64 tiles would exceed 1e6 multiply-adds.
    W = rng.normal(size=(K, N))
    tiles = mm.chain_operand(W, rows)
    assert tiles.shape == (1, 1, K, N)
    np.testing.assert_array_equal(tiles[0, 0], W)
    _dot_blocks_in_both_dtypes(rng, rng.normal(size=(rows, K)), W, tiles)


def test_a_weight_narrower_than_a_tile_is_one_block_cut_in_depth(rng):
    W = rng.normal(size=(1536, 40))
    tiles = mm.chain_operand(W, 32)
    assert tiles.shape == (1, 12, 128, 40)  # 12 tiles of 128 x 40, added up
    _dot_blocks_in_both_dtypes(rng, rng.normal(size=(32, 1536)), W, tiles)


@pytest.mark.parametrize("N", [1, 100, 800, 2001])
def test_small_weights_run_as_row_blocks_with_the_same_result(rng, N):
    # 32 x 96 = 3072 weight entries: under ROW_BLOCK_MAX_IO, so rows go in blocks of 1e6 // 3072 = 325.
    a, b, g = rng.normal(size=(N, 32)), rng.normal(size=(32, 96)), rng.normal(size=(N, 96))
    assert mm._small_block_rows(N, 32 * 96) == (325 if N > 325 else None)
    np.testing.assert_allclose(mm.matmul(a, b), a @ b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mm.matmul_tn(a, g), a.T @ g, rtol=1e-12, atol=1e-11)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    assert mm.matmul(a32, b32).dtype == np.float32


@pytest.mark.parametrize("rows, I, O", [(32, 1024, 512), (1, 512, 512), (64, 256, 1024)])
def test_skinny_products_turned_round_give_the_same_contiguous_result(rng, rows, I, O):
    # A few rows times a big weight (a generation step's products) runs as (b.T @ a.T).T.
    assert rows <= mm.SKINNY_MAX_ROWS and I * O >= mm.SKINNY_MIN_IO
    a, b = rng.normal(size=(rows, I)), rng.normal(size=(I, O))
    y = mm.matmul(a, b)
    assert y.flags.c_contiguous and y.shape == (rows, O)
    np.testing.assert_allclose(y, a @ b, rtol=1e-12, atol=1e-11)
    assert mm.matmul(a.astype(np.float32), b.astype(np.float32)).dtype == np.float32


def _pieces_cases(rng):
    A, B, C = rng.normal(size=(96, 128)), rng.normal(size=(96, 64)), rng.normal(size=(96, 100))
    gates = [rng.normal(size=(100, 100)) for _ in range(3)]
    return {
        "side by side, whole blocks then a ragged last": [[A, B, C]],
        "side by side, a ragged piece first (joined)": [[C, A]],
        "transposes one above another": [[g.T] for g in gates],
        "a grid": [[A[:3], B[:3, :10]], [A[3:8], B[3:8, :10]]],
    }


@pytest.mark.parametrize("case", ["side by side, whole blocks then a ragged last",
                                  "side by side, a ragged piece first (joined)", "transposes one above another",
                                  "a grid"])
def test_a_weight_in_pieces_makes_the_blocks_of_the_joined_weight(rng, case):
    # The chain keeps W_hcat = [W_enc0h | W_hr | W_hz | W_hn] and W_h.T = [W_hr.T; W_hz.T; W_hn.T] in pieces
    # (chain.py); copied into the blocks piece by piece, they must give the blocks of the joined weight.
    pieces = _pieces_cases(rng)[case]
    W = np.block(pieces)
    blocks = mm.column_blocks(pieces, 64)
    np.testing.assert_array_equal(blocks, mm.column_blocks(W, 64))
    np.testing.assert_array_equal(np.concatenate(list(blocks), axis=1)[:, :W.shape[1]], W)
    tiles = mm.chain_operand(pieces, 32)
    assert tiles.shape[0] == 1 or tiles.shape[3] == mm.TILE_WIDTH
    _dot_blocks_in_both_dtypes(rng, rng.normal(size=(32, W.shape[0])), W, tiles)


def test_small_weights_in_pieces_are_joined_into_one_block(rng):
    pieces = [[rng.normal(size=(16, 8)) for _ in range(3)]]
    tiles = mm.chain_operand(pieces, 16)
    assert tiles.shape == (1, 1, 16, 24) and tiles.flags.c_contiguous
    np.testing.assert_array_equal(tiles[0, 0], np.block(pieces))
    column = [[rng.normal(size=(8, 16)).T] for _ in range(3)]
    np.testing.assert_array_equal(mm.chain_operand(column, 16)[0, 0], np.block(column))


@pytest.mark.parametrize("K, N, width", [(96, 128, 64), (96, 100, 64), (5, 7, 3), (4, 2, 4)])
def test_column_blocks_of_a_transposed_view_are_its_columns(rng, K, N, width):
    # The backward loop cuts W.T (a view, not contiguous) into blocks: the same blocks as of its copy.
    WT = rng.normal(size=(N, K)).T  # (K, N), columns contiguous
    blocks = mm.column_blocks(WT, width)
    expected = mm.column_blocks(np.ascontiguousarray(WT), width)
    np.testing.assert_array_equal(blocks, expected)
    np.testing.assert_array_equal(np.concatenate(list(blocks), axis=1)[:, :N], WT)
    np.testing.assert_array_equal(np.concatenate(list(blocks), axis=1)[:, N:], 0)
