"""Threads: Numba parallelises the batch (chain.py), so BLAS itself should stay on one thread; and how many
blocks a parallel job is split into (``n_chunks``).

Two thread pools on two cores fight: OpenBLAS's threads spin while Numba's work, and a small matrix product
split over threads is slower than on one. Our commands (train, evaluate, bench) therefore run inside
``single_threaded_blas()``; library calls leave the user's BLAS settings alone.
"""
from contextlib import contextmanager

import numba
from threadpoolctl import threadpool_limits


def n_chunks(rows, work, min_work):
    """How many blocks of rows to split a job of ``rows`` independent rows and ``work`` multiply-adds into: one
    per Numba thread (never more than ``rows``) when ``work`` reaches ``min_work``, else 1 (run serially).

    Each caller passes its own threshold, a named constant beside it with its reason, because the work is
    counted differently: matmul.py counts a whole product over all T*B rows, split once per product; chain.py
    counts one time step of the chain (B rows), whose products each chunk's loop makes at every step."""
    if work < min_work:
        return 1
    return max(1, min(rows, numba.get_num_threads()))


@contextmanager
def single_threaded_blas():
    import scipy.linalg.cython_blas  # noqa: F401  load the BLAS that Numba's np.dot calls, so it is limited too

    with threadpool_limits(limits=1, user_api="blas"):
        yield
