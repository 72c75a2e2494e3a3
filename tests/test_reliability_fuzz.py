"""Issue 24, item 6 (kept by tests): a seeded fuzz of what a user hands the commands.

Four families of cases, drawn once from fixed seeds (the same cases, in the same order, on every run, so CI is
repeatable; set MINIVRNN_FUZZ_SEED to draw others locally):

- ``npz``: bad dataset files (dtypes, shapes, offsets, NaN/Inf, missing or raw members, groups, headers that
  declare huge arrays, damaged zip bytes), given to ``train --data`` and ``evaluate --data``;
- ``wav``: bad ``.wav`` folders (empty, odd or truncated data chunks, other rates, stereo, 8/24/32-bit and
  float formats, bytes that are no wav, empty and very short files), given to ``train --data``;
- ``ckpt``: one real checkpoint (trained once for the module), each case a corruption of one of its members
  or of its bytes, given to ``sample``, ``evaluate`` and ``train --resume``;
- ``flags``: combinations of impossible values for the commands' flags.

Every case runs the command in-process and must end in one of the promised ways (`check`): a clean success
(exit 0, and what it wrote is finite: a checkpoint that loads, samples.npy, the CSV), or one stderr line
starting ``error:`` with exit 2 (3 for a training that diverged, its last.npz loadable), or argparse's own
refusal (usage lines, then ``<prog>: error: ...``, SystemExit(2)); never a traceback: no exception other than
SystemExit may leave the command, and "Traceback" is printed nowhere. Where the outcome is certain (a missing
member, a NaN parameter...) the case also says which outcome it must be.
"""
import csv
import glob
import io
import json
import os
import pickle
import re
import shutil
import struct
import wave
import zipfile
from dataclasses import dataclass

import numpy as np
import pytest

from minivrnn import VRNNConfig, init_params
from minivrnn import evaluate as evaluatemod
from minivrnn import sample as samplemod
from minivrnn import train as trainmod
from minivrnn.checkpoint import CheckpointError, load_checkpoint
from minivrnn.data import DataError, load_dataset, read_wav

FUZZ_SEED = int(os.environ.get("MINIVRNN_FUZZ_SEED", "24"))  # issue 24; the cases below are this seed's
TRAIN = ["--model", "vrnn-gauss", "--z-dim", "2", "--h-dim", "4", "--feat-dim", "4", "--batch-size", "4",
         "--max-len", "10", "--epochs", "1", "--no-plots", "--seed", "0", "--frame-size", "8"]
RATE = 8000


# ---- running a command and judging its outcome ---------------------------------------------------------------

@dataclass
class Result:
    command: str
    code: object
    exited: bool  # True: the command raised SystemExit (argparse's refusal); False: it returned
    out: str
    err: str

    def __str__(self):
        how = "SystemExit" if self.exited else "returned"
        return f"{self.command} {how} {self.code!r}\n--- stdout:\n{self.out}\n--- stderr:\n{self.err}"


def run(main, argv, capsys):
    """Run a command in-process. An exception other than SystemExit propagates: the test fails on it."""
    capsys.readouterr()
    try:
        code, exited = main([str(a) for a in argv]), False
    except SystemExit as e:
        code, exited = e.code, True
    out, err = capsys.readouterr()
    return Result(main.__module__.rsplit(".", 1)[-1], code, exited, out, err)


USAGE_ERROR = re.compile(r"python -m minivrnn\.(train|sample|evaluate): error: \S")
PROGRESS = re.compile(r"epoch \d+/\d+:")  # tqdm's bar, when stderr is a terminal


def stderr_lines(err):
    lines = [line.split("\r")[-1].rstrip() for line in err.splitlines()]
    return [line for line in lines if line.strip() and not PROGRESS.match(line.strip())]


def check(result, *, expect=None, names=(), diverge_ok=False):
    """Assert one of the promised outcomes; returns "ok", "error", "usage" or "diverged".

    ``expect`` ("ok" or "error": an argparse refusal counts as one) pins the outcome where it is certain;
    ``names``: the error line must hold at least one of them (the file or the flag it is about)."""
    assert "Traceback" not in result.err + result.out, result
    lines = stderr_lines(result.err)
    if result.exited:
        assert result.code == 2, result
        assert lines and lines[0].startswith("usage: ") and USAGE_ERROR.match(lines[-1]), result
        assert all(line.startswith(("usage: ", " ")) for line in lines[:-1]), result
        outcome, line = "usage", lines[-1]
    elif result.code == 0:
        assert not any("error:" in line for line in lines), result
        outcome = "ok"
    else:
        assert result.code == 2 or (diverge_ok and result.code == 3), result
        assert len(lines) == 1 and lines[0].startswith("error: "), result
        outcome, line = ("error" if result.code == 2 else "diverged"), lines[0]
    if expect is not None:
        assert (outcome in ("error", "usage")) if expect == "error" else outcome == expect, result
    if outcome != "ok" and names:
        assert any(str(name) in line for name in names), (names, result)
    return outcome


def finite_run(out):
    """A training's outputs: last.npz loads (the loader checks every parameter is finite)."""
    ck = load_checkpoint(os.path.join(out, "last.npz"))
    assert all(np.isfinite(v).all() for v in ck["params"].values())
    return ck


def finite_samples(out, steps, n):
    xs = np.load(os.path.join(out, "samples.npy"))
    assert xs.shape[:2] == (steps, n) and np.isfinite(xs).all(), xs


def finite_evaluation(checkpoint, result):
    """evaluate's CSV (beside the checkpoint) holds finite numbers (what it prints may hold a NaN standard error
    over a single sequence, by design)."""
    stem = os.path.splitext(str(checkpoint))[0]
    paths = glob.glob(glob.escape(stem) + "-*.csv")
    assert len(paths) == 1, paths
    with open(paths[0], newline="") as f:
        rows = list(csv.reader(f))
    columns = [i for i, name in enumerate(rows[0]) if name.startswith(("elbo", "log_likelihood", "rec", "kl"))]
    assert len(rows) > 1 and columns, rows
    values = np.array([[float(row[i]) for i in columns] for row in rows[1:]])
    assert np.isfinite(values).all(), (rows, result)


def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npy_declaring(shape, dtype=np.float64, body=b"\0" * 24):
    """An .npy whose header declares ``shape`` while its body holds only ``body``."""
    buffer = io.BytesIO()
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, dtype))
    header["shape"] = shape
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + body


def write_zip(path, members):
    path.write_bytes(_zip_bytes(members))


def with_member(arrays, key, raw, suffix=".npy"):
    """The members of ``np.savez(**arrays)``, with ``key`` replaced by ``raw`` bytes."""
    return [(f"{k}.npy", npy_bytes(v)) for k, v in arrays.items() if k != key] + [(key + suffix, raw)]


def damage(raw, how, rng):
    """Damaged bytes of a file: "truncate" (cut at a random point), "flip" (1 to 8 random bytes changed),
    "zero" (a random run zeroed), "prefix" (junk before the archive)."""
    raw = bytearray(raw)
    if how == "truncate":
        return bytes(raw[: int(rng.integers(0, len(raw)))])
    if how == "flip":
        for i in rng.integers(0, len(raw), int(rng.integers(1, 9))):
            raw[i] ^= int(rng.integers(1, 256))
        return bytes(raw)
    if how == "zero":
        start = int(rng.integers(0, len(raw)))
        length = int(rng.integers(1, 200))
        raw[start : start + length] = bytes(len(raw[start : start + length]))
        return bytes(raw)
    if how == "prefix":
        return rng.bytes(int(rng.integers(1, 64))) + bytes(raw)
    raise AssertionError(how)


