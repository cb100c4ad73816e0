#!/usr/bin/env python3
"""Times the working tree's CPU engine against a reference build in one process.

    scripts/ab_build.sh HEAD                     # prints REF_SO, the reference's module
    python scripts/ab_compare.py REF_SO [--only REGEX] [--batch N] [--rounds R]
    OMP_NUM_THREADS=1 python scripts/ab_compare.py ...   # one thread: steadier; thread CPU time

Both modules are loaded side by side (the reference built with its own pybind11 internals id by
ab_build.sh) and every case's calls alternate between them, R rounds of 5 calls each, on the
same inputs (warm caches), so that drift in the machine's speed hits both alike. It prints the
fastest call of each (and the medians) and their ratio A/B, above 1 when the working tree (B) is
faster. A developer's tool for deciding on a change of a few percent; the benchmarks in
benchmarks/ are what reports speed.
"""
from __future__ import annotations

import argparse
import glob
import importlib.machinery
import importlib.util
import os
import re
import sys
import time
import types

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(path: str, name: str):
    pkg = types.ModuleType(name)
    pkg.__path__ = []
    sys.modules[name] = pkg
    loader = importlib.machinery.ExtensionFileLoader(name + "._C", path)
    spec = importlib.util.spec_from_file_location(name + "._C", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def cases(batch: int):
    """name -> (make(module, arrays) -> call, arrays): AlexNet's CPU-heavy passes."""
    rng = np.random.default_rng(0)
    out = {}
    convs = {"conv1": ((3, 224, 224), (96, 3, 11, 11), 4, 2, 1), "conv2": ((96, 27, 27), (256, 48, 5, 5), 1, 2, 2),
             "conv3": ((256, 13, 13), (384, 256, 3, 3), 1, 1, 1), "conv4": ((384, 13, 13), (384, 192, 3, 3), 1, 1, 2),
             "conv5": ((384, 13, 13), (256, 192, 3, 3), 1, 1, 2)}
    for name, (xs, ws, s, p, g) in convs.items():
        xs = (batch,) + xs
        q = (xs[2] + 2 * p - ws[2]) // s + 1
        arrays = [rng.standard_normal(xs, dtype=np.float32), (rng.standard_normal(ws) * 0.05).astype(np.float32),
                  rng.standard_normal((batch, ws[0], q, q), dtype=np.float32)]
        out[f"{name}.fwd"] = (lambda m, a, s=s, p=p, g=g: lambda: m.conv2d_forward(a[0], a[1], None, [s, s], [p, p], g, False, 0), arrays)
        out[f"{name}.bwd_data"] = (lambda m, a, s=s, p=p, g=g, xs=xs: lambda: m.conv2d_backward_data(a[2], a[1], list(xs), [s, s], [p, p], g, 0), arrays)
        out[f"{name}.bwd_filter"] = (lambda m, a, s=s, p=p, g=g, ws=ws: lambda: m.conv2d_backward_filter(a[2], a[0], list(ws), [s, s], [p, p], g, 0), arrays)
    for name, (o, i) in {"fc6": (4096, 9216), "fc7": (4096, 4096)}.items():
        arrays = [rng.standard_normal((batch, i), dtype=np.float32), (rng.standard_normal((o, i)) * 0.01).astype(np.float32),
                  rng.standard_normal((batch, o), dtype=np.float32)]
        out[f"{name}.fwd"] = (lambda m, a: lambda: m.linear_forward(a[0], a[1], None, False, 0), arrays)
        out[f"{name}.bwd_data"] = (lambda m, a: lambda: m.linear_backward_data(a[2], a[1], 0), arrays)
        out[f"{name}.bwd_filter"] = (lambda m, a: lambda: m.linear_backward_weight(a[2], a[0], 0), arrays)
    for name, chw in {"lrn1": (96, 55, 55), "lrn2": (256, 27, 27)}.items():
        arrays = [rng.standard_normal((batch,) + chw, dtype=np.float32), rng.standard_normal((batch,) + chw, dtype=np.float32)]

        def lrn_fwd(m, a):
            prm = m.LrnParams(5, 1e-4, 0.75, 2.0, 2)
            return lambda: m.lrn_forward(a[0], prm, 0)

        def lrn_bwd(m, a):
            prm = m.LrnParams(5, 1e-4, 0.75, 2.0, 2)
            y = m.lrn_forward(a[0], prm, 0)
            return lambda: m.lrn_backward(a[1], a[0], y, prm, 0)
        out[f"{name}.fwd"] = (lrn_fwd, arrays)
        out[f"{name}.bwd"] = (lrn_bwd, arrays)
    for name, shape in {"drop6": (batch, 4096)}.items():
        out[f"{name}.fwd"] = (lambda m, a: lambda: m.dropout_forward(a[0], 0.5, 1234, 0, 0, 0, -1),
                              [rng.standard_normal(shape, dtype=np.float32)])
    images = rng.integers(0, 256, (batch, 256, 256, 3), dtype=np.uint8)
    mean = rng.uniform(0, 255, (256, 256, 3)).astype(np.float32)
    offsets = rng.integers(0, 33, (batch, 2), dtype=np.int32)
    flips = (np.arange(batch) % 2).astype(np.int32)
    lighting = rng.standard_normal((batch, 3), dtype=np.float32)
    out["augment"] = (lambda m, a: lambda: m.augment(a[0], a[1], a[2], a[3], a[4], 224, 1, 0),
                      [images, mean, offsets, flips, lighting])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reference", help="the reference build's _C module (scripts/ab_build.sh prints it)")
    ap.add_argument("--only", default=".", help="regular expression on case names (e.g. 'conv[3-5]|lrn')")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=6, help="rounds of 5 calls of each build")
    args = ap.parse_args()
    mine = glob.glob(os.path.join(ROOT, "pyconvnet", "_C*.so"))
    if len(mine) != 1:
        sys.exit(f"ab_compare: expected one built module in {ROOT}/pyconvnet (scripts/build_inplace.sh), found {mine}")
    a_mod, b_mod = load(args.reference, "ab_reference"), load(mine[0], "ab_working_tree")
    clock = time.thread_time if os.environ.get("OMP_NUM_THREADS") == "1" else time.perf_counter
    print(f"A = {args.reference}\nB = {mine[0]}\nbatch {args.batch}, {args.rounds} rounds x 5 calls, "
          f"{'thread CPU time (one thread)' if clock is time.thread_time else 'wall clock'}")
    for name, (make, arrays) in cases(args.batch).items():
        if not re.search(args.only, name):
            continue
        calls = [make(m, [m.tensor_from_numpy(x) for x in arrays]) for m in (a_mod, b_mod)]
        times = ([], [])
        for f in calls:
            f()
        for _ in range(args.rounds):
            for f, ts in zip(calls, times):
                for _ in range(5):
                    t = clock()
                    f()
                    ts.append(clock() - t)
        (a, am), (b, bm) = [(min(ts), sorted(ts)[len(ts) // 2]) for ts in times]
        print(f"{name:16s} A {a * 1e3:8.3f} B {b * 1e3:8.3f} ms  A/B {a / b:5.3f}   "
              f"(medians {am * 1e3:8.3f} {bm * 1e3:8.3f}: {am / bm:5.3f})", flush=True)


if __name__ == "__main__":
    main()
