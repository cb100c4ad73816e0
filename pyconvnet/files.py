"""Files that survive kills: atomic writes, directory locks, and the clean-up of temporaries
that a killed writer left behind.

A file is written to a temporary beside it, "<name>.<pid>.tmp", flushed to disk and renamed over
the destination, so a reader sees the old file or the new one, never a part. The temporary is
removed when the write fails (a full disk, an exception, Ctrl-C); one left by a killed process is
stale, and the next writer that holds the directory's lock removes it (remove_temporaries).
"""
from __future__ import annotations

import fcntl
import json
import os
import pathlib
import re
import shutil

import numpy as np

from .errors import UserError

_TEMPORARY = re.compile(r".+\.\d+\.tmp\Z")


def temporary_path(path) -> pathlib.Path:
    """The temporary that atomic_write writes `path` through, in this process."""
    path = pathlib.Path(path)
    return path.with_name(f"{path.name}.{os.getpid()}.tmp")


def is_temporary(name: str) -> bool:
    """Whether a file name is one of atomic_write's temporaries."""
    return bool(_TEMPORARY.match(name))


def fsync_directory(path) -> None:
    """Makes the renames in directory `path` durable (where the file system allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write) -> pathlib.Path:
    """Calls write(binary file) on a temporary beside `path`, flushes it to disk and renames it
    over `path`. On any error the temporary is removed and the error raised; `path` is then as it
    was before."""
    path = pathlib.Path(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:
            e.filename = str(path)  # a full disk: say which file could not be written
        raise
    fsync_directory(path.parent)
    return path


def atomic_json(path, obj, indent=1) -> pathlib.Path:
    return atomic_write(path, lambda f: f.write(json.dumps(obj, indent=indent).encode()))


def atomic_npy(path, array) -> pathlib.Path:
    return atomic_write(path, lambda f: np.save(f, array))


def remove_temporaries(directory) -> list:
    """Removes every atomic_write temporary in `directory` (not below it) and returns their names.
    Call it only while holding the directory's lock: then no live writer owns one."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if is_temporary(entry.name):
            try:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.remove(entry.path)
                removed.append(entry.name)
            except FileNotFoundError:
                pass
    return removed


class DirectoryLock:
    """An exclusive lock on `path` (a lock file, created if missing), taken at once or not at all.
    The operating system releases it when the process ends, however it ends, so a killed owner
    never leaves a directory locked. The lock file holds the owner's process id, for the
    message that a second owner gets (`busy`, a format string with {pid})."""

    def __init__(self, path, busy: str, error=UserError):
        self.path = pathlib.Path(path)
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            pid = self.file.read().strip() or "unknown"
            self.file.close()
            raise error(busy.format(pid=pid)) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"{os.getpid()}\n")
        self.file.flush()

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