NOT_AN_ARCHIVE = {  # whole files that are no .npz at all
    "random-bytes": lambda rng: rng.bytes(int(rng.integers(1, 4000))),
    "text": lambda rng: b"data,offsets,kind\n1,2,3\n",
    "empty-file": lambda rng: b"",
    "single-npy": lambda rng: npy_bytes(rng.normal(size=(5, 2))),
    "pickle": lambda rng: pickle.dumps({"data": [1.0, 2.0]}),
    "empty-zip": lambda rng: _zip_bytes([]),
    "zip-of-text": lambda rng: _zip_bytes([("readme.txt", b"hello")]),
}


def _zip_bytes(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, raw in members:
            z.writestr(name, raw)
    return buffer.getvalue()


def _cast(value, dtype):
    """``value`` as ``dtype``, or an array of that dtype and shape where NumPy cannot convert."""
    if dtype == "object":
        return value.astype(object)
    if dtype == "structured":
        return np.zeros(value.shape, dtype=[("a", "<f4"), ("b", "<i4")])
    try:
        return value.astype(dtype)
    except (ValueError, TypeError):
        return np.zeros(value.shape, dtype=dtype)


# ---- (a) dataset .npz files ----------------------------------------------------------------------------------

def base_dataset(kind, rng):
    """A small, valid dataset of ``kind`` (8 to 12 sequences), as the arrays of its .npz."""
    n_seq = int(rng.integers(8, 13))
    if kind == "speech":
        lengths = rng.integers(40, 100, n_seq)
        data = np.round(rng.uniform(-0.5, 0.5, lengths.sum()) * 32767).astype(np.int16)
    elif kind == "handwriting":
        lengths = rng.integers(12, 30, n_seq)
        data = rng.normal(size=(lengths.sum(), 3)).astype(np.float32)
        data[:, 2] = rng.random(len(data)) < 0.2
    else:
        lengths = rng.integers(12, 30, n_seq)
        data = rng.normal(size=(lengths.sum(), int(rng.integers(1, 4)))).astype(rng.choice([np.float32, np.float64]))
    arrays = dict(data=data, offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), kind=np.array(kind),
                  group=rng.integers(0, 3, n_seq), group_names=np.array(["ann", "bob", "cy"]),
                  names=np.array([f"s{i}" for i in range(n_seq)]))
    if kind == "speech":
        arrays["sample_rate"] = np.array(RATE)
    return arrays


KINDS = ("series", "handwriting", "speech")
NPZ_DTYPES = ("str", "bytes", "object", "complex64", "bool", "int8", "int32", "uint64", "float16", "float32",
              "float64", "datetime64[s]", "structured")
OFFSET_FAULTS = ("last+1", "last-1", "first=1", "swapped", "repeated", "negative", "huge", "uint64-max", "float",
                 "single", "one-sequence")
GROUP_FAULTS = ("short", "long", "negative", "huge-id-named", "huge-id-unnamed", "float", "strings", "2-d", "bool",
                "names-short", "names-numbers", "seq-names-short", "seq-names-numbers")
SHAPE_FAULTS = ("scalar", "add-axis", "empty", "transpose", "columns")
VALUE_FAULTS = {"series": ("times-1e300", "times-1e-320", "constant", "times-1e150", "one-constant-column"),
                "handwriting": ("pen-0.5", "pen-2", "pen-negative"),
                "speech": ("float-beyond-1", "float-in-range", "silence")}


def npz_cases():
    """(id, spec, expected outcome of train) for every dataset case, drawn from the seed."""
    rng = np.random.default_rng([FUZZ_SEED, 1])
    cases = []

    def add(spec, expect, kind=None):
        kind = kind or str(rng.choice(KINDS))
        spec = dict(spec, kind=kind)
        detail = "-".join(str(v) for k, v in spec.items() if k not in ("op", "kind"))
        cases.append((f"{kind}-{spec['op']}" + (f"-{detail}" if detail else "") + f"-{len(cases)}", spec, expect))

    for kind in KINDS:
        add({"op": "control"}, "ok", kind)
    add({"op": "compressed"}, "ok", "series")
    for _ in range(18):
        kind = str(rng.choice(KINDS))
        members = ["data", "offsets", "kind", "group", "group_names", "names"] + ["sample_rate"] * (kind == "speech")
        member, dtype = str(rng.choice(members)), str(rng.choice(NPZ_DTYPES))
        add({"op": "dtype", "member": member, "dtype": dtype}, _dtype_expectation(kind, member, dtype), kind)
    for fault in SHAPE_FAULTS:
        for member in ("data", str(rng.choice(["offsets", "group", "kind", "names"]))):
            kind = str(rng.choice(KINDS))
            # every change of shape is refused, but two: a 0-d kind stays one string, and a series may have
            # more columns
            ok = (member, fault) == ("kind", "scalar") or (member, fault, kind) == ("data", "columns", "series")
            add({"op": "shape", "member": member, "fault": fault}, "ok" if ok else "error", kind)
    for fault in OFFSET_FAULTS:
        add({"op": "offsets", "fault": fault}, "error")
    for value in ("nan", "inf", "-inf", "nan", "inf", "-inf"):
        add({"op": "nonfinite", "value": value}, "error")
    for kind in KINDS:
        for fault in VALUE_FAULTS[kind]:
            add({"op": "values", "fault": fault},
                "ok" if fault in ("times-1e150", "one-constant-column", "float-in-range") else "error", kind)
    for member in ("data", "offsets", "kind", "sample_rate", "group", "group_names", "names"):
        kind = "speech" if member == "sample_rate" else str(rng.choice(KINDS))
        add({"op": "missing", "member": member},
            "error" if member in ("data", "offsets", "kind", "sample_rate") else "ok", kind)
    for value in ("video", "", "Series", "speech", "handwriting", "series", "two-strings", "number"):
        add({"op": "kind", "value": value}, "error", "series" if value != "series" else "speech")
    for fault in GROUP_FAULTS:
        add({"op": "group", "fault": fault}, "ok" if fault == "huge-id-unnamed" else "error")
    for member in ("data", "offsets", "kind", "group", "notes"):
        add({"op": "raw-member", "member": member, "suffix": str(rng.choice(["npy", "none"]))}, "error")
    for member, shape in (("data", (10**12,)), ("data", (10**6, 10**6)), ("offsets", (2**40,)), ("data", (10**9,)),
                          ("data", (2**62, 4))):
        add({"op": "declared-shape", "member": member, "shape": "x".join(map(str, shape))}, "error")
    for _ in range(3):
        add({"op": "bytes", "how": "truncate"}, "error")
    for how in ("flip", "flip", "flip", "flip", "zero", "zero", "prefix", "flip-compressed", "flip-compressed"):
        add({"op": "bytes", "how": how}, None)
    for what in NOT_AN_ARCHIVE:
        add({"op": "not-an-archive", "what": what}, "error")
    for n_seq in (1, 2, 3):
        add({"op": "few-sequences", "n": n_seq}, "ok" if n_seq == 3 else "error", "series")
    add({"op": "a-folder-named-npz"}, "error")
    add({"op": "wrong-suffix"}, "error")
    return cases


