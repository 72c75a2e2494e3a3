"""`import minivrnn` compiles nothing (issue 2: fast import), and no kernel is built with fastmath."""
import subprocess
import sys

import numba
import pytest

CHECK = r"""
import importlib, pkgutil, sys, time
start = time.perf_counter()
import minivrnn
seconds = time.perf_counter() - start
import numba
from numba.core.registry import CPUDispatcher
for info in pkgutil.walk_packages(minivrnn.__path__, "minivrnn."):
    if info.name not in ("minivrnn.torch_twin",):
        importlib.import_module(info.name)
kernels = [(name, key, value) for name, module in list(sys.modules.items()) if name.startswith("minivrnn")
           for key, value in vars(module).items() if isinstance(value, CPUDispatcher)]
assert len(kernels) >= 10, len(kernels)
compiled = [f"{n}.{k}" for n, k, v in kernels if v.signatures]
assert not compiled, f"compiled at import: {compiled}"
fast = [f"{n}.{k}" for n, k, v in kernels if v.targetoptions.get("fastmath")]
assert not fast, f"fastmath kernels: {fast}"
print(seconds)
"""


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1: there are no kernels to inspect")
def test_import_compiles_nothing_and_no_kernel_uses_fastmath():
    r = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # Importing NumPy and Numba alone takes ~0.3 s; compiling even one kernel takes seconds.
    assert float(r.stdout) < 3.0, r.stdout
