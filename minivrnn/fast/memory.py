"""Memory for big arrays: freed memory kept for reuse (``keep_freed_memory``), and reused arrays on 2 MiB pages
(``Workspace``).

Keep freed memory in the process for reuse, so that each training step's big arrays are not fresh pages.

A training step allocates and frees the same (T, B, ...) arrays every time. glibc's malloc hands every
allocation above its mmap threshold (128 KiB at first, adjusted as the program runs) straight to the kernel
and back, so such an array costs a page fault per 4 KiB page each time it is first written. With the
threshold fixed at 32 MiB (glibc's largest) and the heap never trimmed below 64 MiB of free space, the
arrays are reused instead: far fewer page faults and a faster step (measured: docs/performance.md,
"Memory"). PyTorch's allocator is not affected. Our commands (train, evaluate, sample, bench) call
``keep_freed_memory()`` once at start; the library itself leaves malloc alone.
"""
import ctypes
import mmap
import sys
import threading
from collections import OrderedDict

import numpy as np

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (glibc's malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # bytes: DEFAULT_MMAP_THRESHOLD_MAX on 64-bit glibc
TRIM_THRESHOLD = 64 * 2**20


def keep_freed_memory():
    """Fix glibc's mmap threshold and trim threshold (see above). Returns True if they were set; on other
    platforms or C libraries (no ``mallopt``) it does nothing and returns False."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


# --- arrays on 2 MiB pages ------------------------------------------------------------------------------
#
# The chain's loop (chain.py) reads every weight it multiplies by once per time step; at the paper-ish size
# they are more than the core's second-level cache holds, so they stream in again at every step. On 4 KiB
# pages that is one address translation per page per step, each a miss in the translation cache (the TLB) and
# a page-table walk. On 2 MiB pages (Linux's transparent huge pages, asked for with madvise) it is a handful,
# and the chain's products and loops run measurably faster (measured: docs/performance.md, "Memory").

HUGE_PAGE = 2 * 2**20


def huge_page_empty(shape, dtype):
    """An uninitialised C-contiguous array in its own anonymous mapping, 2 MiB-aligned and madvise'd
    MADV_HUGEPAGE, so that Linux backs it with 2 MiB pages where it can (transparent huge pages set to "always"
    or "madvise"). Elsewhere (no madvise, no MADV_HUGEPAGE) it is ``np.empty``. The mapping lives as long as the
    array (the array holds it through its buffer)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes == 0 or not (hasattr(mmap, "MADV_HUGEPAGE") and hasattr(mmap.mmap, "madvise")):
        return np.empty(shape, dtype)
    size = -(-nbytes // HUGE_PAGE) * HUGE_PAGE
    region = mmap.mmap(-1, size + HUGE_PAGE)  # anonymous, private: one extra page's room to align the start
    raw = np.frombuffer(region, np.uint8)
    start = -raw.ctypes.data % HUGE_PAGE
    try:
        region.madvise(mmap.MADV_HUGEPAGE, start, size)
    except OSError:  # (a kernel without transparent huge pages): ordinary pages then
        pass
    return raw[start:start + nbytes].view(dtype).reshape(shape)


class Workspace:
    """Arrays reused from call to call, each on 2 MiB pages (``huge_page_empty``): ``empty(key, shape, dtype)``
    returns the same array every time it is asked for the same key, shape and dtype, its contents whatever the
    last user left. For scratch arrays that never outlive the call that fills them. Each thread has its own
    arrays; the ``capacity`` most recently used are kept."""

    def __init__(self, capacity=32):
        self.capacity = capacity
        self._local = threading.local()

    def empty(self, key, shape, dtype):
        arrays = self._arrays()
        full_key = (key, tuple(shape), np.dtype(dtype))
        array = arrays.pop(full_key, None)
        if array is None:
            array = huge_page_empty(shape, dtype)
        arrays[full_key] = array  # (re-)inserted last: the most recently used
        while len(arrays) > self.capacity:
            arrays.popitem(last=False)
        return array

    def _arrays(self):
        if not hasattr(self._local, "arrays"):
            self._local.arrays = OrderedDict()
        return self._local.arrays
