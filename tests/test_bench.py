"""The benchmark command runs and writes its table (a smoke test: no timing is asserted)."""
import os

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
    assert "_chain_forward_loop" in text and "_chain_backward_loop" in text and "ms per step" in text


def test_native_blas_workers_run_without_the_pins(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    out = str(tmp_path / "bench")
    args = ["--configs", "tiny", "--threads", "1", "--no-sweep", "--no-peer", "--repeat-scale", "0.05",
            "--native-blas", "--out", out]
    assert bench.main(args) == 0
    table = open(os.path.join(out, "benchmark.md")).read()
    assert "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset in the workers" in table
    assert "OpenBLAS kernel Haswell" not in table  # the worker chose its own kernel