def _dtype_expectation(kind, member, dtype):
    """The outcome of training on a dataset whose ``member`` was cast to ``dtype`` (None: either is right)."""
    numeric_int = dtype in ("int8", "int32", "uint64")
    if member == "data":  # speech: int16 (not drawn) or floats in [-1, 1] (a cast of int16 samples is not)
        return "ok" if kind != "speech" and dtype in ("float16", "float32", "float64") else "error"
    if member in ("kind", "group_names", "names"):
        return "ok" if dtype == "str" else "error"
    if member == "offsets":
        return None if numeric_int else "error"  # (small integer types can wrap the offsets)
    if member == "group":
        return "ok" if numeric_int else "error"
    if member == "sample_rate":
        return None if numeric_int else "error"
    raise AssertionError(member)


def npz_content(spec, rng):
    """The file of one case: a dict of arrays (np.savez), a list of zip members, or raw bytes."""
    kind, op = spec["kind"], spec["op"]
    if op == "few-sequences":
        lengths = rng.integers(12, 30, spec["n"])
        return dict(data=rng.normal(size=(lengths.sum(), 1)), offsets=np.concatenate([[0], np.cumsum(lengths)]),
                    kind=np.array("series"))
    a = base_dataset(kind, rng)
    if op in ("control", "compressed", "a-folder-named-npz", "wrong-suffix"):
        return a
    if op == "dtype":
        a[spec["member"]] = _cast(a[spec["member"]], spec["dtype"])
        return a
    if op == "shape":
        m, fault = spec["member"], spec["fault"]
        v = a[m]
        if fault == "scalar":
            a[m] = v.reshape(-1)[0] if v.size else np.array(0.0)
        elif fault == "add-axis":
            a[m] = v[..., None]
        elif fault == "empty":
            a[m] = v.reshape(-1)[:0]
        elif fault == "transpose":
            a[m] = v.T if v.ndim == 2 else v[None]
        else:  # "columns": one column fewer or more
            a[m] = np.concatenate([v.reshape(len(v), -1)] * 2, axis=1) if v.ndim else v[None]
        return a
    if op == "offsets":
        o, n, fault = a["offsets"], len(a["data"]), spec["fault"]
        o = {"last+1": lambda: np.append(o[:-1], n + 1), "last-1": lambda: np.append(o[:-1], n - 1),
             "first=1": lambda: np.concatenate([[1], o[1:]]),
             "swapped": lambda: np.concatenate([o[:1], o[2:3], o[1:2], o[3:]]),
             "repeated": lambda: np.concatenate([o[:2], o[1:]]),
             "negative": lambda: np.concatenate([o[:1], [-5], o[2:]]),
             "huge": lambda: np.concatenate([o[:-1], [2**62]]),
             "uint64-max": lambda: np.array([0, 2**64 - 1, *o[2:].tolist()], dtype=np.uint64),
             "float": lambda: o.astype(np.float64), "single": lambda: o[:1],
             "one-sequence": lambda: np.array([0, n])}[fault]()
        a["offsets"] = o
        return a
    if op == "nonfinite":
        data = a["data"].astype(np.float64) / (32768.0 if kind == "speech" else 1.0)
        data.reshape(-1)[int(rng.integers(0, data.size))] = float(spec["value"])
        a["data"] = data
        return a
    if op == "values":
        fault, data = spec["fault"], a["data"]
        if fault.startswith("times-"):
            a["data"] = data.astype(np.float64) * float(fault[len("times-"):])
        elif fault == "constant":
            a["data"] = np.full_like(data, 3.0)
        elif fault == "one-constant-column":  # beside the varying ones
            a["data"] = np.concatenate([data, np.full((len(data), 1), 5.0, data.dtype)], axis=1)
        elif fault.startswith("pen-"):
            data[int(rng.integers(0, len(data))), 2] = {"pen-0.5": 0.5, "pen-2": 2.0, "pen-negative": -1.0}[fault]
        elif fault == "float-beyond-1":
            a["data"] = data / 32768.0 * 3.0
        elif fault == "float-in-range":
            a["data"] = (data / 32768.0).astype(np.float32)
        elif fault == "silence":
            a["data"] = np.zeros_like(data)
        return a
    if op == "missing":
        del a[spec["member"]]
        return a
    if op == "kind":
        a["kind"] = {"two-strings": np.array(["series", "series"]), "number": np.array(3)}.get(
            spec["value"], np.array(spec["value"]))
        return a
    if op == "group":
        n, fault = len(a["offsets"]) - 1, spec["fault"]
        g = a["group"]
        if fault == "short":
            a["group"] = g[:-1]
        elif fault == "long":
            a["group"] = np.append(g, 0)
        elif fault == "negative":
            g[int(rng.integers(0, n))] = -1
        elif fault.startswith("huge-id"):
            g[int(rng.integers(0, n))] = 2**63 - 1
            if fault == "huge-id-unnamed":
                del a["group_names"]
        elif fault == "float":
            a["group"] = g.astype(np.float64)
        elif fault == "strings":
            a["group"] = g.astype(str)
        elif fault == "2-d":
            a["group"] = g[:, None]
        elif fault == "bool":
            a["group"] = g.astype(bool)
        elif fault == "names-short":
            a["group"][0] = 2
            a["group_names"] = a["group_names"][:2]
        elif fault == "names-numbers":
            a["group_names"] = np.arange(3)
        elif fault == "seq-names-short":
            a["names"] = a["names"][:-1]
        elif fault == "seq-names-numbers":
            a["names"] = np.arange(n)
        return a
    if op == "raw-member":
        suffix = ".npy" if spec["suffix"] == "npy" else ""
        return with_member(a, spec["member"], b"not an array: " + rng.bytes(int(rng.integers(0, 64))), suffix)
    if op == "declared-shape":
        shape = tuple(int(s) for s in spec["shape"].split("x"))
        return with_member(a, spec["member"], npy_declaring(shape, a[spec["member"]].dtype))
    if op == "bytes":
        buffer = io.BytesIO()
        (np.savez_compressed if spec["how"] == "flip-compressed" else np.savez)(buffer, **a)
        return damage(buffer.getvalue(), spec["how"].split("-")[0], rng)
    if op == "not-an-archive":
        return NOT_AN_ARCHIVE[spec["what"]](rng)
    raise AssertionError(op)


def write_dataset(folder, spec, rng):
    """Write the case's file; returns its path."""
    suffix = {"wrong-suffix": ".txt"}.get(spec["op"], ".npz")
    path = folder / f"case{suffix}"
    if spec["op"] == "a-folder-named-npz":
        path.mkdir()
        return path
    content = npz_content(spec, rng)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        (np.savez_compressed if spec["op"] == "compressed" else np.savez)(path, **content)
    else:
        write_zip(path, content)
    return path


