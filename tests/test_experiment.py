"""python -m minivrnn.experiment table1: every model once per seed on one split, a CSV and a markdown table whose
figures follow from the runs, paired differences, and an experiment that continues where it stopped."""
import csv
import json
import os

import numpy as np
import pytest

from minivrnn import data as datalib
from minivrnn import experiment as expmod
from minivrnn import train as trainmod

MODELS = ["rnn-gmm", "vrnn-gauss"]
SMALL = ["table1", "--data", "series", "--models", *MODELS, "--seeds", "0", "1", "--epochs", "2", "--z-dim", "2",
         "--h-dim", "6", "--feat-dim", "6", "--batch-size", "4", "--max-len", "20", "--samples", "2",
         "--valid-draws", "1"]


def _rows(out):
    with open(os.path.join(out, "runs.csv"), newline="") as f:
        return list(csv.DictReader(f))


def _counting(monkeypatch):
    calls = []
    real = trainmod.main

    def counted(argv):
        calls.append(list(argv))
        return real(argv)

    monkeypatch.setattr(trainmod, "main", counted)
    return calls


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("experiment") / "table1")
    assert expmod.main(SMALL + ["--out", out]) == 0
    return out


def test_every_model_and_seed_is_run_on_one_split_and_tabulated(finished):
    rows = _rows(finished)
    assert sorted((r["model"], r["seed"]) for r in rows) == sorted((m, s) for m in MODELS for s in ("0", "1"))
    assert {r["split_seed"] for r in rows} == {"0"} and {r["status"] for r in rows} == {"ok"}
    test_steps = sum(len(s) for s in datalib.load_splits("series", split_seed=0).test)
    assert {int(r["steps"]) for r in rows} == {test_steps}  # every run evaluated on the same test sequences
    for r in rows:  # the run's own record agrees: its flags, its split
        state = json.load(open(os.path.join(finished, "runs", f"{r['model']}-seed{r['seed']}", "result.json")))
        assert state["seed"] == int(r["seed"])
    for name in ("table1.md", "table1.png", "experiment.json"):
        assert os.path.getsize(os.path.join(finished, name)) > 0


def test_the_table_s_means_and_paired_differences_follow_from_the_runs(finished):
    rows = _rows(finished)
    value = {(r["model"], int(r["seed"])): float(r["log_likelihood_per_step"]) for r in rows}
    md = open(os.path.join(finished, "table1.md")).read()
    for m in MODELS:
        mean = (value[(m, 0)] + value[(m, 1)]) / 2
        sd = abs(value[(m, 0)] - value[(m, 1)]) / np.sqrt(2)  # the sample sd of two numbers
        assert f"| {m} | {mean:.3f} ± {sd:.3f}" in md
    gaps = [value[("rnn-gmm", s)] - value[("vrnn-gauss", s)] for s in (0, 1)]
    mean, sd = np.mean(gaps), abs(gaps[0] - gaps[1]) / np.sqrt(2)
    wins = sum(g > 0 for g in gaps)
    exceeds = "yes" if abs(mean) > sd else "no"
    assert f"| rnn-gmm − vrnn-gauss | {mean:+.3f} | {sd:.3f} | {wins}/2 | {exceeds} |" in md
    assert "(exact)" in md.split("| rnn-gmm |")[1].split("\n")[0]  # the RNN's column is exact
    rnn = [r for r in rows if r["model"] == "rnn-gmm"][0]
    assert float(rnn["kl_per_step"]) == 0 and rnn["elbo_per_step"] == rnn["log_likelihood_per_step"]


def test_paired_differences_by_hand():
    table = {"a": {0: {"x": 1.0}, 1: {"x": 3.0}, 2: {"x": 2.0}}, "b": {0: {"x": 0.0}, 1: {"x": 4.0}}}
    mean, sd, wins, n = expmod.paired_differences(table, "a", "b", key="x")
    assert (mean, wins, n) == (0.0, 1, 2) and sd == pytest.approx(np.sqrt(2))  # gaps +1 and -1; seed 2 unpaired


def test_a_finished_experiment_is_not_run_again(finished, monkeypatch, capsys):
    calls = _counting(monkeypatch)
    before = open(os.path.join(finished, "runs.csv")).read()
    assert expmod.main(SMALL + ["--out", finished]) == 0
    assert calls == [] and open(os.path.join(finished, "runs.csv")).read() == before


