import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from minivrnn.fast.memory import HUGE_PAGE, Workspace, huge_page_empty, keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt and ru_minflt: Linux only")
def test_keep_freed_memory_cuts_page_faults_of_repeated_big_allocations():
    # The effect the commands rely on, in a fresh process each way: the same 40 rounds of allocating and
    # filling 3 MB arrays, with and without the malloc settings, counted in minor page faults.
    script = (
        "import resource, sys, numpy as np\n"
        "from minivrnn.fast.memory import keep_freed_memory\n"
        "if sys.argv[1] == 'keep': assert keep_freed_memory()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(40):\n"
        "    a = np.ones(400_000); b = a * 2; del a, b\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    faults = {mode: int(subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True,
                                       check=True).stdout) for mode in ("default", "keep")}
    if faults["default"] < 40 * 100:  # (3 MB is ~730 pages: the default settings fault on every round)
        pytest.skip(f"this machine's malloc already reuses the arrays ({faults}): no effect to show")
    assert faults["keep"] * 5 < faults["default"], faults


def test_keep_freed_memory_reports_success_on_linux():
    assert keep_freed_memory() is (sys.platform.startswith("linux"))


def _vm_flags(array):
    """The VmFlags of the mapping holding ``array``'s first byte (Linux's /proc/self/smaps), or None."""
    address = array.ctypes.data
    with open("/proc/self/smaps") as smaps:
        inside = False
        for line in smaps:
            first = line.split()[0]
            if "-" in first and not first.endswith(":"):
                start, end = (int(x, 16) for x in first.split("-"))
                inside = start <= address < end
            elif inside and first == "VmFlags:":
                return line.split()[1:]
    return None


def test_huge_page_arrays_are_aligned_writable_and_advised():
    a = huge_page_empty((3, 1000, 64), np.float32)
    assert a.shape == (3, 1000, 64) and a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable
    a[:] = 1.5  # every byte is ours to write
    assert a.sum() == 1.5 * a.size
    assert huge_page_empty((0, 64), np.float64).shape == (0, 64)
    if not sys.platform.startswith("linux") or not os.path.exists("/sys/kernel/mm/transparent_hugepage"):
        pytest.skip("no transparent huge pages on this machine: huge_page_empty is np.empty")
    assert a.ctypes.data % HUGE_PAGE == 0
    assert "hg" in _vm_flags(a)  # the mapping carries MADV_HUGEPAGE ("hg"): Linux may back it with 2 MiB pages


def test_a_workspace_gives_the_same_array_back_per_key_shape_and_dtype():
    ws = Workspace(capacity=3)
    a = ws.empty("W", (4, 8, 64), np.float32)
    assert ws.empty("W", (4, 8, 64), np.float32) is a
    others = [ws.empty("V", (4, 8, 64), np.float32), ws.empty("W", (5, 8, 64), np.float32),
              ws.empty("W", (4, 8, 64), np.float64)]
    assert all(o is not a and not np.shares_memory(o, a) for o in others)
    assert ws.empty("W", (4, 8, 64), np.float32) is not a  # three newer arrays pushed it out (capacity 3)
    seen = []
    thread = threading.Thread(target=lambda: seen.append(ws.empty("V", (4, 8, 64), np.float32)))
    thread.start()
    thread.join()
    assert seen[0] is not others[0]  # another thread has arrays of its own
