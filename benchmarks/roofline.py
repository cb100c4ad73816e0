#!/usr/bin/env python3
"""The roofline of AlexNet's training step: FLOPs and bytes of every op pass (benchmarks/alexnet_shapes.py)
and the floor time at a GPU's peaks, max(FLOPs / FP32 peak, bytes / memory bandwidth): no kernel
can run a pass faster.

    python benchmarks/roofline.py                          # batch 128, H100 SXM / H100 PCIe / H200
    python benchmarks/roofline.py --results kernels.json   # + how far each measured kernel is from its floor

The peaks here are the datasheet ones (SMs x 128 FP32 lanes x 2 x max boost clock; memory
bandwidth as NVIDIA quotes it); bench_kernels.py prints the peaks of the device it runs on,
computed from that device's own attributes. With --results (a bench_kernels.py JSON), the
floors use that run's device peaks and batch, and the measured default-version times are set
beside them: floor/measured is the fraction of the limit the kernel reaches.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from alexnet_shapes import alexnet_cases  # noqa: E402

# name: (FP32 FLOP/s, bytes/s, how)
GPUS = {
    "H100 SXM": (132 * 128 * 2 * 1.980e9, 3.352e12, "132 SMs x 128 x 2 x 1980 MHz; HBM3 5120-bit x 2619 MHz x 2"),
    "H100 PCIe": (114 * 128 * 2 * 1.755e9, 2.039e12, "114 SMs x 128 x 2 x 1755 MHz; HBM2e 5120-bit x 1593 MHz x 2"),
    "H200": (132 * 128 * 2 * 1.980e9, 4.8e12, "132 SMs x 128 x 2 x 1980 MHz; HBM3e 4.8 TB/s (datasheet)"),
}


def floor_s(case, flops, bw):
    return max(case.flops / flops, case.bytes / bw)


def table(batch: int, gpus: dict) -> list[str]:
    cases = alexnet_cases(batch)
    names = list(gpus)
    head = "| pass | shapes | GFLOP | MB moved | FLOP/byte | " + " | ".join(f"floor {n} (us)" for n in names) + " |"
    out = [head, "|---|---|---:|---:|---:|" + "---:|" * len(names)]
    tot_f = tot_b = 0.0
    tot = {n: 0.0 for n in names}
    for c in cases:
        if not c.in_training_step:
            continue
        cells = []
        for n in names:
            f, b, _ = gpus[n]
            t = floor_s(c, f, b)
            tot[n] += t
            cells.append(f"{1e6 * t:.1f} {'F' if c.flops / f >= c.bytes / b else 'B'}")
        tot_f += c.flops
        tot_b += c.bytes
        out.append(f"| {c.key} | {c.describe()} | {c.flops / 1e9:.2f} | {c.bytes / 1e6:.1f} | "
                   f"{c.flops / c.bytes:.1f} | " + " | ".join(cells) + " |")
    out.append(f"| **training step** | batch {batch} | {tot_f / 1e9:.1f} | {tot_b / 1e6:.0f} | {tot_f / tot_b:.1f} | "
               + " | ".join(f"**{1e3 * tot[n]:.2f} ms** = {batch / tot[n]:,.0f} img/s" for n in names) + " |")
    return out


def with_results(path: str) -> list[str]:
    with open(path) as f:
        run = json.load(f)
    run = run.get("kernels", run)  # a results/<date>-<machine>.json holds {"kernels": ..., "e2e": ...}
    m = run["machine"]
    peak_f, peak_b = m["flops"], m["bandwidth"]
    out = [f"Measured: {m['name']} ({run['device']}), batch {run['batch']}, {run['date']}, commit {run['commit']}; "
           f"peaks {peak_f / 1e12:.1f} TFLOP/s FP32, {peak_b / 1e9:.0f} GB/s",
           "",
           "| pass | floor (us) | bound | ours default (us) | floor / ours | torch (us) | floor / torch |",
           "|---|---:|---|---:|---:|---:|---:|"]
    sum_floor = sum_ours = sum_torch = 0.0
    for c in run["cases"]:
        floor = max(c["flops"] / peak_f, c["bytes"] / peak_b)
        ok = [r for r in c["results"] if "ms" in r]
        d = next((r for r in ok if r.get("default")), ok[0] if ok else None)
        t = c.get("torch")
        ours = d["ms"] / 1e3 if d else None
        th = t["ms"] / 1e3 if t else None
        if c.get("in_training_step", True) and ours:
            sum_floor += floor
            sum_ours += ours
            sum_torch += th or 0.0
        out.append(f"| {c['key']} | {1e6 * floor:.1f} | {c['bound']} | "
                   + (f"{1e6 * ours:.1f} | {100 * floor / ours:.1f}%" if ours else "- | -") + " | "
                   + (f"{1e6 * th:.1f} | {100 * floor / th:.1f}%" if th else "- | -") + " |")
    if sum_ours:
        out.append(f"| **training step passes** | {1e6 * sum_floor:.0f} | | {1e6 * sum_ours:.0f} | "
                   f"{100 * sum_floor / sum_ours:.1f}% | " + (f"{1e6 * sum_torch:.0f} | {100 * sum_floor / sum_torch:.1f}% |"
                                                              if sum_torch else "- | - |"))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--results", help="a bench_kernels.py --json file (or a results/*.json): compare its times with the floors")
    a = ap.parse_args(argv)
    print(f"AlexNet training step, batch {a.batch}: every pass the step runs (conv1's input gradient is not "
          "computed), floor = max(FLOPs / FP32 peak, bytes / bandwidth); F = bound by arithmetic, B = by memory.")
    print("Peaks: " + "; ".join(f"{n}: {f / 1e12:.1f} TFLOP/s, {b / 1e12:.2f} TB/s ({how})" for n, (f, b, how) in GPUS.items()))
    print()
    for line in table(a.batch, GPUS):
        print(line)
    if a.results:
        print()
        for line in with_results(a.results):
            print(line)


if __name__ == "__main__":
    main()
