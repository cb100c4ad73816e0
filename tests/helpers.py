"""One comparison helper and one finite-difference helper for every op test, and the kernel
versions each test runs."""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import numpy as np

import pyconvnet
from pyconvnet import ops


def assert_same_bits_on_1_and_2_threads(code, names, tmp_path, outputs):
    """Runs `code` in a fresh process with OMP_NUM_THREADS=1, then 2, each with argv [this tests
    directory, an .npz path, *names]; it saves its arrays into the .npz. Both runs must save the
    same `outputs` keys with bit-identical arrays."""
    runs = {}
    for threads in ("1", "2"):
        env = dict(os.environ, OMP_NUM_THREADS=threads,
                   PYTHONPATH=str(pathlib.Path(pyconvnet.__file__).resolve().parents[1]))
        path = tmp_path / f"t{threads}.npz"
        r = subprocess.run([sys.executable, "-c", code, str(pathlib.Path(__file__).parent), str(path), *names],
                           env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        runs[threads] = dict(np.load(path))
    assert runs["1"].keys() == runs["2"].keys() and len(runs["1"]) == outputs
    for key, a in runs["1"].items():
        assert np.array_equal(a, runs["2"][key]), key


def simulated(device) -> bool:
    """True when `device` is a CUDA device of the simulator build (kernels run on the CPU, about
    a thousand times slower than on a GPU): tests then use smaller shapes of the same layers."""
    return str(device).startswith("cuda") and pyconvnet.cuda.is_simulated()


def to_numpy(x):
    return x.numpy() if isinstance(x, pyconvnet.Tensor) else np.asarray(x)


def all_versions(op, device):
    """0 (the default) and every numbered kernel version of `op` on `device`, from the registry."""
    return [0] + ops.versions(op, device)


def version_rule(op, device):
    """A regex for the rule in the ValueError an unknown version of `op` raises on `device`."""
    valid = ", ".join(str(v) for v in ops.versions(op, device))
    return re.escape(f"must be one of 0 (default, = {ops.default_version(op, device)}), {valid} on {device}") + r"\S*"


def assert_close(actual, expected, rtol=1e-4, atol=1e-5, what="result"):
    """Elementwise |actual - expected| <= atol + rtol*|expected| (NaNs must match). On failure the
    message says what was compared, the worst element and how much of the tolerance it used;
    returns the largest share of the tolerance used (<= 1 on a pass)."""
    a = to_numpy(actual).astype(np.float64)
    e = to_numpy(expected).astype(np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    assert np.array_equal(nan_a, nan_e), f"{what}: NaN at different places ({nan_a.sum()} vs {nan_e.sum()} expected)"
    a, e = np.where(nan_a, 0, a), np.where(nan_e, 0, e)
    if a.size == 0:
        return 0.0
    used = np.abs(a - e) / (atol + rtol * np.abs(e))
    worst = np.unravel_index(np.argmax(used), used.shape)
    share = float(used[worst])
    assert share <= 1.0, (f"{what}: {np.sum(used > 1)} of {a.size} elements out of tolerance "
                          f"(atol={np.broadcast_to(atol, used.shape)[worst]:.3g}, rtol={rtol}); worst at {worst}: got {a[worst]!r}, expected {e[worst]!r}, "
                          f"{share:.1f}x the tolerance")
    return share


def numeric_grad(f, x, dy, eps=1e-6):
    """d(sum(f(x) * dy))/dx by central differences, in float64. f maps an array to an array."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = np.sum(f(x) * dy)
        flat[i] = old - eps
        fm = np.sum(f(x) * dy)
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return g


def same_on_every_cuda_device(run, what):
    """run(device) -> the outputs (Tensors or None) of one computation on that device, on each CUDA
    device (the first two; the simulator build has two): asserts the devices' outputs are
    bit-identical and returns them per device."""
    runs = {}
    for index in range(min(2, pyconvnet.cuda.device_count())):
        dev = f"cuda:{index}"
        runs[dev] = [None if t is None else t.numpy() for t in run(dev)]
    first = next(iter(runs.values()))
    for dev, outs in runs.items():
        for i, (a, b) in enumerate(zip(first, outs)):
            assert (a is None and b is None) or np.array_equal(a, b), f"{what}: output {i} differs between cuda:0 and {dev}"
    return runs
