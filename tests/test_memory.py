import subprocess
import sys

from minivrnn.memory import keep_freed_memory


def test_keep_freed_memory_cuts_page_faults_of_repeated_big_allocations():
    # The effect the commands rely on, in a fresh process each way: the same 40 rounds of allocating and
    # filling 3 MB arrays, with and without the malloc settings, counted in minor page faults.
    script = (
        "import resource, sys, numpy as np\n"
        "from minivrnn.memory import keep_freed_memory\n"
        "if sys.argv[1] == 'keep': assert keep_freed_memory()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(40):\n"
        "    a = np.ones(400_000); b = a * 2; del a, b\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    faults = {mode: int(subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True,
                                       check=True).stdout) for mode in ("default", "keep")}
    assert faults["keep"] * 5 < faults["default"], faults


def test_keep_freed_memory_reports_success_on_linux():
    assert keep_freed_memory() is (sys.platform.startswith("linux"))
