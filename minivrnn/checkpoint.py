"""Checkpoints: one ``.npz`` holding the parameters, the config, the optimizer and the training state.

Loadable by plain NumPy: ``np.load(path)`` gives ``param/<name>`` arrays (names as in the public contract),
``config`` (a JSON string), ``adam/...`` arrays, ``train_state`` (JSON) and ``data/...`` arrays (the
normalisation statistics). Written atomically: to a temporary file in the same folder, then renamed, so a
crash or Ctrl-C never leaves a half-written checkpoint behind.
"""
import json
import os
import tempfile
import zipfile
from dataclasses import asdict

import numpy as np

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
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private (0600); a checkpoint is ordinary data
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_checkpoint(path):
    """Returns a dict with ``params``, ``config``, ``optimizer_arrays``, ``train_state``, ``data_arrays``."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive; anything else np.load would call pickle
            raise CheckpointError(f"{path}: not a readable minivrnn checkpoint (not an .npz / zip file)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        config = VRNNConfig(**json.loads(str(arrays.pop("config"))))
        train_state = json.loads(str(arrays.pop("train_state")))
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, TypeError, EOFError) as e:
        raise CheckpointError(f"{path}: not a readable minivrnn checkpoint ({type(e).__name__}: {e})") from None
    params = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    from .model import init_params  # the expected names and shapes for this config

    expected = init_params(config, 0, np.float64)
    for name, value in expected.items():
        if name not in params:
            raise CheckpointError(f"{path}: parameter {name!r} is missing")
        if params[name].shape != value.shape:
            raise CheckpointError(f"{path}: parameter {name!r} has shape {params[name].shape}, "
                                  f"expected {value.shape}")
        if not np.all(np.isfinite(params[name])):
            raise CheckpointError(f"{path}: parameter {name!r} holds NaN or Inf")
    return {
        "params": params,
        "config": config,
        "optimizer_arrays": {k: v for k, v in arrays.items() if k.startswith("adam/")},
        "train_state": train_state,
        "data_arrays": {k[len("data/"):]: v for k, v in arrays.items() if k.startswith("data/")},
    }
