#!/usr/bin/env python3
"""Images per second of the AlexNet training step on one device and as the paper's two columns on
two devices (pyconvnet/columns.py): the same network, weights, batch and SGD update.

    python benchmarks/bench_columns.py                         # cuda:0 vs cuda:0 + cuda:1, batch 128
    python benchmarks/bench_columns.py --devices cuda:2,cuda:3 --batch 256 --json columns.json

One line per layout, then the speed-up:

    pyconvnet  one device (cuda:0)              batch 128      41.20 ms/step    3107.0 img/s   mfu 20.3%
    pyconvnet  two columns (cuda:0 + cuda:1)    batch 128      24.10 ms/step    5311.2 img/s   mfu 17.4% | 1.71x one device; peer copies

The step is bench_e2e.py's (loss_and_grad, then ops.sgd_update on every parameter, the loss read
on the host every step); mfu is against one device's FP32 peak in both lines, so the two-column
line can exceed what one device could reach. The crossings are peer copies where the devices
allow it, else staged through pinned host memory (--staged forces that). The machine needs two
CUDA devices: with fewer the script says so and exits 0; the simulator build is refused.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import bench_common as common
from bench_common import pyconvnet
from alexnet_shapes import training_step_totals
from bench_e2e import PyconvnetStep, line, repeat, time_steps

from pyconvnet.columns import check_devices


class ColumnsStep(PyconvnetStep):
    """bench_e2e's step with the model split into two columns; momentum beside each half."""

    def __init__(self, devices, seed: int = 0):
        super().__init__(devices[0], seed)
        self.model.to_columns(devices)
        self.velocity = {key: pyconvnet.zeros(tuple(layer.params[p].shape), device=layer.params[p].device)
                         for key, layer, p in self.model.parameters()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--devices", default="cuda:0,cuda:1", help="the two columns' devices (the first also runs one device)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup", type=int, default=5, help="warm-up steps")
    ap.add_argument("--staged", action="store_true", help="stage every crossing through pinned host memory")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    common.benchmark_device("cuda", "bench_columns")  # exits on a CPU-only or simulator build
    if pyconvnet.cuda.device_count() < 2:
        print(f"bench_columns: skipped: two columns need 2 CUDA devices; this machine has "
              f"{pyconvnet.cuda.device_count()} ({pyconvnet.cuda.device_name(0)})")
        return 0
    try:
        devices = check_devices(a.devices, who="--devices")
    except ValueError as e:
        sys.exit(f"bench_columns: {e}")
    pyconvnet.cuda.set_peer_copies(not a.staged)
    peer = not a.staged and pyconvnet.cuda.can_access_peer(int(devices[0][5:]), int(devices[1][5:]))
    crossing = "peer copies" if peer else "staged through pinned host memory"
    machine = common.machine_for(devices[0])
    flops, _ = training_step_totals(a.batch)

    print(f"# pyconvnet two-column benchmark: AlexNet training step on one device and on two columns, batch {a.batch}, float32")
    print(f"# date: {common.now_utc()}   commit: {common.commit()}")
    for hl in machine.header():
        print(f"# {hl}")
    print(f"# columns on {devices[0]} and {devices[1]} ({pyconvnet.cuda.device_name(int(devices[1][5:]))}); crossings: {crossing}")
    print(f"# timing: {a.warmup} warm-up steps, then {a.steps} timed steps; every step reads its loss on the host")
    sys.stdout.flush()

    rng = np.random.default_rng(0)
    x_host = rng.standard_normal((a.batch, 3, 224, 224), dtype=np.float32)
    labels_host = rng.integers(0, 1000, a.batch).astype(np.int32)
    x, labels = pyconvnet.tensor(x_host, devices[0]), pyconvnet.tensor(labels_host, devices[0])
    results = {}
    one = PyconvnetStep(devices[0])
    results["one_device"] = time_steps(one, repeat(x, labels), a.warmup, a.steps)
    print(line("pyconvnet", f"one device ({devices[0]})", a.batch, results["one_device"], flops, machine.flops))
    sys.stdout.flush()
    del one
    two = ColumnsStep(devices)
    r = time_steps(two, repeat(x, labels), a.warmup, a.steps)
    results["two_columns"] = r
    speedup = results["one_device"]["total_s"] / r["total_s"]
    print(line("pyconvnet", f"two columns ({devices[0]} + {devices[1]})", a.batch, r, flops, machine.flops,
               f"{speedup:.2f}x one device; {crossing}"))
    if a.json:
        common.write_json(a.json, dict(kind="pyconvnet-columns-benchmark", date=common.now_utc(), commit=common.commit(),
                                       devices=devices, batch=a.batch, machine=machine, crossings=crossing,
                                       step_flops=flops, speedup=speedup, results=results))
        print(f"# JSON written to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
