"""minivrnn: the Variational Recurrent Neural Network (Chung et al., 2015) from scratch, on NumPy and Numba.

Dimension letters used in every shape comment:
    T time steps, B sequences in a batch, D data (frame) size, Z latent size, H recurrent state size,
    F feature width (every hidden layer of every MLP), K mixture components, N rows (T*B flattened).
Data are time-major: x has shape (T, B, D), with a (T, B) mask for padded variable-length batches.

Importing this package compiles nothing and deletes nothing: Numba kernels compile (or load from their on-disk
cache) the first time they are called. Their cache is a folder keyed by the package's sources and the versions
they are compiled with (fast/kernel_cache.py), so a change to any file never serves old machine code.
"""
from pathlib import Path

from .fast.jit import FORCED_PLAIN
from .fast.kernel_cache import install as install_kernel_cache

install_kernel_cache(Path(__file__).parent, plain=FORCED_PLAIN)  # before any kernel is defined

from .model import VRNNConfig, init_params, loss_and_grads  # noqa: E402  (after the cache is keyed)

__all__ = ["VRNNConfig", "init_params", "loss_and_grads"]
__version__ = "0.1.0"
