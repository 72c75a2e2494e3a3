"""Threads: Numba parallelises the batch (chain.py), so BLAS itself should stay on one thread.

Two thread pools on two cores fight: OpenBLAS's threads spin while Numba's work, and a small matrix product
split over threads is slower than on one. Our commands (train, evaluate, bench) therefore run inside
``single_threaded_blas()``; library calls leave the user's BLAS settings alone.
"""
from contextlib import contextmanager

from threadpoolctl import threadpool_limits


@contextmanager
def single_threaded_blas():
    import scipy.linalg.cython_blas  # noqa: F401  load the BLAS that Numba's np.dot calls, so it is limited too

    with threadpool_limits(limits=1, user_api="blas"):
        yield
