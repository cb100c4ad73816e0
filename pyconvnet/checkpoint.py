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
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: format {meta.get('format')!r} is not {FORMAT!r}")
    return arrays, meta
