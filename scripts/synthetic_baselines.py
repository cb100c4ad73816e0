#!/usr/bin/env python3
"""Baselines on the built-in shapes dataset, to show what it takes to learn it (README, "Data").

    python scripts/synthetic_baselines.py [--cache DIR]

1. A linear classifier on the raw pixels (pyconvnet.synthetic.linear_probe).
2. The same kind of classifier on the features of a fixed, untrained two-layer convolutional
   network (random 5x5 and 3x3 filters, ReLU, max-pooling) of the central 56x56 crop: what
   convolution buys before any learning.
3. As 2, with the training set extended by reflected and shifted crops: what augmentation buys.
Takes about a minute on two cores.
"""
import argparse
import os
import sys
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pyconvnet import synthetic  # noqa: E402
from pyconvnet.dataset import PreparedDataset  # noqa: E402


def conv_features(images, mean, w1, w2, offset=(4, 4), flip=False, crop=56):
    """Random-filter features: conv 5x5 stride 2 (48) -> ReLU -> max 2x2 -> conv 3x3 (96) ->
    ReLU -> max 2x2: 5 x 5 x 96 per image."""
    y, x = offset
    out = []
    for a in range(0, len(images), 250):
        v = (images[a:a + 250, y:y + crop, x:x + crop].astype(np.float32) - mean[y:y + crop, x:x + crop]) / 64
        if flip:
            v = v[:, :, ::-1]
        n, side = len(v), (crop - 5) // 2 + 1  # 26
        h = sliding_window_view(v, (5, 5), axis=(1, 2))[:, ::2, ::2].reshape(n, side, side, 75) @ w1
        h = np.maximum(h, 0).reshape(n, side // 2, 2, side // 2, 2, -1).max(axis=(2, 4))  # 13 x 13
        s2 = side // 2 - 2  # 11
        p = sliding_window_view(h, (3, 3), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3).reshape(n, s2, s2, -1)
        h2 = np.maximum(p @ w2, 0)[:, :s2 - 1, :s2 - 1]
        h2 = h2.reshape(n, (s2 - 1) // 2, 2, (s2 - 1) // 2, 2, -1).max(axis=(2, 4))
        out.append(h2.reshape(n, -1))
    return np.concatenate(out)


def ridge_accuracy(f, y, fv, yv, ridges=(1e-2, 1e-1, 1.0, 10.0)):
    """Best validation accuracy of ridge regression onto one-hot targets over `ridges` (an
    optimistic choice, made on the validation set, for these diagnostics only)."""
    mu, sd = f.mean(0), f.std(0) + 1e-6
    f, fv = (f - mu) / sd, (fv - mu) / sd
    gram, rhs = f.T @ f, f.T @ np.eye(int(y.max()) + 1)[y]
    return max(float(np.mean(np.argmax(fv @ np.linalg.solve(gram + r * len(f) * np.eye(len(gram)), rhs), 1) == yv))
               for r in ridges)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", help="cache directory of the built-in dataset")
    a = p.parse_args()
    data = PreparedDataset(synthetic.ensure_dataset(a.cache))
    t0 = time.monotonic()
    probe = synthetic.linear_probe(data)
    print(f"linear classifier on raw pixels: {probe['val_accuracy']:.3f} val accuracy (chance {probe['chance']:.3f})")
    x, y = np.asarray(data.images("train")), data.labels("train")
    xv, yv = np.asarray(data.images("val")), data.labels("val")
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((75, 48)) / np.sqrt(75)).astype(np.float32)
    w2 = (rng.standard_normal((9 * 48, 96)) / np.sqrt(9 * 48)).astype(np.float32)
    f, fv = conv_features(x, data.mean, w1, w2), conv_features(xv, data.mean, w1, w2)
    print(f"linear classifier on untrained conv features: {ridge_accuracy(f, y, fv, yv):.3f}")
    extra = [conv_features(x, data.mean, w1, w2, flip=True), conv_features(x, data.mean, w1, w2, offset=(0, 8)),
             conv_features(x, data.mean, w1, w2, offset=(8, 0))]
    acc = ridge_accuracy(np.concatenate([f] + extra), np.concatenate([y] * 4), fv, yv)
    print(f"  ... with reflected and shifted copies of the training images: {acc:.3f}")
    print(f"({time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
