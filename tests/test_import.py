"""`import minivrnn` compiles nothing (issue 2: fast import), and no kernel is built with fastmath."""
import subprocess
import sys

import numba
import pytest

CHECK = r"""
import importlib, pkgutil, sys
from numba.core import event
compiles = []
event.register("numba:compile", type("Count", (event.Listener,), {
    "on_start": lambda self, e: compiles.append(e.data["dispatcher"]), "on_end": lambda self, e: None})())
import minivrnn
assert not compiles, f"import compiled {compiles}"
import numba
from numba.core.registry import CPUDispatcher
for info in pkgutil.walk_packages(minivrnn.__path__, "minivrnn."):
    if info.name not in ("minivrnn.torch_twin",):
        importlib.import_module(info.name)
assert not compiles, f"importing every module compiled {compiles}"
kernels = [(name, key, value) for name, module in list(sys.modules.items()) if name.startswith("minivrnn")
           for key, value in vars(module).items() if isinstance(value, CPUDispatcher)]
assert len(kernels) >= 10, len(kernels)
compiled = [f"{n}.{k}" for n, k, v in kernels if v.signatures]
assert not compiled, f"compiled or loaded at import: {compiled}"
fast = [f"{n}.{k}" for n, k, v in kernels if v.targetoptions.get("fastmath")]
assert not fast, f"fastmath kernels: {fast}"
"""


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1: there are no kernels to inspect")
def test_import_compiles_nothing_and_no_kernel_uses_fastmath():
    # Compiling even one kernel takes seconds, so an import that compiles (or loads from the cache) no kernel is
    # a fast one; that, not the wall time, is asserted, so that a slow or busy machine cannot fail the test.
    r = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
