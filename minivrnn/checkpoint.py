"""Checkpoints: one ``.npz`` holding the parameters, the config, the optimizer and the training state.

Loadable by plain NumPy: ``np.load(path)`` gives ``param/<name>`` arrays (names as in the public contract),
``config`` (a JSON string), ``adam/...`` arrays, ``train_state`` (JSON) and ``data/...`` arrays (the
normalisation statistics). Written atomically: to a temporary file in the same folder, then renamed, so a
crash or Ctrl-C never leaves a half-written checkpoint behind.
"""
import json
import os
import zipfile
import zlib
from dataclasses import asdict
from dataclasses import fields as dataclass_fields

import numpy as np

from .files import atomic_file
from .model import VRNNConfig


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or incomplete (the message names the file)."""


def save_checkpoint(path, params, config, *, optimizer_arrays=None, train_state=None, data_arrays=None):
    arrays = {f"param/{k}": v for k, v in params.items()}
    arrays["config"] = np.array(json.dumps(asdict(config)))
    arrays["train_state"] = np.array(json.dumps(train_state or {}))
    arrays.update(optimizer_arrays or {})
    arrays.update({f"data/{k}": v for k, v in (data_arrays or {}).items()})
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with atomic_file(path, prefix=".checkpoint-", suffix=".npz") as tmp:  # an earlier file is kept on failure
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


# Entries of a checkpoint's training state (train.py writes them) and the JSON type each must have.
_COUNTERS = ("epoch", "batch", "step", "bad_epochs")  # integers >= 0
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # what the engines compute in
_DATA_KINDS = ("speech", "handwriting", "series")  # data.SHIPPED (data.py imports nothing from here)
_HELDOUT = ("utterance", "group")  # data.HELDOUT


def _fail(path, entry, problem):
    """The one-line CheckpointError: ``"<file>: <entry>: <problem>"``."""
    raise CheckpointError(f"{path}: {entry}: {' '.join(str(problem).split())}")


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def load_checkpoint(path):
    """Returns a dict with ``params``, ``config``, ``optimizer_arrays``, ``train_state``, ``data_arrays``.

    Checked as strictly as a dataset (data.py): every entry an ``.npy`` array; the config's fields (types and
    ranges, via VRNNConfig); every parameter present, of its config's shape, float32 or float64 (one dtype for
    all), finite; the Adam state (a step count, and then every moment of every parameter, of its shape and
    finite); the training state's structure; the normalisation arrays (finite mean, finite positive std, one
    per dimension) and the data kind against the model's output (pen strokes need the pen output). Any
    problem raises CheckpointError with one line naming the file and the entry.
    """
    path = str(path)
    arrays = _read_arrays(path)
    config = _check_config(path, arrays)
    train_state = _check_train_state(path, arrays)
    params = _check_params(path, arrays, config)
    return {
        "params": params,
        "config": config,
        "optimizer_arrays": _check_adam(path, arrays, params),
        "train_state": train_state,
        "data_arrays": _check_data_arrays(path, arrays, config),
    }


def _read_arrays(path):
    """Every entry of the .npz as an array (never unpickling anything)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive; anything else np.load would call pickle
            raise CheckpointError(f"{path}: not a readable minivrnn checkpoint (not an .npz / zip file)")
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as f:
            for key in f.files:
                try:
                    value = f[key]
                except ValueError as e:  # an object array (pickle refused) or a malformed .npy header
                    _fail(path, key, f"not a plain numeric or string array ({e})")
                except MemoryError as e:  # its header declares more than memory holds (a damaged file)
                    _fail(path, key, f"does not fit in memory ({e}); a damaged file")
                if not isinstance(value, np.ndarray):  # np.load hands a member that is no .npy over as bytes
                    _fail(path, key, "not an .npy array (the archive member holds raw bytes)")
                arrays[key] = value
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, zlib.error) as e:
        # (NotImplementedError: a compression method zipfile cannot read; zlib.error: a damaged compressed member)
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path}: not a readable minivrnn checkpoint ({type(e).__name__}: {e})") from None
    return arrays


def _json_entry(path, arrays, key):
    if key not in arrays:
        _fail(path, key, "missing (every minivrnn checkpoint has 'config' and 'train_state')")
    value = arrays[key]
    if value.dtype.kind != "U" or value.ndim != 0:
        _fail(path, key, f"expected a single JSON string, got {value.dtype} of shape {value.shape}")
    try:
        return json.loads(str(value))
    except ValueError as e:
        _fail(path, key, f"not valid JSON ({e})")
    except RecursionError:  # arrays or objects nested thousands deep: no checkpoint writes that
        _fail(path, key, "JSON nested too deeply to read")


