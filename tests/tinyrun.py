"""A tiny training setup shared by the trainer and checkpoint tests: 80 + 20 images of the
built-in classes at 72x72 and a width-0.125 AlexNet that trains an epoch in seconds."""
from __future__ import annotations

import io

from pyconvnet import prepare, synthetic, train

TINY = ["--device", "cpu", "--batch-size", "16", "--width", "0.125", "--init", "he", "--image-size", "72",
        "--crop-size", "64", "--lr", "0.01", "--log-every", "1"]


def make_tiny_data(root) -> str:
    synthetic.generate(str(root / "src"), seed=3, train_per_class=8, val_per_class=2, workers=1)
    prepare.prepare(str(root / "src"), str(root / "prepared"), size=72, workers=1, progress=False)
    return str(root / "prepared")


def run_train(args, **kw):
    """(train.run's result, what it printed)."""
    out = io.StringIO()
    result = train.run(args, out=out, **kw)
    return result, out.getvalue()
