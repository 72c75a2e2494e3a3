"""The row-split products equal NumPy's @ (the kernels run their chunks in parallel; the answer must not care)."""
import numba
import numpy as np
import pytest

from minivrnn.ops import matmul as mm


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
    assert mm._n_chunks(100, 10**9) == min(100, numba.get_num_threads())
    a, b, c = rng.normal(size=(50, 6)), rng.normal(size=(6, 3)), rng.normal(size=(50, 3))
    np.testing.assert_allclose(mm.matmul(a, b), a @ b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mm.matmul_tn(a, c), a.T @ c, rtol=1e-10, atol=1e-12)
    f32 = mm.matmul(a.astype(np.float32), b.astype(np.float32))
    assert f32.dtype == np.float32


def test_small_products_stay_one_call():
    assert mm._n_chunks(800, mm.PARALLEL_MIN_WORK - 1) == 1


@pytest.mark.parametrize("rows, K, N", [(32, 128, 512), (32, 384, 128), (16, 128, 512), (32, 512, 1536)])
def test_column_blocks_are_small_products_that_make_up_the_whole(rng, rows, K, N):
    W = rng.normal(size=(K, N))
    blocks = mm.column_blocks(W, rows)
    n, _, width = blocks.shape
    assert n > 1 and rows * K * width <= mm.SMALL_GEMM_MNK  # under OpenBLAS's limit ...
    wider = [w for w in mm.BLOCK_WIDTHS if w > width]  # ... at the widest of the fast widths that fits it
    assert width in mm.BLOCK_WIDTHS and all(rows * K * w > mm.SMALL_GEMM_MNK for w in wider)
    assert n * width >= N > (n - 1) * width  # as few blocks as that allows, zero-padded at the end
    np.testing.assert_array_equal(np.concatenate(list(blocks), axis=1)[:, :N], W)
    np.testing.assert_array_equal(np.concatenate(list(blocks), axis=1)[:, N:], 0)
    a = rng.normal(size=(rows, K))
    out = np.empty((rows, N))
    mm.dot_blocks(a, (blocks, False), out)
    np.testing.assert_allclose(out, a @ W, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rows, K, N, width", [(32, 512, 2048, 32), (32, 512, 128, 32), (16, 512, 1536, 64),
                                               (32, 128, 384, 64), (32, 1536, 512, 16), (32, 600, 100, 32)])
def test_column_blocks_are_32_or_64_wide_where_they_fit(rows, K, N, width):
    # 1e6 // (32 * 512) = 61 columns would fit, but 32-wide blocks are the faster (measured: 131 against 106
    # GFLOP/s at 32 x 512 x 2048); at 16 rows 64 fit. The last block is zero-padded: 100 = 3 x 32 + 4.
    assert mm.column_blocks(np.ones((K, N)), rows).shape == (-(-N // width), K, width)


@pytest.mark.parametrize("rows, K, N", [(32, 128, 64), (16, 32, 128), (32, 4096, 512)])
def test_small_or_very_deep_weights_stay_one_block(rng, rows, K, N):
    # Already under the limit, or K so large that blocks would be under 16 columns wide.
    W = rng.normal(size=(K, N))
    blocks = mm.column_blocks(W, rows)
    assert blocks.shape == (1, K, N)
    a, out = rng.normal(size=(rows, K)), np.empty((rows, N))
    mm.dot_blocks(a, (blocks, False), out)
    np.testing.assert_allclose(out, a @ W, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("N", [1, 100, 800, 2001])
def test_small_weights_run_as_row_blocks_with_the_same_result(rng, N):
    # 32 x 96 = 3072 weight entries: under ROW_BLOCK_MAX_IO, so rows go in blocks of 1e6 // 3072 = 325.
    a, b, g = rng.normal(size=(N, 32)), rng.normal(size=(32, 96)), rng.normal(size=(N, 96))
    assert mm._small_block_rows(N, 32 * 96) == (325 if N > 325 else None)
    np.testing.assert_allclose(mm.matmul(a, b), a @ b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mm.matmul_tn(a, g), a.T @ g, rtol=1e-12, atol=1e-11)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    assert mm.matmul(a32, b32).dtype == np.float32


@pytest.mark.parametrize("rows, K, N, transposed", [(32, 1536, 512, True), (32, 1024, 256, True),
                                                    (16, 1024, 256, False), (32, 512, 512, False),
                                                    (16, 1536, 512, False), (32, 512, 1536, False),
                                                    (32, 128, 512, False), (32, 1536, 128, False),
                                                    (8, 1536, 512, False)])
def test_deep_chain_weights_are_multiplied_transposed(rng, rows, K, N, transposed):
    # Where column blocks could be no wider than 16 (rows * K * 32 > 1e6) and 256 <= N <= K, out.T = W.T @ a.T
    # (the weight as the left side) is the faster form.
    W = rng.normal(size=(K, N))
    operand = mm.chain_operand(W, rows)
    assert operand[1] == transposed
    if transposed:
        assert operand[0].shape == (1, N, K) and operand[0].flags.c_contiguous
        np.testing.assert_array_equal(operand[0][0], W.T)
        WT = np.ascontiguousarray(W.T)
        assert mm.chain_operand(W, rows, WT=WT)[0].base is WT  # a transpose that exists is not copied again
    else:
        np.testing.assert_array_equal(operand[0], mm.column_blocks(W, rows))
    a, out = rng.normal(size=(rows, K)), np.empty((rows, N))
    mm.dot_blocks(a, operand, out)
    np.testing.assert_allclose(out, a @ W, rtol=1e-12, atol=1e-12)
    a32, out32 = a.astype(np.float32), np.empty((rows, N), np.float32)
    mm.dot_blocks(a32, (operand[0].astype(np.float32), operand[1]), out32)
    np.testing.assert_allclose(out32, a @ W, rtol=1e-4, atol=1e-3 * np.sqrt(K))


@pytest.mark.parametrize("rows, I, O", [(32, 1024, 512), (1, 512, 512), (64, 256, 1024)])
def test_skinny_products_turned_round_give_the_same_contiguous_result(rng, rows, I, O):
    # A few rows times a big weight (a generation step's products) runs as (b.T @ a.T).T.
    assert rows <= mm.SKINNY_MAX_ROWS and I * O >= mm.SKINNY_MIN_IO
    a, b = rng.normal(size=(rows, I)), rng.normal(size=(I, O))
    y = mm.matmul(a, b)
    assert y.flags.c_contiguous and y.shape == (rows, O)
    np.testing.assert_allclose(y, a @ b, rtol=1e-12, atol=1e-11)
    assert mm.matmul(a.astype(np.float32), b.astype(np.float32)).dtype == np.float32
