#!/usr/bin/env python3
"""Files one run's results under benchmarks/results/ and prints them as Markdown for the README.

    python benchmarks/save_results.py OUTDIR MACHINE
    # OUTDIR holds kernels.txt/.json and e2e.txt/.json (as gpu_suite.sh writes them);
    # MACHINE names the machine, e.g. h100-sxm or ci-2core-epyc

writes benchmarks/results/<date>-<MACHINE>.txt (the two reports, as printed) and .json
({"kernels": ..., "e2e": ...}, as written), <date> being the run's own date.
"""
from __future__ import annotations

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or not re.fullmatch(r"[A-Za-z0-9._-]+", argv[1]):
        sys.exit(__doc__)
    src, machine = argv
    runs, texts = {}, []
    for kind in ("kernels", "e2e"):
        j, t = os.path.join(src, f"{kind}.json"), os.path.join(src, f"{kind}.txt")
        if os.path.exists(j):
            with open(j) as f:
                runs[kind] = json.load(f)
        if os.path.exists(t):
            with open(t) as f:
                texts.append(f.read())
    if not runs:
        sys.exit(f"save_results: no kernels.json or e2e.json in {src}")
    date = next(iter(runs.values()))["date"][:10]
    base = os.path.join(HERE, "results", f"{date}-{machine}")
    os.makedirs(os.path.dirname(base), exist_ok=True)
    with open(base + ".txt", "w") as f:
        f.write("\n".join(texts))
    with open(base + ".json", "w") as f:
        json.dump(runs, f, indent=1)
        f.write("\n")
    print(f"wrote {base}.txt and {base}.json\n")
    for text in texts:  # the README's excerpt: the kernel summary table, the end-to-end lines
        m = re.search(r"^## Summary.*?(?=^# \d+ cases)", text, re.S | re.M)
        if m:
            print(m.group(0).strip() + "\n")
        lines = [l for l in text.splitlines() if re.match(r"^(pyconvnet|torch) ", l)]
        if lines:
            print("```\n" + "\n".join(lines) + "\n```\n")


if __name__ == "__main__":
    main()
