"""The benchmark command runs and writes its table (a smoke test: no timing is asserted)."""
import os
import subprocess
import sys

import pytest

from minivrnn import bench


def test_flop_count_of_a_tiny_step_by_hand():
    # D=1, H=1, Z=1, F=1: per row phi_x 1, enc 2+2, phi_z 1, prior 1+2, dec 2+2, GRU 2*3+3 = 22 MACs.
    assert bench.train_flops(1, 1, 1, 1, 1, 1) == 2 * 3 * 22


@pytest.mark.parametrize("peer", [False, True])
def test_bench_writes_its_table(tmp_path, peer):
    if peer:
        pytest.importorskip("torch")
    out = str(tmp_path / "bench")
    args = ["--configs", "tiny", "--threads", "1", "--no-sweep", "--repeat-scale", "0.05", "--out", out]
    assert bench.main(args + ([] if peer else ["--no-peer"])) == 0
    table = open(os.path.join(out, "benchmark.md")).read()
    assert "| tiny (2, 32, 8, 32, 50, 16) | 1 |" in table
    assert ("speed-up (train)" in table) == peer


def test_profile_names_the_chain_kernels(capsys):
    assert bench.main(["--profile", "tiny"]) == 0
    text = capsys.readouterr().out
    assert "gru_chain_forward" in text and "gru_chain_backward" in text and "ms per step" in text


def _native_blas_kernel():
    """The OpenBLAS kernel this machine picks by itself (no OPENBLAS_CORETYPE), in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k not in bench.BLAS_PINS}
    r = subprocess.run([sys.executable, "-c", "from minivrnn import bench; print(bench.blas_kernel())"], env=env,
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


def test_native_blas_workers_run_without_the_pins(tmp_path, monkeypatch):
    if "Haswell" in _native_blas_kernel():
        pytest.skip("this machine's own OpenBLAS kernel is Haswell: the pin's effect cannot be told apart")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    out = str(tmp_path / "bench")
    args = ["--configs", "tiny", "--threads", "1", "--no-sweep", "--no-peer", "--repeat-scale", "0.05",
            "--native-blas", "--out", out]
    assert bench.main(args) == 0
    table = open(os.path.join(out, "benchmark.md")).read()
    assert "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset in the workers" in table
    assert "OpenBLAS kernel Haswell" not in table  # the worker chose its own kernel