def _check_config(path, arrays):
    fields = _json_entry(path, arrays, "config")
    if not isinstance(fields, dict):
        _fail(path, "config", f"expected a JSON object of VRNNConfig fields, got {type(fields).__name__}")
    known = {f.name for f in dataclass_fields(VRNNConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        _fail(path, "config", f"unknown field {unknown[0]!r} (VRNNConfig has {', '.join(sorted(known))})")
    if "x_dim" not in fields:
        _fail(path, "config", "missing field 'x_dim'")
    try:
        return VRNNConfig(**fields)
    except ValueError as e:  # VRNNConfig's message names the field: "h_dim: expected ..."
        _fail(path, "config", e)


def _check_train_state(path, arrays):
    """The training state's structure: each entry train.py writes, when present, of the right JSON type."""
    state = _json_entry(path, arrays, "train_state")
    if not isinstance(state, dict):
        _fail(path, "train_state", f"expected a JSON object, got {type(state).__name__}")
    for key in _COUNTERS:
        if key in state and not (_is_int(state[key]) and state[key] >= 0):
            _fail(path, f"train_state/{key}", f"expected an integer >= 0, got {state[key]!r}")
    if "best" in state and state["best"] is not None and not _is_real(state["best"]):
        _fail(path, "train_state/best", f"expected a number or null, got {state['best']!r}")
    if "history" in state and not (isinstance(state["history"], list)
                                   and all(isinstance(r, dict) for r in state["history"])):
        _fail(path, "train_state/history", "expected a list of JSON objects (one per epoch)")
    if "sums" in state and not (isinstance(state["sums"], list) and len(state["sums"]) == 5
                                and all(_is_real(s) for s in state["sums"])):
        _fail(path, "train_state/sums", f"expected a list of 5 numbers, got {state['sums']!r}")
    if "args" in state and not (isinstance(state["args"], dict) and all(
            v is None or isinstance(v, (str, int, float, bool)) for v in state["args"].values())):
        _fail(path, "train_state/args", "expected a JSON object of flag values (strings, numbers, booleans)")
    if "data" in state:
        _check_data_source(path, state["data"])
    return state


def _check_data_source(path, data):
    """``train_state["data"]``: where the run's data came from (evaluate reloads the same splits)."""
    if not isinstance(data, dict):
        _fail(path, "train_state/data", f"expected a JSON object, got {type(data).__name__}")
    if "source" in data and not isinstance(data["source"], str):
        _fail(path, "train_state/data/source", f"expected a string (a data name or path), got {data['source']!r}")
    if "frame_size" in data and not (_is_int(data["frame_size"]) and data["frame_size"] >= 1):
        _fail(path, "train_state/data/frame_size", f"expected a positive integer, got {data['frame_size']!r}")
    if "seed" in data and not (_is_int(data["seed"]) and data["seed"] >= 0):
        _fail(path, "train_state/data/seed", f"expected an integer >= 0, got {data['seed']!r}")
    if "heldout" in data and data["heldout"] not in _HELDOUT:
        _fail(path, "train_state/data/heldout", f"expected one of {', '.join(_HELDOUT)}, got {data['heldout']!r}")


def _check_float_array(path, key, value, shape):
    if value.dtype.kind != "f":
        _fail(path, key, f"expected a real floating-point array, got {value.dtype}")
    if value.dtype not in _FLOAT_DTYPES:
        _fail(path, key, f"expected float32 or float64, got {value.dtype}")
    if value.shape != shape:
        _fail(path, key, f"has shape {value.shape}, expected {shape}")
    if not np.all(np.isfinite(value)):
        _fail(path, key, "holds NaN or Inf")
    return np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("="))  # native order for the kernels


def _check_params(path, arrays, config):
    stored = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    _check_sizes_fit(path, stored, config)
    from .model import init_params  # the expected names and shapes for this config

    expected = init_params(config, 0, np.float64)
    params = {}
    for name, value in expected.items():
        if name not in stored:
            _fail(path, f"param/{name}", f"missing (a {config.model} with a {config.cell} cell and "
                                         f"{config.output_kind} output has it)")
        params[name] = _check_float_array(path, f"param/{name}", stored[name], value.shape)
    extra = sorted(set(stored) - set(expected))
    if extra:
        _fail(path, f"param/{extra[0]}", f"not a parameter of this config ({config.model}, {config.cell}, "
                                         f"{config.output_kind} output)")
    dtypes = sorted({str(v.dtype) for v in params.values()})
    if len(dtypes) > 1:
        name = next(k for k, v in params.items() if str(v.dtype) != str(params["phi_x.l0.W"].dtype))
        _fail(path, f"param/{name}", f"is {params[name].dtype} but param/phi_x.l0.W is "
                                     f"{params['phi_x.l0.W'].dtype}; every parameter needs one dtype")
    return params


def _check_sizes_fit(path, stored, config):
    """Before building the expected parameters: the config's sizes must be those of the stored arrays, so
    that a config claiming h_dim = 10**9 is refused here rather than allocated."""
    def dims(name):
        value = stored.get(name)
        return value.shape if isinstance(value, np.ndarray) else None

    anchors = [("phi_x.l0.W", (config.x_dim, config.feat_dim), "x_dim and feat_dim"),
               (f"{config.cell}.W_h{'r' if config.cell == 'gru' else 'i'}", (config.h_dim, config.h_dim), "h_dim")]
    if config.latent:
        anchors.append(("phi_z.l0.W", (config.z_dim, config.feat_dim), "z_dim and feat_dim"))
    if config.output_kind != "gauss":
        anchors.append(("dec.logits.W", (config.feat_dim, config.n_mix), "n_mix"))
    for name, shape, what in anchors:
        if dims(name) != shape:
            found = "missing" if dims(name) is None else f"of shape {dims(name)}"
            _fail(path, f"param/{name}", f"{found}, but the config ({what}) expects {shape}")
    if config.n_layers > len(stored):
        _fail(path, "config", f"n_layers = {config.n_layers}, but the checkpoint holds only {len(stored)} "
                              f"parameters")


def _check_adam(path, arrays, params):
    """The optimizer state: ``adam/step``, and (once a step was taken) ``adam/m/<name>`` and ``adam/v/<name>``
    for every parameter, of its shape, finite (v >= 0). A checkpoint may hold no optimizer state at all."""
    adam = {k: v for k, v in arrays.items() if k.startswith("adam/")}
    if not adam:
        return {}
    if "adam/step" not in adam:
        _fail(path, "adam/step", "missing (the checkpoint holds Adam moments but no step count)")
    step = adam["adam/step"]
    if step.ndim != 0 or step.dtype.kind not in "iu" or int(step) < 0:
        _fail(path, "adam/step", f"expected one integer >= 0, got {step.dtype} {step.tolist()!r}")
    out = {"adam/step": step}
    moments = {k for k in adam if k != "adam/step"}
    if int(step) == 0 and not moments:  # saved before the first update (e.g. a NaN loss at step 0)
        return out
    for name, value in params.items():
        for which in ("m", "v"):
            key = f"adam/{which}/{name}"
            if key not in adam:
                _fail(path, key, f"missing (Adam has taken {int(step)} steps: every parameter needs both "
                                 f"moments)")
            out[key] = _check_float_array(path, key, adam[key], value.shape)
            if which == "v" and np.any(out[key] < 0):
                _fail(path, key, "holds a negative second moment")
    extra = sorted(moments - set(out))
    if extra:
        _fail(path, extra[0], "not a moment of any parameter of this config")
    return out


def _check_data_arrays(path, arrays, config):
    """The normalisation statistics: ``mean``, ``std``, ``scaled`` (one per dimension; std finite and > 0),
    and ``kind`` (which must match the output: pen strokes need the pen output), ``frame_size``,
    ``sample_rate`` when present. A checkpoint may hold none of them (no normalisation is then undone)."""
    data = {k[len("data/"):]: v for k, v in arrays.items() if k.startswith("data/")}
    if not data:
        return {}
    D = config.x_dim
    for key in ("mean", "std", "scaled"):
        if key not in data:
            _fail(path, f"data/{key}", f"missing (the normalisation needs data/mean, data/std and data/scaled; "
                                       f"it has {', '.join('data/' + k for k in sorted(data))})")
    if data["mean"].dtype.kind != "f" or data["mean"].shape != (D,):
        _fail(path, "data/mean", f"expected x_dim = {D} floats, got {data['mean'].dtype} of shape "
                                 f"{data['mean'].shape}")
    if not np.all(np.isfinite(data["mean"])):
        _fail(path, "data/mean", "holds NaN or Inf")
    std = data["std"]
    if std.dtype.kind != "f" or std.shape != (D,):
        _fail(path, "data/std", f"expected x_dim = {D} floats, got {std.dtype} of shape {std.shape}")
    if not np.all(np.isfinite(std)):
        _fail(path, "data/std", "holds NaN or Inf")
    if not np.all(std > 0):
        _fail(path, "data/std", f"must be > 0, holds {std[std <= 0][0]:g}")
    if data["scaled"].dtype != np.bool_ or data["scaled"].shape != (D,):
        _fail(path, "data/scaled", f"expected x_dim = {D} booleans, got {data['scaled'].dtype} of shape "
                                   f"{data['scaled'].shape}")
    if "kind" in data:
        kind = data["kind"]
        if kind.dtype.kind != "U" or kind.ndim != 0 or str(kind) not in _DATA_KINDS:
            _fail(path, "data/kind", f"expected one of {', '.join(_DATA_KINDS)}, got {kind.tolist()!r}")
        if (str(kind) == "handwriting") != (config.output == "pen"):
            _fail(path, "data/kind", f"is {str(kind)!r} but the model has the {config.output_kind} output "
                                     f"(pen strokes go with the pen output, and only they)")
    for key in ("frame_size", "sample_rate"):
        if key in data and (data[key].ndim != 0 or data[key].dtype.kind not in "iu" or int(data[key]) < 0):
            _fail(path, f"data/{key}", f"expected one integer >= 0, got {data[key].dtype} {data[key].tolist()!r}")
    if "kind" in data and str(data["kind"]) == "speech":
        if "frame_size" in data and int(data["frame_size"]) != D:
            _fail(path, "data/frame_size", f"is {int(data['frame_size'])} but speech frames are x_dim = {D} samples")
        if "sample_rate" in data and int(data["sample_rate"]) == 0:
            _fail(path, "data/sample_rate", "is 0; speech needs its samples per second")
    return {k: (_check_float_array(path, f"data/{k}", v, v.shape) if k in ("mean", "std") else v)
            for k, v in data.items()}