NPZ_CASES = npz_cases()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One real checkpoint (the shipped series, D = 1), and the arrays in it."""
    run_dir = tmp_path_factory.mktemp("fuzz-base") / "run"
    assert trainmod.main(["--data", "series", "--out", str(run_dir), *TRAIN]) == 0
    path = run_dir / "last.npz"
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    assert sorted(arrays) == sorted(CKPT_KEYS)  # the names the checkpoint cases below are drawn from
    return path, arrays


@pytest.mark.parametrize("case, spec, expect", NPZ_CASES, ids=[c[0] for c in NPZ_CASES])
def test_a_dataset_file_is_trained_on_or_refused_in_one_line(tmp_path, capsys, trained, case, spec, expect):
    rng = np.random.default_rng([FUZZ_SEED, 2, NPZ_CASES.index((case, spec, expect))])
    path = write_dataset(tmp_path, spec, rng)
    out = tmp_path / "run"
    result = run(trainmod.main, ["--data", path, "--out", out, *TRAIN], capsys)
    outcome = check(result, expect=expect, names=[path])
    if outcome == "ok":
        finite_run(out)
    else:  # refused before training: nothing written
        assert not (out / "last.npz").exists()
    # evaluate reads the file with the same loader: refused alike, or evaluated (finite) when it fits the model
    checkpoint = tmp_path / "model.npz"
    shutil.copy(trained[0], checkpoint)
    result = run(evaluatemod.main, [checkpoint, "--samples", "2", "--data", path], capsys)
    if check(result, expect="error" if outcome == "error" else None, names=[path]) == "ok":
        finite_evaluation(checkpoint, result)


# ---- (b) .wav folders ------------------------------------------------------------------------------------------

def wav_bytes(samples, rate=RATE, channels=1, width=2):
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(samples)
    return buffer.getvalue()


def good_wav(rng, n=None):
    n = int(rng.integers(40, 120)) if n is None else n
    return wav_bytes(np.round(rng.uniform(-0.5, 0.5, n) * 32767).astype("<i2").tobytes())


def patched(raw, offset, fmt, value):
    raw = bytearray(raw)
    raw[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(raw)


WAV_FAULTS = {  # name: (the bad file's bytes from rng, expected outcome)
    "odd-data-chunk": (lambda rng: _odd(good_wav(rng)), "error"),
    "truncated": (lambda rng: (lambda raw: raw[: int(rng.integers(1, len(raw) - 1))])(good_wav(rng)), "error"),
    "other-rate": (lambda rng: wav_bytes(good_wav(rng)[44:], rate=16000), "error"),
    "rate-0": (lambda rng: patched(good_wav(rng), 24, "<I", 0), "error"),
    "stereo": (lambda rng: wav_bytes(rng.bytes(400), channels=2), "error"),
    "channels-0": (lambda rng: patched(good_wav(rng), 22, "<H", 0), "error"),
    "8-bit": (lambda rng: wav_bytes(rng.bytes(100), width=1), "error"),
    "24-bit": (lambda rng: wav_bytes(rng.bytes(300), width=3), "error"),
    "32-bit-int": (lambda rng: wav_bytes(rng.bytes(400), width=4), "error"),
    "32-bit-float": (lambda rng: patched(wav_bytes(np.zeros(100, "<f4").tobytes(), width=4), 20, "<H", 3), "error"),
    "extensible": (lambda rng: patched(good_wav(rng), 20, "<H", 0xFFFE), "error"),
    "mp3-tag": (lambda rng: patched(good_wav(rng), 20, "<H", 0x55), "error"),
    "width-0": (lambda rng: patched(good_wav(rng), 34, "<H", 0), "error"),
    "random-bytes": (lambda rng: rng.bytes(int(rng.integers(1, 2000))), "error"),
    "text": (lambda rng: b"RIFF? no, a text file\n", "error"),
    "an-npz": (lambda rng: _zip_bytes([("data.npy", npy_bytes(np.zeros(3)))]), "error"),
    "zero-length": (lambda rng: b"", "error"),
    "header-only": (lambda rng: good_wav(rng, 0), "error"),
    "one-sample": (lambda rng: good_wav(rng, 1), "error"),
    "shorter-than-a-frame": (lambda rng: good_wav(rng, 7), "error"),
    "data-size-huge": (lambda rng: patched(good_wav(rng), 40, "<I", 2**32 - 2), "error"),
    "riff-size-huge": (lambda rng: patched(good_wav(rng), 4, "<I", 2**32 - 1), None),
    "junk-chunk-huge": (lambda rng: (lambda raw: raw[:12] + b"JUNK" + struct.pack("<I", 2**31) + raw[12:])(
        good_wav(rng)), "error"),
    "no-fmt-chunk": (lambda rng: (lambda raw: raw[:12] + raw[36:])(good_wav(rng)), "error"),
    "flipped-bytes": (lambda rng: damage(good_wav(rng), "flip", rng), None),
}


def _odd(raw):
    """One byte appended to the data chunk, with the RIFF and data sizes fixed to match."""
    raw = bytearray(raw) + b"\x01"
    raw[40:44] = struct.pack("<I", struct.unpack("<I", raw[40:44])[0] + 1)
    raw[4:8] = struct.pack("<I", len(raw) - 8)
    return bytes(raw)


WAV_LAYOUTS = {  # folder-level cases: name -> expected outcome
    "control": "ok",
    "groups-in-sub-folders": "ok",
    "upper-case-suffix": "ok",
    "a-folder-named-x.wav": "ok",
    "dangling-symlink": "ok",
    "symlink-loop": "ok",
    "empty-folder": "error",
    "no-wav-files": "error",
    "empty-sub-folder-only": "error",
    "one-file": "error",
    "two-files": "error",
}


def wav_cases():
    rng = np.random.default_rng([FUZZ_SEED, 3])
    cases = [(f"layout-{name}", {"layout": name}, expect) for name, expect in WAV_LAYOUTS.items()]
    for name, (_, expect) in WAV_FAULTS.items():
        repeats = 3 if name in ("truncated", "flipped-bytes") else 1
        for _ in range(repeats):
            where = str(rng.choice(["first", "middle", "last", "sub-folder"]))
            cases.append((f"{name}-{where}-{len(cases)}", {"fault": name, "where": where}, expect))
    return cases


def write_wav_folder(folder, spec, rng):
    folder.mkdir()
    layout = spec.get("layout", "control")
    n_files = {"one-file": 1, "two-files": 2}.get(layout, int(rng.integers(5, 9)))
    if layout in ("empty-folder", "empty-sub-folder-only", "no-wav-files"):
        n_files = 0
        if layout == "empty-sub-folder-only":
            (folder / "speaker").mkdir()
        if layout == "no-wav-files":
            (folder / "notes.txt").write_text("no audio here")
            (folder / "x.npz").write_bytes(b"PK")
    paths = []
    for i in range(n_files):
        sub = folder / f"speaker{i % 2}" if layout == "groups-in-sub-folders" or (
            spec.get("where") == "sub-folder" and i == 0) else folder
        sub.mkdir(exist_ok=True)
        paths.append(sub / f"{i:02d}.{'WAV' if layout == 'upper-case-suffix' else 'wav'}")
        paths[-1].write_bytes(good_wav(rng))
    if layout == "a-folder-named-x.wav":
        (folder / "x.wav").mkdir()
    if layout == "dangling-symlink":
        os.symlink(folder / "nowhere.wav", folder / "dangling.wav")
    if layout == "symlink-loop":
        os.symlink(folder, folder / "loop")
    if "fault" in spec:
        at = {"first": 0, "middle": len(paths) // 2, "last": -1, "sub-folder": 0}[spec["where"]]
        paths[at].write_bytes(WAV_FAULTS[spec["fault"]][0](rng))
    return folder


WAV_CASES = wav_cases()


@pytest.mark.parametrize("case, spec, expect", WAV_CASES, ids=[c[0] for c in WAV_CASES])
def test_a_wav_folder_is_trained_on_or_refused_in_one_line(tmp_path, capsys, case, spec, expect):
    rng = np.random.default_rng([FUZZ_SEED, 4, WAV_CASES.index((case, spec, expect))])
    folder = write_wav_folder(tmp_path / "wavs", spec, rng)
    out = tmp_path / "run"
    result = run(trainmod.main, ["--data", folder, "--out", out, *TRAIN], capsys)
    if check(result, expect=expect, names=[folder]) == "ok":
        finite_run(out)
        # and what it trained on sampled back: the checkpoint holds a usable sample rate
        result = run(samplemod.main, [out / "last.npz", "--steps", "3", "--n", "1", "--out", out / "s"], capsys)
        check(result, expect="ok")
        finite_samples(out / "s", 3, 1)
    else:
        assert not (out / "last.npz").exists()


# ---- (c) corrupted checkpoints ---------------------------------------------------------------------------------

BASE_CONFIG = VRNNConfig(x_dim=1, z_dim=2, h_dim=4, feat_dim=4, model="vrnn-gauss")  # TRAIN on the series
PARAMS = sorted(init_params(BASE_CONFIG, 0, np.float32))
FLOAT_KEYS = ([f"param/{k}" for k in PARAMS] + [f"adam/m/{k}" for k in PARAMS] + [f"adam/v/{k}" for k in PARAMS]
              + ["data/mean", "data/std"])
CKPT_KEYS = FLOAT_KEYS + ["config", "train_state", "adam/step", "data/scaled", "data/kind", "data/frame_size",
                          "data/sample_rate"]
OPTIONAL_KEYS = ("data/kind", "data/frame_size", "data/sample_rate")
CKPT_DTYPES = ("int32", "bool", "complex64", "str", "bytes", "object", "float16", "float64", "uint8", "structured")
JSON_VALUES = (-1, 0, 2.5, True, None, "abc", "4", [4], {"a": 1}, 10**30, 1e308, float("nan"), float("inf"),
               "lstm", "vrnn-gmm", "/no/such/data.npz")
CONFIG_FIELDS = ("x_dim", "z_dim", "h_dim", "feat_dim", "n_layers", "model", "n_mix", "sigma_min", "cell", "output")
STATE_KEYS = ("epoch", "batch", "step", "best", "bad_epochs", "history", "sums", "args", "data", "data/source",
              "data/frame_size", "data/seed", "data/heldout", "args/lr", "args/batch_size", "args/max_len",
              "args/model", "args/data", "args/clip", "args/kl_warmup", "args/seed", "args/dtype", "args/no_plots",
              "args/patience", "args/heldout", "args/valid_draws", "args/split_seed")
BAD_JSON = {"not-json": "{h_dim: 4", "empty": "", "list": "[1, 2]", "null": "null", "number": "42",
            "deep": "[" * 100000 + "]" * 100000}
COMMANDS = ("sample", "evaluate", "resume")


def ckpt_cases():
    """(id, spec, expected outcome) per corruption; each is run by the three commands."""
    rng = np.random.default_rng([FUZZ_SEED, 5])
    cases = []

    def add(spec, expect):
        detail = "-".join(str(v).replace("/", ".") for k, v in spec.items() if k != "op")
        cases.append((f"{spec['op']}-{detail}-{len(cases)}"[:90], spec, expect))

    add({"op": "control"}, "ok")
    for key in rng.choice(CKPT_KEYS, 10, replace=False):
        add({"op": "drop", "key": str(key)}, "ok" if key in OPTIONAL_KEYS else "error")
    for _ in range(12):
        key, dtype = str(rng.choice(CKPT_KEYS)), str(rng.choice(CKPT_DTYPES))
        expect = None
        if key in FLOAT_KEYS and not dtype.startswith("float"):
            expect = "error"
        elif key in ("config", "train_state", "data/kind") and dtype != "str":
            expect = "error"
        add({"op": "dtype", "key": key, "dtype": dtype}, expect)
    for _ in range(8):
        add({"op": "shape", "key": str(rng.choice(CKPT_KEYS)), "fault": str(rng.choice(SHAPE_FAULTS[:3]))}, "error")
    for value in ("nan", "inf", "-inf", "nan", "inf", "-inf", "nan", "inf"):
        add({"op": "nonfinite", "key": str(rng.choice(FLOAT_KEYS)), "value": value}, "error")
    for how in ("params-times-1e30", "one-param-1e38", "std-1e300", "mean-1e308", "sigma_min-1e300"):
        add({"op": "huge", "how": how}, None)
    for _ in range(12):
        add({"op": "config", "field": str(rng.choice(CONFIG_FIELDS)),
             "value": JSON_VALUES[int(rng.integers(0, len(JSON_VALUES)))]}, None)
    for _ in range(14):
        key, value = str(rng.choice(STATE_KEYS)), JSON_VALUES[int(rng.integers(0, len(JSON_VALUES)))]
        if key.startswith("args/") and (value is None or value == 10**30):
            # (a stored null flag has its own test below; 10**30 validation draws would never finish)
            value = -1
        add({"op": "state", "key": key, "value": value}, None)
    for entry in ("config", "train_state"):
        for name in BAD_JSON:
            add({"op": "json", "entry": entry, "what": name}, "error")
    for key in rng.choice(CKPT_KEYS, 3, replace=False):
        add({"op": "raw-member", "key": str(key)}, "error")
    for key, shape in (("param/phi_x.l0.W", (10**12,)), ("adam/m/gru.W_hr", (10**6, 10**6)), ("config", (2**40,))):
        add({"op": "declared-shape", "key": key, "shape": "x".join(map(str, shape))}, "error")
    for how in ("truncate", "truncate", "flip", "flip", "flip", "zero", "prefix"):
        add({"op": "bytes", "how": how}, "error" if how == "truncate" else None)
    for what in ("random-bytes", "empty-file", "single-npy", "pickle", "empty-zip"):
        add({"op": "not-an-archive", "what": what}, "error")
    for key, expect in (("notes", "ok"), ("data/extra", "ok"), ("param/bogus.W", "error"),
                        ("adam/m/bogus.W", "error")):
        add({"op": "extra-member", "key": key}, expect)
    for how, expect in (("step-negative", "error"), ("step-float", "error"), ("step-huge", "ok"),
                        ("moments-dropped", "error"), ("v-negative", "error")):
        add({"op": "adam", "how": how}, expect)
    for how, expect in (("kind-handwriting", "error"), ("kind-speech-frame-1", "ok"), ("kind-speech-rate-0", "error"),
                        ("scaled-false", "ok"), ("frame_size-negative", "error")):
        add({"op": "data", "how": how}, expect)
    add({"op": "a-folder"}, "error")
    return cases


def _json_change(arrays, entry, path, value):
    """Set ``path`` ("a" or "a/b") in the JSON ``entry`` to ``value``."""
    content = json.loads(str(arrays[entry]))
    *parents, last = path.split("/")
    target = content
    for key in parents:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[last] = value
    arrays[entry] = np.array(json.dumps(content))


def ckpt_content(spec, arrays, rng):
    """The corrupted checkpoint of one case: a dict of arrays, a list of zip members, or raw bytes."""
    a = {k: v.copy() for k, v in arrays.items()}
    op = spec["op"]
    if op == "control":
        return a
    if op == "drop":
        del a[spec["key"]]
    elif op == "dtype":
        a[spec["key"]] = _cast(a[spec["key"]], spec["dtype"])
    elif op == "shape":
        v, fault = a[spec["key"]], spec["fault"]
        a[spec["key"]] = {"scalar": lambda: v.reshape(-1)[0] if v.ndim else v[None],
                          "add-axis": lambda: v[None], "empty": lambda: v.reshape(-1)[:0]}[fault]()
    elif op == "nonfinite":
        v = a[spec["key"]]
        v.reshape(-1)[int(rng.integers(0, v.size))] = float(spec["value"])
    elif op == "huge":
        how = spec["how"]
        if how == "params-times-1e30":
            for k in PARAMS:
                a[f"param/{k}"] = a[f"param/{k}"] * np.float32(1e30)
        elif how == "one-param-1e38":
            a["param/dec.mu.W"] = np.full_like(a["param/dec.mu.W"], 3e38)
        elif how == "std-1e300":
            a["data/std"] = np.array([1e300])
        elif how == "mean-1e308":
            a["data/mean"] = np.array([1e308])
        else:
            _json_change(a, "config", "sigma_min", 1e300)
    elif op == "config":
        _json_change(a, "config", spec["field"], spec["value"])
    elif op == "state":
        _json_change(a, "train_state", spec["key"], spec["value"])
    elif op == "json":
        a[spec["entry"]] = np.array(BAD_JSON[spec["what"]])
    elif op == "raw-member":
        return with_member(a, spec["key"], rng.bytes(int(rng.integers(0, 64))))
    elif op == "declared-shape":
        shape = tuple(int(s) for s in spec["shape"].split("x"))
        return with_member(a, spec["key"], npy_declaring(shape, a[spec["key"]].dtype))
    elif op == "bytes":
        buffer = io.BytesIO()
        np.savez(buffer, **a)
        return damage(buffer.getvalue(), spec["how"], rng)
    elif op == "not-an-archive":
        return NOT_AN_ARCHIVE[spec["what"]](rng)
    elif op == "extra-member":
        a[spec["key"]] = np.array("a note") if spec["key"] == "notes" else np.zeros(3, np.float32)
    elif op == "adam":
        how = spec["how"]
        if how.startswith("step-"):
            a["adam/step"] = {"step-negative": np.array(-1), "step-float": np.array(1.5),
                              "step-huge": np.array(2**62)}[how]
        elif how == "moments-dropped":
            for k in [k for k in a if k.startswith(("adam/m/", "adam/v/"))]:
                del a[k]
        else:
            a[f"adam/v/{PARAMS[0]}"] = -np.abs(a[f"adam/v/{PARAMS[0]}"]) - 1
    elif op == "data":
        how = spec["how"]
        if how == "kind-handwriting":
            a["data/kind"] = np.array("handwriting")
        elif how.startswith("kind-speech"):
            a["data/kind"] = np.array("speech")
            a["data/frame_size"], a["data/sample_rate"] = np.array(1), np.array(0 if how.endswith("0") else RATE)
        elif how == "scaled-false":
            a["data/scaled"] = np.zeros(1, bool)
        else:
            a["data/frame_size"] = np.array(-3)
    return a


def write_checkpoint(path, spec, arrays, rng):
    content = ckpt_content(spec, arrays, rng)
    path.parent.mkdir(parents=True, exist_ok=True)
    if spec["op"] == "a-folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        np.savez(path, **content)
    else:
        write_zip(path, content)
    return path


CKPT_CASES = ckpt_cases()
def _ckpt_marks(spec, command):
    return []


CKPT_PARAMS = [pytest.param(command, case, spec, expect, id=f"{case}/{command}", marks=_ckpt_marks(spec, command))
               for case, spec, expect in CKPT_CASES for command in COMMANDS]


@pytest.mark.parametrize("command, case, spec, expect", CKPT_PARAMS)
def test_a_corrupted_checkpoint_is_used_or_refused_in_one_line(tmp_path, capsys, trained, command, case, spec,
                                                                 expect):
    rng = np.random.default_rng([FUZZ_SEED, 6, [c[0] for c in CKPT_CASES].index(case)])
    checkpoint = write_checkpoint(tmp_path / "run" / "last.npz", spec, trained[1], rng)
    names = [checkpoint] + ([spec["value"]] if isinstance(spec.get("value"), str) else [])  # (a stored data path)
    if command == "sample":
        out = tmp_path / "samples"
        result = run(samplemod.main, [checkpoint, "--steps", "4", "--n", "2", "--out", out], capsys)
        if check(result, expect=expect, names=names) == "ok":
            finite_samples(out, 4, 2)
        else:
            assert not out.exists()
    elif command == "evaluate":
        result = run(evaluatemod.main, [checkpoint, "--samples", "2"], capsys)
        if check(result, expect=expect, names=names + ["data_samples"]) == "ok":
            finite_evaluation(checkpoint, result)
    else:
        before = checkpoint.read_bytes() if checkpoint.is_file() else None
        result = run(trainmod.main, ["--resume", "--out", checkpoint.parent, "--epochs", "2"], capsys)
        outcome = check(result, expect=expect, names=names, diverge_ok=True)
        if outcome in ("ok", "diverged"):
            finite_run(checkpoint.parent)
        else:  # refused: the corrupted file is left as it was
            assert (checkpoint.read_bytes() if checkpoint.is_file() else None) == before


# ---- (d) flag sets ----------------------------------------------------------------------------------------------

# ("--" as a value, --epochs=--, has its own test below: argparse hands the option an empty list)
BAD_INT = ("-1", "0", "nan", "inf", "abc", "", "1.5", "1e3", "0x10", "-0", " ", "3x")
BAD_FLOAT = ("-1", "0", "nan", "-inf", "abc", "", "-0.0", "1e-400", "0x1p3", "1e400")
BAD_SEED = ("-1", "nan", "abc", "", "1.5", "-0", "9" * 400)
TRAIN_FLAGS = {  # flag: values to draw (the impossible ones, and a few valid ones that bound the run's work)
    "--z-dim": BAD_INT + ("3",), "--h-dim": BAD_INT + ("5",), "--feat-dim": BAD_INT + ("3",),
    "--n-layers": BAD_INT + ("2",), "--n-mix": BAD_INT + ("3",),
    "--sigma-min": BAD_FLOAT + ("0.5", "1e-300", "1e300", "inf"), "--frame-size": BAD_INT + ("1", "10" * 10),
    "--epochs": BAD_INT + ("1", "2"), "--batch-size": BAD_INT + ("1", "10" * 10),
    "--max-len": BAD_INT + ("1", "10" * 10),
    "--lr": BAD_FLOAT + ("inf", "1e300", "1e-300"), "--clip": BAD_FLOAT + ("inf", "1e-300"),
    "--kl-warmup": BAD_SEED + ("0", "10" * 10), "--patience": BAD_INT + ("1", "10" * 10),
    "--valid-draws": BAD_INT + ("1", "2"), "--seed": BAD_SEED + ("0", "9" * 30),
    "--split-seed": BAD_SEED + ("1", "9" * 30),
    "--model": ("vrnn", "", "VRNN-GAUSS", "rnn-gmm", "vrnn-i-gauss"), "--cell": ("rnn", "", "lstm"),
    "--dtype": ("float16", "int", "float64"), "--heldout": ("speaker", "", "group"),
    "--data": ("/no/such/data.npz", "", "series", "speech.npz", "@folder", "@text-file"),
    "--out": ("", "@text-file", "@under-a-file"),
}
SAMPLE_FLAGS = {"--steps": BAD_INT + ("1", "10" * 8), "--n": BAD_INT + ("1", "10" * 8),
                "--seed": BAD_SEED + ("9" * 30,), "--out": ("", "@text-file", "@under-a-file"),
                "checkpoint": ("@good", "/no/such/last.npz", "", "@folder", "@text-file")}
EVALUATE_FLAGS = {"--samples": BAD_INT + ("1", "10" * 5), "--batch-size": BAD_INT + ("1", "10" * 10),
                  "--seed": BAD_SEED + ("9" * 30,), "--split": ("testing", "", "valid", "train"),
                  "--data": ("/no/such/data.npz", "", "handwriting", "series", "@folder", "@text-file"),
                  "checkpoint": ("@good", "/no/such/last.npz", "", "@folder", "@text-file")}
FLAG_TABLES = {"train": (TRAIN_FLAGS, 50), "sample": (SAMPLE_FLAGS, 30), "evaluate": (EVALUATE_FLAGS, 30)}
EXTRA_ARGS = {"train": (("--bogus",), ("--epochs",), ("--lr", "1", "--lr"), ("extra-positional",)),
              "sample": (("--bogus",), ("--steps",), ("extra-positional",)),
              "evaluate": (("--bogus",), ("--samples",), ("extra-positional",))}


def flag_cases():
    rng = np.random.default_rng([FUZZ_SEED, 7])
    cases = []
    for command, (table, count) in FLAG_TABLES.items():
        names = list(table)
        for i in range(count):
            chosen = rng.choice(names, int(rng.integers(1, 4)), replace=False)
            flags = [(str(n), str(rng.choice(table[n]))) for n in chosen]
            extras = EXTRA_ARGS[command]
            extra = extras[int(rng.integers(0, len(extras)))] if i % 10 == 9 else ()
            label = ",".join(f"{n}={v[:12]}" for n, v in flags) + ("," + " ".join(extra) if extra else "")
            cases.append((f"{command}:{label}-{len(cases)}", command, flags, extra))
    return cases


def resolve_value(value, tmp_path, trained):
    """Placeholders: "@good" a copy of the trained checkpoint, "@folder" a folder, "@text-file" a text file,
    "@under-a-file" a path under a regular file."""
    text = tmp_path / "notes.txt"
    text.write_text("not an array\n")
    if value == "@good":
        path = tmp_path / "model.npz"
        shutil.copy(trained[0], path)
        return str(path)
    return {"@folder": str(tmp_path), "@text-file": str(text), "@under-a-file": str(text / "run")}.get(value, value)


FLAG_CASES = flag_cases()


@pytest.mark.parametrize("case, command, flags, extra", FLAG_CASES, ids=[c[0] for c in FLAG_CASES])
def test_impossible_flag_values_are_refused_in_one_line(tmp_path, capsys, trained, case, command, flags, extra):
    values = {name: resolve_value(value, tmp_path, trained) for name, value in flags}
    argv = []
    if command == "train":
        argv = ["--data", "series", *TRAIN, "--out", tmp_path / "run"]
        main = trainmod.main
    else:
        argv = [values.pop("checkpoint", None) or resolve_value("@good", tmp_path, trained)]
        if command == "sample":
            argv += ["--steps", "4", "--n", "2", "--out", tmp_path / "samples"]
            main = samplemod.main
        else:
            argv += ["--samples", "2"]
            main = evaluatemod.main
    for name, value in values.items():
        argv += [f"{name}={value}"]  # (the = form: a value such as "-1" or "--" is not read as a flag)
    argv += list(extra)
    result = run(main, argv, capsys)
    # the error names the flag (as given, or as its field: --sigma-min, sigma_min), or the path it holds
    names = ([n for n, _ in flags if n != "checkpoint"] + [n.lstrip("-").replace("-", "_") for n, _ in flags]
             + [v for v in values.values() if "/" in v] + ([argv[0]] if command != "train" else [])
             + (["arguments", "argument"] if extra else []))
    outcome = check(result, names=names, diverge_ok=command == "train")
    if outcome == "ok":
        if command == "train":
            finite_run(tmp_path / "run" if "--out" not in values else values["--out"])
        elif command == "sample":
            out = values.get("--out", str(tmp_path / "samples")) or os.path.dirname(argv[0])
            finite_samples(out, *[int(v) for v in (values.get("--steps", "4"), values.get("--n", "2"))])
        else:
            finite_evaluation(argv[0], result)


# ---- focused regressions: what the fuzz found ---------------------------------------------------------------

def _one_error_line(capsys, *words):
    err = capsys.readouterr().err
    lines = stderr_lines(err)
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert str(word) in lines[0], (word, lines[0])
    return lines[0]


def _dataset_members(rng):
    return [(f"{k}.npy", npy_bytes(v)) for k, v in base_dataset("series", rng).items() if k != "data"]


def test_an_npz_member_whose_header_declares_a_huge_array_is_one_line(tmp_path, capsys):
    """A header declaring 10**12 floats over a body of 24 bytes: NumPy tries to allocate 7 TiB (MemoryError)."""
    path = tmp_path / "huge.npz"
    write_zip(path, _dataset_members(np.random.default_rng(0)) + [("data.npy", npy_declaring((10**12,)))])
    with pytest.raises(DataError, match=r"key 'data' does not fit in memory \(.*7\.28 TiB.*\); a damaged file"):
        load_dataset(path)
    path = tmp_path / "short.npz"  # a header declaring 10**9 (allocated lazily), then the body ends
    write_zip(path, _dataset_members(np.random.default_rng(0)) + [("data.npy", npy_declaring((10**9,)))])
    with pytest.raises(DataError, match="key 'data' is not a readable .npy array .*EOF"):
        load_dataset(path)
    checkpoint = tmp_path / "ck.npz"
    write_zip(checkpoint, [("config.npy", npy_declaring((10**12,)))])
    with pytest.raises(CheckpointError, match=r"config: does not fit in memory"):
        load_checkpoint(checkpoint)


def _compressed_with_damaged_stream(path, arrays, member):
    """np.savez_compressed, then bytes inside ``member``'s deflate stream changed (its CRC is never reached)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    raw = bytearray(buffer.getvalue())
    start = raw.find(f"{member}.npy".encode()) + len(member) + 4  # the local header's name, then the stream
    for i in range(start, start + 40):
        raw[i] ^= 0x5A
    path.write_bytes(bytes(raw))
    return path


