"""Worker processes for the data pipeline (decoding in pyconvnet.prepare, drawing in
pyconvnet.synthetic) that start clean and end with the process that made them."""
from __future__ import annotations

import concurrent.futures
import ctypes
import multiprocessing
import os
import signal
import threading
import time


def pool(workers: int):
    """A process pool of `workers` decoding processes that end with this process."""
    # forkserver: workers start from a clean process (no inherited threads, CUDA state or locks).
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    return concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                                  initializer=_die_with_parent, initargs=(os.getpid(),))


def _die_with_parent(owner):
    """Worker initialiser: the worker ends when `owner` (the process that made the pool) dies,
    however it dies (kill -9 included), instead of decoding on for nobody. A watcher thread ends
    it once `owner` is dead (a zombie counts as dead: the process that would reap it may be
    waiting for the worker to close the pipes it inherited) or the worker's parent changes; on
    Linux the kernel also sends it SIGKILL when its parent ends (PR_SET_PDEATHSIG)."""
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent or not _alive(owner):  # died before the prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)

    def watch():
        while os.getppid() == parent and _alive(owner):
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=watch, name="pyconvnet-parent-watch", daemon=True).start()


def _alive(pid):
    """Whether process `pid` runs (a zombie, dead but not yet reaped by its parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
