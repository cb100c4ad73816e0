"""The built-in dataset: labelled shape images that pyconvnet generates itself, so that
``python -m pyconvnet.train`` needs no download.

    python -m pyconvnet.synthetic [--cache DIR] [--seed 0] [--size 64] [--probe]

Ten classes told apart by shape and structure only: disc, ring, square, frame (a square outline),
triangle, cross, star, hstripes and vstripes (a striped disc, stripes within 15 degrees of
horizontal / vertical) and checker (a checkerboard square). Every image draws, independently of
its class, the canvas size (64..96 pixels each way), the shape's position, size, rotation and
colour, and a background (a gradient between two random colours, blotches, pixel noise); the
shape keeps a minimum contrast against its background. Colour and mean intensity therefore say
little about the class: a linear classifier on the raw pixels does poorly (see
``linear_probe``), a small convolutional network does well, and random crops and reflections
help it generalise from 500 images per class. Every class is symmetric under horizontal
reflection (reflection is one of the augmentations).

The images are written as JPEG files in an ImageNet-style tree, SRC/train/<class>/*.jpg and
SRC/val/<class>/*.jpg, under the cache directory ($PYCONVNET_CACHE, else
$XDG_CACHE_HOME/pyconvnet, else ~/.cache/pyconvnet), and prepared by pyconvnet.prepare, the
same path as real data, at a size of the caller's choice (64x64 by default; the trainer asks for
72x72 on the CPU and 256x256 on a GPU), each size prepared once. The tree is deterministic given the seed (and the
NumPy and Pillow versions). ``ensure_dataset()`` does all of it once and returns the prepared
directory; later calls return at once.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time

import numpy as np
from PIL import Image

from . import prepare as _prepare
from .dataset import PreparedDataset
from .console import run_command
from .errors import UserError
from .files import DirectoryLock, remove_temporaries, temporary_path
from .workers import pool

CLASSES = ("checker", "cross", "disc", "frame", "hstripes", "ring", "square", "star",
           "triangle", "vstripes")
VERSION = 1  # bump when the images change, so caches of older trees are not reused
PREPARED_SIZE = 64
SUPERSAMPLE = 3  # shape edges are antialiased by averaging 3x3 samples per pixel


def cache_dir() -> str:
    if os.environ.get("PYCONVNET_CACHE"):
        return os.environ["PYCONVNET_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pyconvnet")


# ----------------------------------------------------------------------------- shapes

def _shape_mask(cls, u, v, rng):
    """Coverage (bool) of class `cls` at shape-frame coordinates (u, v), in units of the shape's
    radius (the shape fits in the unit disc)."""
    rho = np.hypot(u, v)
    box = np.maximum(np.abs(u), np.abs(v))
    if cls == "disc":
        return rho <= 1.0
    if cls == "ring":
        return (rho <= 1.0) & (rho >= rng.uniform(0.5, 0.7))
    if cls == "square":
        return box <= 0.75
    if cls == "frame":
        return (box <= 0.8) & (box >= rng.uniform(0.5, 0.6))
    if cls == "triangle":  # equilateral, circumradius 1: inradius 0.5 along three normals
        inside = np.ones(u.shape, bool)
        for k in range(3):
            a = math.pi / 2 + k * 2 * math.pi / 3
            inside &= u * math.cos(a) + v * math.sin(a) <= 0.5
        return inside
    if cls == "cross":
        w = rng.uniform(0.22, 0.32)
        return ((np.abs(u) <= w) & (np.abs(v) <= 0.95)) | ((np.abs(v) <= w) & (np.abs(u) <= 0.95))
    if cls == "star":  # five points, outer radius 1, inner radius ri
        ri, sector = rng.uniform(0.38, 0.5), math.pi / 5
        # Angle from the nearest tip (tips at multiples of 2 * sector): 0 at a tip, sector at an
        # inner vertex. By symmetry, testing one edge (tip p1 to inner vertex p2) is enough.
        theta = sector - np.abs(np.arctan2(v, u) % (2 * sector) - sector)
        p1 = np.array([1.0, 0.0])
        p2 = np.array([ri * math.cos(sector), ri * math.sin(sector)])
        d = p2 - p1
        # The ray at angle theta meets the edge p1-p2 at distance cross(p1, d) / cross(dir, d).
        limit = (p1[0] * d[1] - p1[1] * d[0]) / (np.cos(theta) * d[1] - np.sin(theta) * d[0])
        return rho <= limit
    if cls in ("hstripes", "vstripes"):
        period = rng.uniform(0.45, 0.6)
        phase = rng.uniform(0, period)
        coord = v if cls == "hstripes" else u
        return (rho <= 1.0) & (((coord + phase) % period) < period / 2)
    if cls == "checker":
        period = rng.uniform(0.5, 0.7)
        cu, cv = np.floor(u / (period / 2) + 0.5), np.floor(v / (period / 2) + 0.5)
        return (box <= 0.8) & ((cu + cv) % 2 == 0)
    raise ValueError(f"unknown class {cls!r}")


def _rotation(cls, rng):
    if cls in ("hstripes", "vstripes", "checker"):
        return rng.uniform(-math.pi / 12, math.pi / 12)  # the stripes' direction is the class
    return rng.uniform(0, 2 * math.pi)


def _luma(rgb):
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _background(h, w, rng):
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    a = rng.uniform(0, 2 * math.pi)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    t = (x * math.cos(a) + y * math.sin(a))
    t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
    img = c0 + (c1 - c0) * t[..., None]
    blotch = Image.fromarray(rng.uniform(0, 255, (4, 4, 3)).astype(np.uint8)).resize((w, h), Image.BICUBIC)
    img += (np.asarray(blotch, np.float64) - 127.5) * rng.uniform(0.0, 0.3)
    return img


def render(cls, rng) -> np.ndarray:
    """One image of class `cls`: uint8 (H, W, 3) with H, W in [64, 96]."""
    h, w = (int(v) for v in rng.integers(64, 97, 2))
    bg = _background(h, w, rng)
    bg_mean = bg.reshape(-1, 3).mean(axis=0)
    while True:  # a colour that stands out from the background
        fg = rng.uniform(0, 255, 3)
        if abs(_luma(fg) - _luma(bg_mean)) >= 50 or np.linalg.norm(fg - bg_mean) >= 120:
            break
    radius = rng.uniform(0.2, 0.34) * min(h, w)
    cy, cx = rng.uniform(0.35, 0.65) * h, rng.uniform(0.35, 0.65) * w
    angle = _rotation(cls, rng)
    # Coverage is computed only in the shape's bounding box (every shape lies within 1.15 radii
    # of its centre), at SUPERSAMPLE x SUPERSAMPLE samples per pixel.
    y0, y1 = max(0, int(cy - 1.2 * radius)), min(h, int(math.ceil(cy + 1.2 * radius)))
    x0, x1 = max(0, int(cx - 1.2 * radius)), min(w, int(math.ceil(cx + 1.2 * radius)))
    s = SUPERSAMPLE
    yy, xx = np.mgrid[y0 * s:y1 * s, x0 * s:x1 * s].astype(np.float32)
    dy, dx = (yy + 0.5) / s - cy, (xx + 0.5) / s - cx
    ca, sa = math.cos(angle), math.sin(angle)
    u, v = (dx * ca + dy * sa) / radius, (-dx * sa + dy * ca) / radius
    cover = np.zeros((h, w, 1))
    cover[y0:y1, x0:x1, 0] = _shape_mask(cls, u, v, rng).reshape(y1 - y0, s, x1 - x0, s).mean(axis=(1, 3))
    img = bg * (1 - cover) + fg * cover + rng.normal(0, rng.uniform(2, 10), (h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _image_rng(seed, split, cls_index, i):
    return np.random.default_rng([VERSION, seed, 0 if split == "train" else 1, cls_index, i])


def _write_class(root, seed, split, cls_index, count):
    cls = CLASSES[cls_index]
    folder = os.path.join(root, split, cls)
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        img = render(cls, _image_rng(seed, split, cls_index, i))
        Image.fromarray(img).save(os.path.join(folder, f"{cls}_{i:05d}.jpg"), quality=90)
    return count


def generate(root, seed=0, train_per_class=500, val_per_class=100, workers=None):
    """Writes the JPEG tree root/train/<class>/, root/val/<class>/ (root must not exist)."""
    workers = len(os.sched_getaffinity(0)) if workers is None else workers
    jobs = [(root, seed, split, c, n) for split, n in (("train", train_per_class), ("val", val_per_class))
            for c in range(len(CLASSES))]
    if workers <= 1:
        for job in jobs:
            _write_class(*job)
        return
    with pool(workers) as executor:
        for f in [executor.submit(_write_class, *job) for job in jobs]:
            f.result()


def ensure_dataset(cache=None, seed=0, train_per_class=500, val_per_class=100, workers=None,
                   progress=True, size=PREPARED_SIZE) -> str:
    """The prepared directory of the built-in dataset, generated and prepared on first use at
    `size` x `size` (one JPEG tree, prepared once per size)."""
    root = os.path.join(cache or cache_dir(), f"shapes-v{VERSION}-seed{seed}-{train_per_class}x{val_per_class}")
    src = os.path.join(root, "src")
    out = os.path.join(root, "prepared" if size == PREPARED_SIZE else f"prepared-{size}")
    if not os.path.isdir(src):
        t0 = time.monotonic()
        os.makedirs(root, exist_ok=True)
        with DirectoryLock(os.path.join(root, "lock"), f"another process ({{pid}}) is generating the built-in "
                           f"dataset in {root}; wait for it to finish", _prepare.PrepareError):
            remove_temporaries(root)  # a tree left by a generation that was killed
            if not os.path.isdir(src):
                tmp = temporary_path(src)
                try:
                    generate(str(tmp), seed, train_per_class, val_per_class, workers)
                    os.replace(tmp, src)  # the tree appears whole, or not at all
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
                if progress:
                    n = (train_per_class + val_per_class) * len(CLASSES)
                    print(f"synthetic: generated {n} images in {src} ({time.monotonic() - t0:.1f} s)",
                          file=sys.stderr)
    _prepare.prepare(src, out, size=size, workers=workers, progress=progress)
    return out


# ----------------------------------------------------------------------------- linear baseline

def linear_probe(data, ridge=(1e-2, 1e-1, 1.0, 10.0, 100.0), holdout=0.2) -> dict:
    """Accuracy of a linear classifier on the raw pixels: least squares onto one-hot targets
    with an L2 penalty (ridge regression, solved in its dual form), on the mean-subtracted full
    prepared images. The penalty (relative to the mean squared norm of the images) is chosen on a
    held-out share of the training set, then the classifier is refit on all of it."""
    data = data if isinstance(data, PreparedDataset) else PreparedDataset(data)
    x = data.images("train").reshape(data.count("train"), -1).astype(np.float32)
    y = data.labels("train")
    xv = data.images("val").reshape(data.count("val"), -1).astype(np.float32)
    yv = data.labels("val")
    mu = x.mean(axis=0)
    x -= mu
    xv -= mu
    n, c = len(x), data.num_classes
    targets = np.eye(c)[y] - 1.0 / c
    gram = (x @ x.T).astype(np.float64)
    scale = np.trace(gram) / n
    perm = np.random.default_rng(0).permutation(n)
    fit, held = perm[int(n * holdout):], perm[:int(n * holdout)]

    def solve(rows, lam):
        return np.linalg.solve(gram[np.ix_(rows, rows)] + lam * scale * np.eye(len(rows)), targets[rows])

    scores = {}
    for lam in ridge:
        alpha = solve(fit, lam)
        scores[lam] = float(np.mean(np.argmax(gram[np.ix_(held, fit)] @ alpha, axis=1) == y[held]))
    best = max(ridge, key=lambda lam: scores[lam])
    alpha = solve(np.arange(n), best)
    train_acc = float(np.mean(np.argmax(gram @ alpha, axis=1) == y))
    val_acc = float(np.mean(np.argmax((xv @ x.T).astype(np.float64) @ alpha, axis=1) == yv))
    return {"val_accuracy": val_acc, "train_accuracy": train_acc, "ridge": best,
            "holdout_accuracy": scores, "chance": 1.0 / c}


def run(argv=None) -> str:
    """Runs the command line; returns the prepared directory."""
    p = argparse.ArgumentParser(prog="python -m pyconvnet.synthetic", description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", help="cache directory (default: $PYCONVNET_CACHE or ~/.cache/pyconvnet)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-per-class", type=int, default=500)
    p.add_argument("--val-per-class", type=int, default=100)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--size", type=int, default=PREPARED_SIZE, help="prepared image size")
    p.add_argument("--probe", action="store_true", help="also report the linear classifier's accuracy")
    a = p.parse_args(argv)
    for flag, value, low in (("--seed", a.seed, 0), ("--train-per-class", a.train_per_class, 1),
                             ("--val-per-class", a.val_per_class, 1), ("--workers", a.workers or 0, 0)):
        if value < low:
            raise UserError(f"{flag} must be >= {low}; got {value}")
    try:
        out = ensure_dataset(a.cache, a.seed, a.train_per_class, a.val_per_class, a.workers, size=a.size)
    except OSError as e:
        raise UserError(f"the built-in dataset could not be made: {e}") from None
    print(out)
    if a.probe:
        t0 = time.monotonic()
        r = linear_probe(out)
        print(f"linear classifier on raw pixels: val accuracy {r['val_accuracy']:.3f} "
              f"(train {r['train_accuracy']:.3f}, ridge {r['ridge']}, chance {r['chance']:.3f}; "
              f"{time.monotonic() - t0:.1f} s)")
    return out


def main(argv=None):
    return run_command(run, argv)[0]


if __name__ == "__main__":
    from pyconvnet.synthetic import main as _main
    sys.exit(_main())