def _unsupported_compression(path, arrays):
    """An archive whose central directory names compression method 99 (zipfile cannot read it)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    raw = bytearray(buffer.getvalue())
    at = raw.find(b"PK\x01\x02")  # the first central directory entry; its method is at offset 10
    raw[at + 10 : at + 12] = struct.pack("<H", 99)
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("damage_kind", ["damaged-deflate-stream", "unsupported-compression-method"])
def test_an_unreadable_archive_member_is_one_line(tmp_path, capsys, trained, damage_kind):
    """zlib.error and NotImplementedError came out of both loaders as tracebacks."""
    arrays = base_dataset("series", np.random.default_rng(0))
    data = tmp_path / "data.npz"
    if damage_kind == "damaged-deflate-stream":
        _compressed_with_damaged_stream(data, arrays, "data")
    else:
        _unsupported_compression(data, arrays)
    word = "error" if damage_kind == "damaged-deflate-stream" else "compression method"
    with pytest.raises(DataError, match=f"is unreadable .*{word}"):
        load_dataset(data)
    assert trainmod.main(["--data", str(data), "--out", str(tmp_path / "run"), *TRAIN]) == 2
    _one_error_line(capsys, data, "unreadable")
    checkpoint = tmp_path / "ck.npz"
    if damage_kind == "damaged-deflate-stream":
        _compressed_with_damaged_stream(checkpoint, trained[1], "config")
    else:
        _unsupported_compression(checkpoint, trained[1])
    with pytest.raises(CheckpointError, match=f"not a readable minivrnn checkpoint .*{word}"):
        load_checkpoint(checkpoint)
    assert samplemod.main([str(checkpoint), "--out", str(tmp_path / "s")]) == 2
    _one_error_line(capsys, checkpoint, "not a readable minivrnn checkpoint")


def test_a_wav_chunk_larger_than_the_file_is_one_line(tmp_path):
    """wave's chunk reader raises a bare RuntimeError for a chunk that runs past the RIFF chunk holding it."""
    raw = good_wav(np.random.default_rng(0))
    path = tmp_path / "junk.wav"
    path.write_bytes(raw[:12] + b"JUNK" + struct.pack("<I", 2**31) + raw[12:])
    with pytest.raises(DataError, match="not a readable PCM .wav file .*more bytes than the file holds"):
        read_wav(path)


