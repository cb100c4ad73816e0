"""A training run's directory: the names of its files, its lock, its log writer and reader.

    RUN_DIR/checkpoint.npz   the latest checkpoint (pyconvnet.checkpoint), written atomically
    RUN_DIR/config.json      {"train": settings, "model": model config}, written when the run starts
    RUN_DIR/log.jsonl        one JSON record per line: "step" (every --log-every steps), "epoch"
                             (every finished epoch), "final" (the 10-crop evaluation at the end)
    RUN_DIR/lock             held by the trainer that owns the directory

A directory has one owner at a time: RunDir.open() takes an exclusive lock that the operating
system releases when the owner ends, however it ends.
"""
from __future__ import annotations

import json
import os
import pathlib

from .errors import UserError
from .files import DirectoryLock, atomic_write, remove_temporaries

CHECKPOINT_NAME = "checkpoint.npz"
LOG_NAME = "log.jsonl"
CONFIG_NAME = "config.json"
LOCK_NAME = "lock"
EPOCH_FIELDS = ("epoch", "lr", "train_loss", "val_loss") + tuple(
    f"{split}_top{k}_error" for split in ("train", "val") for k in (1, 5))


def checkpoint_path(arg) -> pathlib.Path:
    """A checkpoint given as a file, or as the run directory holding checkpoint.npz."""
    path = pathlib.Path(arg)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def check_usable(path, flag: str = "--out") -> pathlib.Path:
    """`path` as a run directory to create or reuse: a UserError (before any work starts) when it
    names a file, lies inside a file, or cannot be created or written."""
    path = pathlib.Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path}: exists and is not a directory; choose another {flag}")
    existing = path
    while not existing.exists():  # the nearest existing ancestor is where it would be created
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{flag} {path}: {existing} is a file, so nothing can be created inside it; "
                        f"choose another {flag}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: {existing} is not writable; choose another {flag}")
    return path


class RunDir:
    """A run directory, owned while open: the log writer and the paths of its files."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.checkpoint = self.path / CHECKPOINT_NAME
        self.log_path = self.path / LOG_NAME
        self.config_path = self.path / CONFIG_NAME
        self._lock = None

    def open(self, create: bool = False) -> "RunDir":
        """Takes the directory's lock (creating the directory if `create`) and removes the
        temporaries of writes that a killed owner left. A UserError if another process owns it."""
        if create:
            check_usable(self.path)
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UserError(f"--out {self.path}: cannot create it ({e.strerror or e})") from None
        elif not self.path.is_dir():
            raise UserError(f"{self.path}: no such run directory")
        try:
            self._lock = DirectoryLock(self.path / LOCK_NAME, f"{self.path} is in use by another trainer "
                                       "(process {pid}); wait for it to finish, or choose another --out")
        except OSError as e:
            raise UserError(f"{self.path}: cannot lock it ({e.strerror or e}); is it writable?") from None
        remove_temporaries(self.path)
        return self

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def write_config(self, doc: dict) -> None:
        try:
            atomic_write(self.config_path, lambda f: f.write((json.dumps(doc, indent=2) + "\n").encode()))
        except OSError as e:
            raise UserError(f"cannot write {self.config_path} ({e.strerror or e}); make room and start again") from None

    def log(self, record: dict) -> None:
        """Appends one record to log.jsonl."""
        try:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:  # a full disk: the checkpoint, written before, is the state to resume
            raise UserError(f"cannot write {self.log_path} ({e.strerror or e}); make room and continue with "
                            f"--resume {self.path}") from None

    def truncate_log(self, epoch: int, step: int) -> None:
        """Keeps only the records of the run up to position (epoch finished epochs, step steps
        into the next), so that a run resumed there does not log what follows twice."""
        if not self.log_path.exists():
            return
        kept = []
        for line in self.log_path.read_text().splitlines():
            rec = _record(line)
            if rec is None:
                continue
            e = rec.get("epoch")
            if not isinstance(e, int):
                continue
            if rec.get("event") == "step":
                keep = e <= epoch or (e == epoch + 1 and isinstance(rec.get("step"), int) and rec["step"] <= step)
            else:
                keep = e <= epoch
            if keep:
                kept.append(line + "\n")
        try:
            atomic_write(self.log_path, lambda f: f.write("".join(kept).encode()))
        except OSError as e:
            raise UserError(f"cannot rewrite {self.log_path} ({e.strerror or e}); make room and resume again") from None

    def final_logged(self, epoch: int) -> bool:
        """Whether the final evaluation of the run after `epoch` epochs is in the log."""
        final = read_log(self.path)["final"] if self.log_path.exists() else None
        return final is not None and final.get("epoch") == epoch


def _record(line: str):
    try:
        rec = json.loads(line)
    except json.JSONDecodeError:
        return None
    return rec if isinstance(rec, dict) else None


def read_log(run_dir) -> dict:
    """The records of RUN_DIR/log.jsonl: {"epochs": one per finished epoch (the last written,
    should an epoch have been logged twice around a crash), "steps": [...], "final": the final
    evaluation of the last finished epoch, or None}. A line still being written by a running
    trainer, or a record without the numbers drawn, is skipped."""
    path = pathlib.Path(run_dir) / LOG_NAME
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise UserError(f"{run_dir}: no {LOG_NAME}, so not a training run directory") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e.strerror or e})") from None
    epochs, steps, final = {}, [], None
    for line in lines:
        rec = _record(line)
        if rec is None:
            continue
        if rec.get("event") == "epoch":
            if all(isinstance(rec.get(key), (int, float)) for key in EPOCH_FIELDS):
                epochs[rec["epoch"]] = rec
        elif rec.get("event") == "step":
            if all(isinstance(rec.get(key), (int, float)) for key in ("epoch", "step", "loss")):
                steps.append(rec)
        elif rec.get("event") == "final":
            final = rec
    last = max(epochs, default=None)
    if final is not None and final.get("epoch", last) != last:
        final = None  # the run was continued after that evaluation
    return {"epochs": [epochs[e] for e in sorted(epochs)], "steps": steps, "final": final}


def read_config(run_dir) -> dict:
    """RUN_DIR/config.json, or {} when it is missing or unreadable."""
    try:
        doc = json.loads((pathlib.Path(run_dir) / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}
