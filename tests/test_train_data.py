"""A short training run on each shipped dataset improves its validation bound (issue: real data)."""
import json
import os

import numpy as np
import pytest

from minivrnn import train as trainmod

RUNS = {  # dataset: extra flags (small models, a few epochs: this is a smoke test of learning, not a result)
    "series": ["--model", "vrnn-gauss", "--epochs", "6", "--batch-size", "4", "--lr", "1e-2"],
    "handwriting": ["--model", "vrnn-gmm", "--n-mix", "3", "--epochs", "3", "--batch-size", "32",
                    "--lr", "3e-3"],
    "speech": ["--model", "vrnn-gauss", "--epochs", "3", "--batch-size", "16", "--lr", "3e-3",
               "--max-len", "20"],
}


@pytest.mark.parametrize("dataset", sorted(RUNS))
def test_validation_bound_improves(tmp_path, dataset):
    out = str(tmp_path / dataset)
    args = ["--data", dataset, "--z-dim", "4", "--h-dim", "16", "--feat-dim", "16", "--seed", "0",
            "--out", out, *RUNS[dataset]]
    assert trainmod.main(args) == 0
    records = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    first, best = records[0]["valid_loss"], min(r["valid_loss"] for r in records[1:])
    assert np.isfinite(first) and best < first, [r["valid_loss"] for r in records]
    assert os.path.getsize(os.path.join(out, "samples.png")) > 0
    if dataset == "speech":
        from minivrnn.data import read_wav

        wave, rate = read_wav(os.path.join(out, "sample.wav"))
        assert rate == 16000 and wave.size > 0 and np.all(np.abs(wave) <= 1)


def test_nan_in_the_data_is_a_one_line_error(tmp_path, capsys):
    data = np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32)
    data[123, 1] = np.nan
    path = tmp_path / "mine.npz"
    np.savez(path, data=data, offsets=np.array([0, 100, 200, 300]), kind=np.array("series"))
    assert trainmod.main(["--data", str(path), "--out", str(tmp_path / "run"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and ("NaN" in err[0] or "nan" in err[0].lower()), err