def test_a_wav_with_sample_rate_0_is_refused(tmp_path, capsys):
    """It used to train (exit 0) into a checkpoint that no command could load (data/sample_rate is 0)."""
    folder = tmp_path / "wavs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        (folder / f"{i}.wav").write_bytes(patched(good_wav(rng), 24, "<I", 0))
    with pytest.raises(DataError, match="sample rate 0 Hz"):
        read_wav(folder / "0.wav")
    assert trainmod.main(["--data", str(folder), "--out", str(tmp_path / "run"), *TRAIN]) == 2
    _one_error_line(capsys, folder / "0.wav", "sample rate 0 Hz")
    assert not (tmp_path / "run" / "last.npz").exists()


@pytest.mark.parametrize("entry", ["config", "train_state"])
def test_a_checkpoint_json_nested_too_deeply_is_one_line(tmp_path, capsys, trained, entry):
    """json.loads raises RecursionError (not a ValueError) on arrays nested 100,000 deep."""
    arrays = dict(trained[1])
    arrays[entry] = np.array("[" * 100000 + "]" * 100000)
    path = tmp_path / "deep.npz"
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match=f"{entry}: JSON nested too deeply"):
        load_checkpoint(path)
    assert evaluatemod.main([str(path), "--samples", "2"]) == 2
    _one_error_line(capsys, path, entry)


