"""The Numba options every kernel of minivrnn is compiled with, and which implementation of exp/log and of the
BLAS bridge they use.

- ``cache=True``: compiled machine code is saved on disk (in a folder keyed by the sources: kernel_cache.py), so
  only the first run compiles.
- ``error_model="numpy"``: a float division by zero gives inf or nan, as in NumPy, instead of raising
  ZeroDivisionError as Python would. Python's rule needs a test and a branch at every division, which stops
  LLVM from vectorising a loop that divides (a sigmoid's 1 / (1 + e), for one): several times slower per
  element (measured: docs/performance.md, "Polynomial exp and log").

Fast path or plain path (``plain_kernels()``). Two pieces of our compiled code are trusted more than the rest:
vecmath.py's polynomial exp/expm1/log/log1p (bit tricks through LLVM intrinsics) and blas.py's call of Numba's
private C helper ``numba_xxgemm`` through a hand-written signature. The first time a kernel that uses them is
compiled or read from the cache, each checks itself on a few values against NumPy (``vecmath.self_check``,
``blas.self_check``). If either disagrees, every kernel compiled from then on uses the plain path instead -
NumPy's own np.exp/np.log/np.expm1/np.log1p and Numba's own np.dot, slower but with nothing of ours in
between - and one RuntimeWarning says why. The check's verdict is stored beside the cached kernels (one file per
CPU model), so later runs read it instead of compiling the check again; and each cached kernel records which
path it was compiled for, so the cache never serves one path's machine code to the other (kernel_cache.py).
The choice is made before the first such kernel compiles, and costs nothing per call afterwards: it only
changes which code the overloads give Numba to compile.

Test hook: MINIVRNN_FORCE_PLAIN_KERNELS=1 (read at import) makes the check report a mismatch, so the process
uses the plain path (with its one warning). Its kernels are cached in a folder of their own (kernel_cache.py),
so that switching back and forth never recompiles the fast ones.
"""
import hashlib
import os
import threading
import warnings
from pathlib import Path

from numba import njit

KERNEL_OPTIONS = {"cache": True, "error_model": "numpy"}

kernel = njit(**KERNEL_OPTIONS)  # the decorator: @kernel in place of @njit(cache=True)

# For the scalar helpers kernels call element by element (activations.py): inlined into each caller by Numba
# itself, so that the caller's loop still vectorises (LLVM does not inline one that returns a tuple).
scalar_helper = njit(inline="always", **KERNEL_OPTIONS)

# For the pieces a compiled loop is written in (chain.py's step functions): inlined by Numba into the loop that
# calls them, so that the loop compiles as one function, as if written in one piece. Compiled apart, each piece
# would pay Numba's fixed cost per function on a first run (measured: docs/performance.md, "The sequential chain
# in compiled loops").
loop_step = njit(inline="always", **KERNEL_OPTIONS)

FORCE_PLAIN_ENV = "MINIVRNN_FORCE_PLAIN_KERNELS"
FORCED_PLAIN = os.environ.get(FORCE_PLAIN_ENV, "").strip() not in ("", "0")

_choice = {"plain": None, "deciding": False}  # plain: None until decided, then True or False
_lock = threading.RLock()


def plain_kernels():
    """True if kernels are to be compiled with NumPy's exp/log and Numba's np.dot (the self-check failed, or
    MINIVRNN_FORCE_PLAIN_KERNELS=1); False for the fast path. Decided on the first call (see above)."""
    plain = _choice["plain"]
    return _decide() if plain is None else plain


def _decide():
    with _lock:
        if _choice["plain"] is not None:
            return _choice["plain"]
        if _choice["deciding"]:
            return False  # (the check's own probes: they compile the fast path, and touch no cache)
        _choice["deciding"] = True
        try:
            problems = _self_check()
        finally:
            _choice["deciding"] = False
        _choice["plain"] = bool(problems)
    if problems:
        warnings.warn("minivrnn: the fast kernels' self-check failed (" + "; ".join(problems) + "): using the "
                      "plain NumPy path (np.exp/np.log, np.dot) in compiled code, which is slower",
                      RuntimeWarning, stacklevel=2)
    return _choice["plain"]


def _self_check():
    """The problems found (an empty list: the fast path is sound), from the stored verdict if there is one."""
    if FORCED_PLAIN:
        return [f"{FORCE_PLAIN_ENV} is set"]
    verdict = _verdict_file()
    try:
        text = verdict.read_text() if verdict is not None else None
    except OSError:
        text = None
    if text is not None:
        return [line for line in text.splitlines() if line and line != "ok"]
    from . import blas, vecmath

    problems = blas.self_check() + vecmath.self_check()
    if verdict is not None:
        try:
            verdict.write_text("\n".join(problems) if problems else "ok")
        except OSError:
            pass  # (checked again next time)
    return problems


def _verdict_file():
    """The file that keeps the check's verdict for this CPU, in the keyed cache folder (None if there is none):
    the same sources, versions and CPU (the machine code's own cache key) give the same verdict."""
    from .kernel_cache import current_root

    root = current_root()
    if root is None:
        return None
    from numba.core.registry import cpu_target

    machine = repr(cpu_target.target_context.codegen().magic_tuple()).encode()
    return Path(root) / f"self-check-{hashlib.sha256(machine).hexdigest()[:16]}.txt"
