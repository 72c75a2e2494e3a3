"""minivrnn: the Variational Recurrent Neural Network (Chung et al., 2015) from scratch, on NumPy and Numba.

Dimension letters used in every shape comment:
    T time steps, B sequences in a batch, D data (frame) size, Z latent size, H recurrent state size,
    F feature width (every hidden layer of every MLP), K mixture components, N rows (T*B flattened).
Data are time-major: x has shape (T, B, D), with a (T, B) mask for padded variable-length batches.

Importing this package compiles nothing: Numba kernels compile (or load from their on-disk cache) the first
time they are called. Cached kernels from older sources are dropped first (fast/kernel_cache.py).
"""
from pathlib import Path

from .fast.kernel_cache import clear_stale_kernels

clear_stale_kernels(Path(__file__).parent)

from .model import VRNNConfig, init_params, loss_and_grads  # noqa: E402  (after the cache check)

__all__ = ["VRNNConfig", "init_params", "loss_and_grads"]
__version__ = "0.1.0"