@pytest.mark.parametrize("how", ["params-times-1e30", "std-1e300"])
def test_sample_refuses_to_write_non_finite_samples(tmp_path, capsys, trained, how):
    """Finite but absurd checkpoints (the loader takes them): the samples were NaN (parameters times 1e30) or Inf
    (data/std of 1e300), written with exit 0. Now one error line, and nothing written."""
    path = write_checkpoint(tmp_path / "ck.npz", {"op": "huge", "how": how}, trained[1], np.random.default_rng(0))
    out = tmp_path / "samples"
    assert samplemod.main([str(path), "--steps", "4", "--n", "2", "--out", str(out)]) == 2
    word = "generated NaN or Inf" if how.startswith("params") else "overflow once data/mean and data/std"
    _one_error_line(capsys, path, word, "nothing written")
    assert not out.exists()


def test_an_empty_data_path_is_refused_rather_than_searched(tmp_path, capsys):
    """``--data ""`` was Path(""), the current folder: searched (recursively) for .wav files."""
    with pytest.raises(DataError, match="an empty path"):
        load_dataset("")
    assert trainmod.main(["--data", "", "--out", str(tmp_path / "run"), *TRAIN]) == 2
    _one_error_line(capsys, "''", "an empty path")


@pytest.mark.parametrize("command, flag", [
    pytest.param("sample", "--n", id="sample"),
    pytest.param("train", "--epochs", id="train"),
    pytest.param("evaluate", "--samples", id="evaluate"),
])
def test_an_option_given_double_dash_as_its_value_is_argparses_error(tmp_path, capsys, trained, command, flag):
    main = {"sample": samplemod.main, "evaluate": evaluatemod.main, "train": trainmod.main}[command]
    checkpoint = tmp_path / "model.npz"
    shutil.copy(trained[0], checkpoint)
    argv = (["--data", "series", *TRAIN, "--out", tmp_path / "run"] if command == "train"
            else [checkpoint, "--out", tmp_path / "s"] if command == "sample" else [checkpoint])
    result = run(main, [*argv, f"{flag}=--"], capsys)
    assert check(result, expect="error", names=[flag]) == "usage"


