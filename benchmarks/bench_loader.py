#!/usr/bin/env python3
"""How fast pyconvnet.loader delivers batches, and whether a training loop would wait for them.

    python benchmarks/bench_loader.py [--data DIR] [--device cuda] [--batch 128] [--step-ms 50]

Without --data it prepares (once, cached in $TMPDIR) a tree of 2048 random 256x256 images. Each
epoch is read twice first so the images are in the page cache, which is the case the loader is
built for. One line per transform:

    loader S=256 B=128 cuda train: 10532 img/s (12.2 ms/batch) alone; with a 50 ms step the loop waited 0.1% of the time

"alone": the loop takes batches as fast as they come (the loader's throughput). "with a step":
the loop sleeps --step-ms per batch, standing in for the kernels of a training step (a sleep
releases the GIL and the CPU, as a GPU step mostly does), and the share of wall time spent in
the loader's wait is reported: near 0% means the loop never waits for data.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import pyconvnet, sample_dataset  # noqa: E402,F401  (finds the engine)
from pyconvnet.loader import Loader  # noqa: E402


def measure(loader, step_s):
    list(loader.epoch(0))  # warm: page cache, staging slots, device memory pools
    list(loader.epoch(0))
    loader.wait_seconds = 0.0
    t0 = time.perf_counter()
    n = 0
    for b in loader.epoch(1):
        n += len(b.labels)
        if step_s:
            time.sleep(step_s)
    return n / (time.perf_counter() - t0), (time.perf_counter() - t0), loader.wait_seconds


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="a prepared dataset (default: a generated one)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--step-ms", type=float, default=50.0)
    p.add_argument("--transforms", default="none,train", help="comma-separated: none, train, center, ten")
    a = p.parse_args()
    data = a.data or sample_dataset(2048)
    for transform in a.transforms.split(","):
        with Loader(data, "train", a.batch, device=a.device, transform=transform, seed=1) as loader:
            rate, total, _ = measure(loader, 0.0)
            _, wall, waited = measure(loader, a.step_ms / 1000)
            print(f"loader S={loader.size} B={a.batch} {a.device} {transform}: {rate:.0f} img/s "
                  f"({1000 * a.batch / rate:.1f} ms/batch) alone; with a {a.step_ms:g} ms step the loop "
                  f"waited {100 * waited / wall:.1f}% of the time")


if __name__ == "__main__":
    main()
