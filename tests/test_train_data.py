"""A short training run on each shipped dataset improves its validation bound (issue: real data)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minivrnn import VRNNConfig, init_params
from minivrnn import sample as samplemod
from minivrnn import train as trainmod
from minivrnn.checkpoint import load_checkpoint, save_checkpoint
from minivrnn.data import read_wav, split_indices, write_wav

SAMPLES = Path(__file__).resolve().parent.parent / "data_samples"


def training_statistics(dataset):
    """(mean, std) that the checkpoint should hold, recomputed from the raw file with plain NumPy."""
    with np.load(SAMPLES / f"{dataset}.npz") as f:
        raw, offsets, group = f["data"], f["offsets"], f["group"]
    train_ids = split_indices(group, split_seed=0)[0]  # the CLI's default split (--split-seed 0)
    seqs = [raw[offsets[i] : offsets[i + 1]] for i in train_ids]
    if dataset == "speech":  # whole 200-sample frames, int16 -> [-1, 1)
        rows = np.concatenate([s[: len(s) // 200 * 200] for s in seqs]) / 32768.0
        return np.full(200, rows.mean()), np.full(200, rows.std())
    rows = np.concatenate(seqs).astype(np.float64)
    if dataset == "handwriting":  # offsets scaled, not centred; the pen bit untouched
        return np.zeros(3), np.array([rows[:, 0].std(), rows[:, 1].std(), 1.0])
    return rows.mean(axis=0), rows.std(axis=0)

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
    ck = load_checkpoint(os.path.join(out, "best.npz"))
    assert ck["config"].output == ("pen" if dataset == "handwriting" else "auto")  # --data picks the output
    if dataset == "handwriting":  # the bivariate mixture with correlation and the Bernoulli pen bit
        assert {"dec.rho.W", "dec.pen.W"} <= set(ck["params"])
    mean, std = training_statistics(dataset)
    np.testing.assert_allclose(ck["data_arrays"]["mean"], mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ck["data_arrays"]["std"], std, rtol=1e-9)
    if dataset == "speech":
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


def _checkpoint(path, config, data_arrays):
    """A checkpoint of freshly initialised parameters with the given normalisation arrays (no training)."""
    save_checkpoint(path, init_params(config, 0, np.float32), config, data_arrays=data_arrays)
    return str(path)


def _sample(tmp_path, checkpoint, name):
    out = tmp_path / name
    assert samplemod.main([checkpoint, "--steps", "30", "--n", "2", "--seed", "5", "--out", str(out)]) == 0
    return out, np.load(out / "samples.npy")


def test_sampling_undoes_the_handwriting_normalisation_and_keeps_the_pen_bit(tmp_path):
    config = VRNNConfig(x_dim=3, z_dim=2, h_dim=8, feat_dim=8, model="vrnn-gmm", n_mix=2, output="pen")
    unit = dict(mean=np.zeros(3), std=np.ones(3), scaled=np.array([True, True, False]),
                kind=np.array("handwriting"))
    _, xs = _sample(tmp_path, _checkpoint(tmp_path / "unit.npz", config, unit), "unit")
    scaled = dict(unit, std=np.array([10.0, 100.0, 1.0]))
    out, ys = _sample(tmp_path, _checkpoint(tmp_path / "scaled.npz", config, scaled), "scaled")
    assert set(np.unique(xs[..., 2])) == {0.0, 1.0} and np.array_equal(ys[..., 2], xs[..., 2])
    np.testing.assert_allclose(ys[..., 0], 10 * xs[..., 0], rtol=1e-5)
    np.testing.assert_allclose(ys[..., 1], 100 * xs[..., 1], rtol=1e-5)
    assert (out / "generated.png").stat().st_size > 0


def test_sampling_speech_writes_16_khz_wavs_in_waveform_units(tmp_path):
    config = VRNNConfig(x_dim=200, z_dim=2, h_dim=8, feat_dim=8, model="vrnn-gauss")
    speech = dict(mean=np.full(200, 0.01), std=np.full(200, 0.05), scaled=np.ones(200, dtype=bool),
                  kind=np.array("speech"), frame_size=np.array(200), sample_rate=np.array(16000))
    unit = dict(speech, mean=np.zeros(200), std=np.ones(200))
    _, xs = _sample(tmp_path, _checkpoint(tmp_path / "unit.npz", config, unit), "unit")
    out, ys = _sample(tmp_path, _checkpoint(tmp_path / "speech.npz", config, speech), "speech")
    np.testing.assert_allclose(ys, 0.05 * xs + 0.01, rtol=1e-5, atol=1e-7)
    wave, rate = read_wav(out / "sample-1.wav")
    assert rate == 16000 and wave.shape == (30 * 200,)
    np.testing.assert_allclose(wave, np.clip(ys[:, 1].reshape(-1), -1, 1), atol=1 / 32768)


def _bad_inputs(tmp_path):
    """Each bad input of the issue: (the --data argument, words the error must hold)."""
    good = dict(data=np.zeros((10, 2), np.float32), offsets=np.array([0, 4, 10]), kind=np.array("series"))

    def npz(name, **changes):
        np.savez(tmp_path / name, **{k: v for k, v in {**good, **changes}.items() if v is not None})
        return tmp_path / name

    nan = np.zeros((10, 2), np.float32)
    nan[6, 1] = np.nan
    (tmp_path / "rates").mkdir()
    write_wav(tmp_path / "rates" / "a.wav", np.zeros(800), 16000)
    write_wav(tmp_path / "rates" / "b.wav", np.zeros(800), 8000)
    return {
        "missing file": (tmp_path / "absent.npz", "no such file"),
        "missing key": (npz("nokey.npz", offsets=None), "missing key 'offsets'"),
        "wrong key": (npz("wrongkey.npz", offsets=None, offset=np.array([0, 4, 10])), "missing key 'offsets'"),
        "wrong dtype": (npz("dtype.npz", data=np.zeros((10, 2), np.int32)), "dtype int32"),
        "NaN": (npz("nan.npz", data=nan), "NaN or Inf"),
        "Inf": (npz("inf.npz", data=np.where(nan == nan, 0, np.inf).astype(np.float32)), "NaN or Inf"),
        "shorter than one frame": (npz("short.npz", data=np.ones(500, np.int16), offsets=np.array([0, 350, 500]),
                                       kind=np.array("speech"), sample_rate=np.array(16000)),
                                   "150 samples, fewer than one frame of 200"),
        "wav at another rate": (tmp_path / "rates", "sample rate 8000 Hz; expected 16000 Hz"),
    }


BAD = ["missing file", "missing key", "wrong key", "wrong dtype", "NaN", "Inf", "shorter than one frame",
       "wav at another rate"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_on_the_command_line_is_one_line_naming_the_file(tmp_path, case):
    path, words = _bad_inputs(tmp_path)[case]
    r = subprocess.run([sys.executable, "-m", "minivrnn.train", "--data", str(path), "--epochs", "1",
                        "--out", str(tmp_path / "run")], capture_output=True, text=True)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    named = tmp_path / "rates" / "b.wav" if case == "wav at another rate" else path
    assert lines[0].startswith(f"error: {named}:") and words in lines[0], lines[0]


def test_resuming_a_finished_run_still_writes_the_plots_and_sizes_below_one_are_refused(tmp_path, capsys):
    small = ["--data", "series", "--z-dim", "2", "--h-dim", "6", "--feat-dim", "6", "--batch-size", "4",
             "--epochs", "1", "--out", str(tmp_path / "run")]
    assert trainmod.main(small) == 0
    os.remove(tmp_path / "run" / "kl_per_step.png")
    assert trainmod.main(small + ["--resume"]) == 0  # no epoch left to run
    assert (tmp_path / "run" / "kl_per_step.png").stat().st_size > 0
    capsys.readouterr()
    for flag in ("--frame-size", "--batch-size", "--max-len", "--epochs"):
        with pytest.raises(SystemExit) as stop:  # argparse refuses the value before anything runs
            trainmod.main(small + [flag, "0"])
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert f"argument {flag}: expected a positive number, got 0" in err and "Traceback" not in err, err


def test_a_held_out_writer_split_is_kept_by_the_run_and_used_by_evaluate(tmp_path):
    from minivrnn import data as datalib
    from minivrnn import evaluate as evaluatemod

    run = tmp_path / "run"
    small = ["--data", "handwriting", "--z-dim", "2", "--h-dim", "6", "--feat-dim", "6", "--n-mix", "2",
             "--epochs", "1", "--max-len", "20", "--no-plots", "--out", str(run)]
    assert trainmod.main(small + ["--heldout", "group"]) == 0
    assert evaluatemod.main([str(run / "best.npz"), "--samples", "2"]) == 0
    with open(run / "best-test-S2-seed0.csv") as f:
        steps = [int(line.split(",")[1]) for line in f.read().splitlines()[1:]]
    by_writer = datalib.load_splits("handwriting", heldout="group")
    by_sequence = datalib.load_splits("handwriting", heldout="utterance")
    assert steps == [len(s) for s in by_writer.test]  # evaluate used the run's split, not the default
    assert steps != [len(s) for s in by_sequence.test]
    test_writers = set(by_writer.group[by_writer.test_ids])
    assert test_writers and not test_writers & set(by_writer.group[by_writer.train_ids])