# train_state/args/<flag> = null in last.npz, then --resume: each was once passed on as None (a ValueError,
# a TypeError, an error blaming the data, or float64 training in silence for dtype)
STORED_NULL = ("frame_size", "kl_warmup", "seed", "heldout", "dtype", "cell")


@pytest.mark.parametrize("flag", STORED_NULL)
def test_a_flag_stored_as_null_is_refused_on_resume(tmp_path, capsys, trained, flag):
    arrays = dict(trained[1])
    _json_change(arrays, "train_state", f"args/{flag}", None)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    np.savez(run_dir / "last.npz", **arrays)
    result = run(trainmod.main, ["--resume", "--out", run_dir, "--epochs", "2"], capsys)
    check(result, expect="error", names=[f"train_state/args/{flag}"])


@pytest.mark.parametrize("flags", [
    pytest.param(["--h-dim", "1000000000000"], id="h-dim-1e12"),
    pytest.param(["--z-dim", "1000000000000"], id="z-dim-1e12"),
    pytest.param(["--feat-dim", "1000000000000"], id="feat-dim-1e12"),
    pytest.param(["--model", "vrnn-gmm", "--n-mix", "1000000000000"], id="n-mix-1e12"),
    pytest.param(["--h-dim", "9" * 400], id="h-dim-400-digits"),
])
def test_train_refuses_a_model_size_that_cannot_be_allocated(tmp_path, capsys, flags):
    result = run(trainmod.main, ["--data", "series", *TRAIN, "--out", tmp_path / "run", *flags], capsys)
    check(result, expect="error", names=[flags[-2]])
