"""Where Numba keeps our compiled kernels: a folder keyed by everything the machine code depends on.

Numba checks a cached kernel against its own source file only. A kernel that calls a helper from another file
(the chain calls the GRU's gate step, the gates call vecmath's exp) would keep the helper's old machine code
after that other file changes: after an update, a run could silently use old code (or, as seen while
developing, a much slower mix of old and new; docs/performance.md, "The kernel cache"). So minivrnn's
kernels are cached in a folder of their own,

    <package>/__pycache__/numba-<key>/<subpackage>/      (e.g. minivrnn/__pycache__/numba-3f2a.../fast/)

where ``<key>`` hashes every .py file of the package (paths and contents), the versions of Python, NumPy,
Numba and llvmlite, and whether the plain kernels are forced (fast/jit.py, MINIVRNN_FORCE_PLAIN_KERNELS).
Changed sources give a new folder, so old machine code is never served, and nothing needs deleting: importing
minivrnn deletes no file. Old folders are left behind; ``python -m minivrnn.fast.kernel_cache --prune``
removes every folder but the current one (never done on import). Hashing the sources on import is cheap
(measured: docs/performance.md, "The kernel cache").

Where the folder goes, first that is writable:
- ``$NUMBA_CACHE_DIR/minivrnn-<key>/`` if the user set NUMBA_CACHE_DIR (or ``cache_dir`` in .numba_config.yaml);
- the package's own ``__pycache__`` (as Numba's default would);
- the user's cache directory (``~/.cache/minivrnn/numba-<key>``), for a read-only install.

How: a cache locator (``KeyedCacheLocator``), put first in Numba's list of locators (numba.core.caching; see
the pinned version range in pyproject.toml), claims the functions defined in the package's files and leaves
every other function to Numba's own locators: the user's own kernels are cached as they would be without us.
It must be installed before any kernel is defined (minivrnn/__init__.py does it first), since Numba binds each
kernel to its cache folder when the decorator runs. If the user replaces Numba's locator list
(NUMBA_CACHE_LOCATOR_CLASSES), that list wins and this keying is off.

Each cached kernel's source stamp also records which implementation it was compiled with (fast/jit.py:
``plain_kernels``), evaluated when the cache is read or written, not when the kernel is defined: a kernel
compiled after a failed self-check is never served to a process using the fast path, nor the reverse.
"""
import hashlib
import os
import shutil
import sys
from pathlib import Path

import numba
import numpy as np
from numba.core import caching, config
from numba.misc.appdirs import AppDirs

PREFIX = "numba-"  # the keyed folders in <package>/__pycache__ (and "minivrnn-" under NUMBA_CACHE_DIR)

_state = {"package": None, "root": None}  # set once by install(): the package's folder, the keyed folder


def sources_digest(package_dir):
    """sha256 over every .py file under ``package_dir``: relative paths and contents, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(Path(package_dir).rglob("*.py")):
        digest.update(path.relative_to(package_dir).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(package_dir, plain=False):
    """The folder key: the sources' digest, the versions the machine code depends on, and the forced choice."""
    import llvmlite

    parts = [sources_digest(package_dir), sys.version, np.__version__, numba.__version__, llvmlite.__version__,
             "plain" if plain else "fast"]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def candidate_roots(package_dir, key, user_cache_dir=None):
    """The folders the cache may go in, in order of preference (see the module's docstring)."""
    user_cache_dir = config.CACHE_DIR if user_cache_dir is None else user_cache_dir
    if user_cache_dir:
        return [Path(user_cache_dir) / f"minivrnn-{key}"]
    return [Path(package_dir) / "__pycache__" / f"{PREFIX}{key}",
            Path(AppDirs(appname="minivrnn", appauthor=False).user_cache_dir) / f"{PREFIX}{key}"]


def _writable(folder):
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return os.access(folder, os.W_OK | os.X_OK)
    except OSError:
        return False


def install(package_dir, plain=False):
    """Key the cache of every kernel defined under ``package_dir`` (call before any is defined). Returns the
    keyed folder, or None if none is writable (Numba's own locators then apply, as before)."""
    package_dir = Path(package_dir).resolve()
    key = cache_key(package_dir, plain)
    root = next((r for r in candidate_roots(package_dir, key) if _writable(r)), None)
    _state.update(package=package_dir, root=root)
    if root is not None and KeyedCacheLocator not in caching.CacheImpl._locator_classes:
        caching.CacheImpl._locator_classes.insert(0, KeyedCacheLocator)
    return root


def current_root():
    """The keyed folder in use (None before ``install`` or when none was writable)."""
    return _state["root"]


class _ChoiceStamp:
    """A kernel's source stamp (its file's hash, as Numba's) together with the implementation choice at the
    moment the cache is read or written: compares equal to, and pickles as, the tuple (file hash, choice)."""

    def __init__(self, file_stamp):
        self.file_stamp = file_stamp

    def _value(self):
        from .jit import plain_kernels  # (decides on first use: fast/jit.py)

        return self.file_stamp, "plain" if plain_kernels() else "fast"

    def __eq__(self, other):
        return self._value() == other

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(self.file_stamp)

    def __reduce__(self):
        return tuple, (self._value(),)


class KeyedCacheLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
    """Numba's cache locator for the package's own functions: the keyed folder, by subpackage."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        relative = Path(py_file).resolve().parent.relative_to(_state["package"])
        self._cache_path = str(_state["root"].joinpath(*relative.parts))

    def get_cache_path(self):
        return self._cache_path

    def get_source_stamp(self):
        return _ChoiceStamp(super().get_source_stamp())

    @classmethod
    def from_function(cls, py_func, py_file):
        if _state["root"] is None or not _inside(py_file, _state["package"]):
            return None
        return super().from_function(py_func, py_file)


def _inside(py_file, package_dir):
    try:
        Path(py_file).resolve().relative_to(package_dir)
    except (ValueError, OSError):
        return False
    return True


def stale_roots(package_dir, current):
    """The keyed folders of the package's ``__pycache__`` other than ``current``."""
    pycache = Path(package_dir) / "__pycache__"
    if not pycache.is_dir():
        return []
    return sorted(p for p in pycache.glob(f"{PREFIX}*") if p.is_dir() and p != current)


def prune(package_dir, current):
    """Delete the stale keyed folders (an explicit command only: never on import). Returns them."""
    stale = stale_roots(package_dir, current)
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return stale


if __name__ == "__main__":
    import argparse

    import minivrnn
    from minivrnn.fast import kernel_cache  # (this file runs as __main__: the installed module is that one)

    parser = argparse.ArgumentParser(description="Show, or prune, minivrnn's cached kernel folders.")
    parser.add_argument("--prune", action="store_true", help="delete every keyed folder but the current one")
    args = parser.parse_args()
    package, root = Path(minivrnn.__file__).parent, kernel_cache.current_root()
    print(f"current: {root}")
    for folder in (prune if args.prune else stale_roots)(package, root):
        print(f"{'deleted' if args.prune else 'stale'}: {folder}")