def test_adding_a_seed_runs_only_its_runs(tmp_path, finished, monkeypatch):
    import shutil

    out = str(tmp_path / "copy")
    shutil.copytree(finished, out)
    calls = _counting(monkeypatch)
    argv = list(SMALL)
    seeds_at = argv.index("--seeds")
    argv[seeds_at:seeds_at + 3] = ["--seeds", "0", "1", "2"]
    assert expmod.main(argv + ["--out", out]) == 0
    assert sorted(c[c.index("--model") + 1] + "/" + c[c.index("--seed") + 1] for c in calls) == [
        "rnn-gmm/2", "vrnn-gauss/2"]
    assert len(_rows(out)) == 6


def test_a_stopped_experiment_continues_and_ends_as_an_uninterrupted_one(tmp_path, finished, monkeypatch, capsys):
    """The third run is stopped after its first epoch (as Ctrl-C leaves it: last.npz saved, exit 130); the
    same command then keeps the two finished runs, resumes the third, and the table equals the uninterrupted
    experiment's."""
    out = str(tmp_path / "stopped")
    real = trainmod.main
    calls = []

    def stopped_third(argv):
        calls.append(list(argv))
        if len(calls) == 3:  # Ctrl-C as the first epoch's line is printed: train saves last.npz, returns 130
            def interrupted(record):
                raise KeyboardInterrupt

            monkeypatch.setattr(trainmod, "epoch_summary", interrupted)
        return real(argv)

    monkeypatch.setattr(trainmod, "main", stopped_third)
    assert expmod.main(SMALL + ["--out", out]) == 130
    assert "run the same command again" in capsys.readouterr().err
    assert os.path.exists(os.path.join(out, "runs", "rnn-gmm-seed1", "last.npz"))
    monkeypatch.undo()
    calls.clear()
    monkeypatch.setattr(trainmod, "main", lambda argv: calls.append(list(argv)) or real(argv))
    assert expmod.main(SMALL + ["--out", out]) == 0
    assert calls[0][:1] == ["--resume"] and len(calls) == 2  # the stopped run resumed, the last one started
    keys = ("model", "seed", "epochs", "log_likelihood_per_step", "elbo_per_step", "kl_per_step")
    strip = lambda rows: [{k: r[k] for k in keys} for r in rows]
    assert strip(_rows(out)) == strip(_rows(finished))


def test_other_settings_in_the_same_folder_are_refused(finished, capsys):
    argv = list(SMALL)
    argv[argv.index("--epochs") + 1] = "3"
    assert expmod.main(argv + ["--out", finished]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "epochs 2 (now 3)" in err[0]


def test_a_bad_data_source_is_one_error_line(tmp_path, capsys):
    argv = list(SMALL)
    argv[argv.index("--data") + 1] = str(tmp_path / "missing.npz")
    assert expmod.main(argv + ["--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "missing.npz" in err[0]


def test_a_diverged_run_is_reported_and_left_out_of_the_means(tmp_path, monkeypatch):
    out = str(tmp_path / "diverged")
    real = trainmod.main
    monkeypatch.setattr(trainmod, "main", lambda argv: real(argv + ["--lr", "1e10"])
                        if "vrnn-gauss" in argv and argv[argv.index("--seed") + 1] == "1" else real(argv))
    assert expmod.main(SMALL + ["--out", out]) == 0
    status = {(r["model"], r["seed"]): r["status"] for r in _rows(out)}
    assert status[("vrnn-gauss", "1")] == "diverged" and status[("vrnn-gauss", "0")] == "ok"
    md = open(os.path.join(out, "table1.md")).read()
    assert "Diverged (stopped with exit 3, left out above): vrnn-gauss seed 1" in md
    assert md.split("| vrnn-gauss |")[1].split("\n")[0].rstrip().endswith("| 1 |")  # one seed counted


def test_quick_and_full_budgets_and_help(capsys):
    args = expmod.resolve(expmod.build_parser().parse_args(["table1", "--quick", "--epochs", "7"]))
    assert args.epochs == 7 and args.h_dim == expmod.QUICK["h_dim"] and args.out == os.path.join("runs", "table1-speech")
    full = expmod.resolve(expmod.build_parser().parse_args(["table1"]))
    assert (full.h_dim, full.patience, full.valid_draws) == (trainmod.DEFAULTS["h_dim"], trainmod.DEFAULTS["patience"],
                                                             trainmod.DEFAULTS["valid_draws"])
    with pytest.raises(SystemExit) as e:
        expmod.main(["--help"])
    assert e.value.code == 0 and "--split-seed" in capsys.readouterr().out
