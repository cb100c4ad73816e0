"""Checkpoints: one .npz file of plain arrays plus a JSON document, loadable without pickle.

Written atomically (pyconvnet.files.atomic_write), so a kill at any moment leaves either the old
checkpoint or the new one, never a broken file.
"""
from __future__ import annotations

import json
import pathlib
import zipfile

import numpy as np

from .errors import UserError
from .files import atomic_write

FORMAT = "pyconvnet-checkpoint-1"
_META_KEY = "__meta__"


class CheckpointError(UserError, ValueError):
    """A checkpoint file is missing, unreadable or not a pyconvnet checkpoint."""


def save(path, arrays: dict, meta: dict) -> pathlib.Path:
    """Write `arrays` (name -> ndarray) and `meta` (JSON-serialisable) to `path` atomically."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if _META_KEY in arrays:
        raise ValueError(f"checkpoint.save: array name {_META_KEY!r} is reserved")
    document = json.dumps({"format": FORMAT, **meta}, sort_keys=True).encode()
    return atomic_write(path, lambda f: np.savez(
        f, **{_META_KEY: np.frombuffer(document, dtype=np.uint8)},
        **{k: np.ascontiguousarray(v) for k, v in arrays.items()}))


def load(path) -> tuple[dict, dict]:
    """(arrays, meta) from a checkpoint written by save(). Never unpickles anything."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint {path}: unreadable or corrupt (not an .npz archive); it is not a "
                              "checkpoint, or it was damaged")
    try:
        with np.load(path, allow_pickle=False) as z:
            if _META_KEY not in z.files:
                raise CheckpointError(f"checkpoint {path}: not a pyconvnet checkpoint (no {_META_KEY} entry)")
            meta = json.loads(z[_META_KEY].tobytes().decode())
            arrays = {k: z[k] for k in z.files if k != _META_KEY}
    except CheckpointError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {path}: unreadable or corrupt ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path}: not a pyconvnet checkpoint (its {_META_KEY} is not a JSON object)")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: format {meta.get('format')!r} is not {FORMAT!r}")
    return arrays, meta


# ----------------------------------------------------------------------------- the schema

_NUMBER = (int, float)
# Each key of a training checkpoint's JSON document and of its parts, with the type it must have.
_META = {"model_config": dict, "train_config": dict, "epoch": int, "step": int, "schedule": dict,
         "running": dict, "history": list, "classes": list}
_MODEL = {"arch": str, "num_classes": int, "input_size": int, "width": _NUMBER, "seed": int, "init": str}
_TRAIN = {"epochs": int, "batch_size": int, "lr": _NUMBER, "momentum": _NUMBER, "weight_decay": _NUMBER,
          "lr_drop_epochs": list, "patience": int, "max_drops": int, "seed": int, "device": str,
          "drop_last": bool, "log_every": int, "crop_size": int, "image_size": int, "data_root": str}
_SCHEDULE = {"lr": _NUMBER, "drop_epochs": list, "patience": int, "max_drops": int, "best_error": _NUMBER,
             "epochs_since_best": int, "drops": list}
_RUNNING = {"loss_sum": _NUMBER, "seen": int, "err1": int, "err5": int, "time": _NUMBER}
MAX_WIDTH = 16.0  # a model config beyond these is not one pyconvnet wrote
MAX_INPUT = 4096
MAX_CLASSES = 1 << 20


def _type_name(kind) -> str:
    return "a number" if kind == _NUMBER else {dict: "an object", list: "an array", str: "a string", int: "an integer",
                                                bool: "true or false"}[kind]


def _check_fields(path, where: str, doc: dict, fields: dict) -> None:
    for key, kind in fields.items():
        if key not in doc:
            raise CheckpointError(f"checkpoint {path}: not a model checkpoint of this pyconvnet: {where} has no "
                                  f"{key!r}")
        value = doc[key]
        wrong = isinstance(value, bool) != (kind is bool) or not isinstance(value, kind)
        if wrong:
            raise CheckpointError(f"checkpoint {path}: not a model checkpoint of this pyconvnet: {where}"
                                  f"[{key!r}] must be {_type_name(kind)}; got {value!r:.60}")


def check_model_meta(path, meta: dict) -> None:
    """CheckpointError unless meta["model_config"] describes a model this pyconvnet builds."""
    _check_fields(path, "the document", meta, {"model_config": dict})
    cfg = meta["model_config"]
    _check_fields(path, "model_config", cfg, _MODEL)
    if (cfg["arch"] != "alexnet" or cfg["init"] not in ("paper", "caffe", "he")
            or not 1 <= cfg["num_classes"] <= MAX_CLASSES or not 1 <= cfg["input_size"] <= MAX_INPUT
            or not 0 < cfg["width"] <= MAX_WIDTH):
        raise CheckpointError(f"checkpoint {path}: not a model checkpoint of this pyconvnet: model_config "
                              f"{cfg} is out of range")


def check_training_meta(path, meta: dict) -> None:
    """CheckpointError unless `meta` is the document of a training checkpoint (Trainer.state)."""
    check_model_meta(path, meta)
    _check_fields(path, "the document", meta, _META)
    for where, fields in (("train_config", _TRAIN), ("schedule", _SCHEDULE), ("running", _RUNNING)):
        _check_fields(path, where, meta[where], fields)
    bad = [k for k in ("epoch", "step") if meta[k] < 0]
    bad += [f"history[{i}]" for i, rec in enumerate(meta["history"]) if not isinstance(rec, dict)]
    bad += ["classes"] * (not all(isinstance(c, str) for c in meta["classes"]))
    bad += [f"train_config[{k!r}]" for k in ("epochs", "batch_size") if meta["train_config"][k] < 1]
    devices = meta["train_config"].get("devices")  # the two columns' devices, or null on one device
    bad += ["train_config['devices']"] * (devices is not None and not (
        isinstance(devices, list) and len(devices) == 2 and all(isinstance(d, str) for d in devices)))
    if bad:
        raise CheckpointError(f"checkpoint {path}: damaged: {', '.join(bad)} out of range or of the wrong type")


def check_arrays(path, arrays: dict, shapes: dict, prefixes=("model/",)) -> None:
    """CheckpointError unless `arrays` holds exactly one finite float32 array of shape shapes[key]
    under prefix + key for every parameter key and prefix, and nothing else."""
    expected = {p + k: tuple(s) for p in prefixes for k, s in shapes.items()}
    missing, extra = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
    if missing or extra:
        shown = "; ".join(f"{what} {', '.join(names[:4])}" + (f" and {len(names) - 4} more" if len(names) > 4 else "")
                          for what, names in (("missing", missing), ("unexpected", extra)) if names)
        raise CheckpointError(f"checkpoint {path}: its arrays do not match the model it describes ({shown})")
    for name, shape in expected.items():
        a = arrays[name]
        if a.dtype != np.float32 or a.shape != shape:
            raise CheckpointError(f"checkpoint {path}: array {name} must be float32 of shape {shape}; got "
                                  f"{a.dtype} of shape {a.shape}")
        if not np.isfinite(a).all():
            raise CheckpointError(f"checkpoint {path}: array {name} holds non-finite values (NaN or infinity): "
                                  "the checkpoint is damaged")
