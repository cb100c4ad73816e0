"""Decode and resize an image tree once, into memory-mappable arrays (pyconvnet/dataset.py).

    python -m pyconvnet.prepare SRC OUT [--size 256] [--val-fraction 0.1] [--seed 0]
                                        [--names FILE] [--workers N]

SRC is an ImageNet-style tree, one folder per class (the folder name is the class's synset id),
of images in any format Pillow opens. Either SRC/train and SRC/val (each with the same class
folders), or one tree (SRC, or SRC/train alone) that is split per class into train and val by
--val-fraction, from --seed. Subfolders of a class folder belong to the class; hidden files and
folders, and files outside class folders, are ignored and counted in the manifest.

Each image: EXIF orientation applied; converted to 8-bit RGB (grayscale, palette, CMYK as Pillow
converts them; 16-bit by scaling 0..65535 to 0..255; transparent pixels composited over white);
rescaled with --resample (default bilinear, Pillow's antialiasing filter) so that its short side
is --size, the long side rounded half up, then the central size x size square kept (left/top
offset (new - size) // 2). Files Pillow cannot read (empty, truncated, corrupt, not an image) are
skipped and listed with the reason in manifest.json, and counted in the summary line.

Resumable. Decoding runs on all cores, in shards of consecutive files; each worker writes its
shard to OUT/.work whole (temp file, then rename), and the main process appends finished shards
to the output arrays in file order, committing a progress record (rename) after each. Killed at
any point, a second run with the same arguments redoes at most the shards in flight; the finished
files appear by rename, and manifest.json last: a directory with a manifest is complete.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import os
import platform
import shutil
import signal
import struct
import sys
import time
import warnings
from concurrent.futures.process import BrokenProcessPool

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import _C, __version__
from .keys import STREAM_SPLIT
from .workers import pool as worker_pool
from .console import Progress, format_duration, run_command
from .dataset import (CLASSES, FORMAT, FORMAT_VERSION, MANIFEST, MEAN, PCA, SPLITS, images_file,
                      labels_file, output_files, read_json)
from .errors import UserError
from .files import DirectoryLock, atomic_json, atomic_npy, atomic_write, fsync_directory, is_temporary, \
    remove_temporaries

RESAMPLE = {"nearest": Image.NEAREST, "box": Image.BOX, "bilinear": Image.BILINEAR,
            "hamming": Image.HAMMING, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}
WORK = ".work"
HEADER_BYTES = 128  # fixed .npy header size, so the final shape can be written in place


class PrepareError(UserError, ValueError):
    """A problem with SRC, OUT or the arguments; the message says what and how to go on."""


# ----------------------------------------------------------------------------- one image

def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB: 16-bit and 32-bit integer grayscale scaled from 0..65535 (mode I only when its
    values exceed 255), float grayscale clipped to 0..255, transparency composited over white,
    every other mode by Pillow's convert("RGB")."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I") or mode == "F":
        a = np.asarray(im).astype(np.float64)
        if mode.startswith("I;16") or (mode == "I" and a.size and a.max() > 255):
            a = a * (255.0 / 65535.0)
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def resized_size(width: int, height: int, size: int) -> tuple:
    """(width, height) after rescaling the short side to `size`, the long side rounded half up."""
    if width <= height:
        return size, max(size, (2 * height * size + width) // (2 * width))
    return max(size, (2 * width * size + height) // (2 * height)), size


def resize_center_crop(im: Image.Image, size: int, resample=Image.BILINEAR) -> np.ndarray:
    """Short side to `size`, then the central size x size square, as uint8 (size, size, 3)."""
    w, h = resized_size(im.width, im.height, size)
    im = im.resize((w, h), resample)
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)


def load_image(path, size: int, resample=Image.BILINEAR) -> np.ndarray:
    """One file as prepared: uint8 (size, size, 3). Raises what Pillow raises for a bad file."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        return resize_center_crop(to_rgb(im), size, resample)


def skip_reason(path: str, err: BaseException) -> str:
    """A short category ("empty file", "not an image", "truncated", "corrupt", "unreadable"), then
    the error."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file: 0 bytes"
    except OSError:
        pass
    msg = str(err).replace(path, "<file>")
    if isinstance(err, Image.DecompressionBombError):
        return f"too large: {msg}"
    if isinstance(err, UnidentifiedImageError):
        return "not an image: Pillow cannot identify the format"
    if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return f"unreadable: {err.strerror or msg}"
    if "truncated" in msg.lower():
        return f"truncated: {msg}"
    return f"corrupt: {type(err).__name__}: {msg}"


# ----------------------------------------------------------------------------- scanning SRC

def _is_hidden(name):
    return name.startswith(".")


def _class_files(folder, ignored):
    """The files under one class folder (recursively), relative to it, sorted."""
    files = []
    for root, dirs, names in os.walk(folder, onerror=_raise):
        hidden = [d for d in dirs if _is_hidden(d)]
        ignored["hidden"] += len(hidden)
        dirs[:] = sorted(d for d in dirs if not _is_hidden(d))
        for name in names:
            if _is_hidden(name):
                ignored["hidden"] += 1
            else:
                files.append(os.path.relpath(os.path.join(root, name), folder))
    return sorted(files)


def _raise(err):
    raise err


def _list_tree(tree, what, ignored):
    """{class folder name: [files]} of one class tree; PrepareError for no or empty classes."""
    try:
        entries = sorted(os.scandir(tree), key=lambda e: e.name)
    except OSError as e:
        raise PrepareError(f"cannot read {what} {tree}: {e.strerror or e}") from None
    classes = {}
    for e in entries:
        if _is_hidden(e.name):
            ignored["hidden"] += 1
        elif e.is_dir():
            try:
                classes[e.name] = _class_files(e.path, ignored)
            except OSError as err:
                raise PrepareError(f"cannot read class folder {e.path}: {err.strerror or err}") from None
        else:
            ignored["outside class folders"] += 1
    if not classes:
        raise PrepareError(f"{what} {tree} has no class folders: expected one folder per class "
                           f"(e.g. {tree}/n01440764/*.JPEG)")
    empty = [c for c, files in classes.items() if not files]
    if empty:
        shown = ", ".join(empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
        raise PrepareError(f"{what} {tree}: {len(empty)} class folder(s) hold no files: {shown}. "
                           "Remove them or add their images.")
    return classes


def _split_keys(seed, class_index, n):
    words = _C.philox_words(seed, STREAM_SPLIT, class_index << 40, 2 * n).astype(np.uint64)
    return (words[0::2] << np.uint64(32)) | words[1::2]


def read_names(path):
    """Synset -> human-readable name, from a JSON object or lines "SYNSET NAME..." (as ImageNet's
    LOC_synset_mapping.txt)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise PrepareError(f"cannot read the names file {path}: {e.strerror or e}") from None
    if text.lstrip().startswith("{"):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as e:
            raise PrepareError(f"names file {path} is not valid JSON: {e}") from None
        return {str(k): str(v) for k, v in names.items()}
    names = {}
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if parts:
            names[parts[0]] = parts[1].strip() if len(parts) > 1 else parts[0]
    return names


def scan(src, settings, names_file=None):
    """The plan of a preparation: classes, and each split's (file, label) list."""
    if not os.path.exists(src):
        raise PrepareError(f"SRC {src} does not exist")
    if not os.path.isdir(src):
        raise PrepareError(f"SRC {src} is not a directory")
    if not os.access(src, os.R_OK | os.X_OK):
        raise PrepareError(f"cannot read SRC {src}: permission denied")
    ignored = collections.Counter({"hidden": 0, "outside class folders": 0})
    train_dir, val_dir = os.path.join(src, "train"), os.path.join(src, "val")
    if os.path.isdir(train_dir) and os.path.isdir(val_dir):
        layout, used = "train+val", {"train", "val"}
        train = _list_tree(train_dir, "SRC/train", ignored)
        val = _list_tree(val_dir, "SRC/val", ignored)
        extra = sorted(set(val) - set(train))
        if extra:
            raise PrepareError(f"SRC/val has class folders that SRC/train lacks: {', '.join(extra[:5])}"
                               + (f" and {len(extra) - 5} more" if len(extra) > 5 else ""))
        synsets = sorted(train)
        label = {s: i for i, s in enumerate(synsets)}
        splits = {"train": [[f"train/{c}/{f}", label[c]] for c in synsets for f in train[c]],
                  "val": [[f"val/{c}/{f}", label[c]] for c in sorted(val) for f in val[c]]}
    else:
        layout = "split"
        if os.path.isdir(train_dir):
            used, prefix, tree = {"train"}, "train/", _list_tree(train_dir, "SRC/train", ignored)
        else:
            used, prefix, tree = None, "", _list_tree(src, "SRC", ignored)
        synsets = sorted(tree)
        splits = {"train": [], "val": []}
        for i, c in enumerate(synsets):
            files = tree[c]
            n_val = min(len(files) - 1, math.floor(len(files) * settings["val_fraction"] + 0.5))
            val_set = set(np.argsort(_split_keys(settings["seed"], i, len(files)), kind="stable")[:n_val].tolist())
            for k, f in enumerate(files):
                splits["val" if k in val_set else "train"].append([f"{prefix}{c}/{f}", i])
    if used:  # beside train/ (and val/), SRC may hold anything: a test/ folder, a README, ...
        ignored[f"in SRC beside {' and '.join(sorted(u + '/' for u in used))}"] = sum(
            1 for e in os.scandir(src) if e.name not in used)
    names = read_names(names_file) if names_file else {}
    return {"source": src, "layout": layout, "settings": settings, "synsets": synsets,
            "names": [names.get(s, s) for s in synsets], "splits": splits,
            "ignored": dict(ignored)}


# ----------------------------------------------------------------------------- files in OUT

def _npy_header(shape, descr):
    """A version-1.0 .npy header of exactly HEADER_BYTES bytes."""
    text = "{'descr': '%s', 'fortran_order': False, 'shape': %r, }" % (descr, tuple(shape))
    body = text.ljust(HEADER_BYTES - 10 - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body.encode("latin1")


def _failpoint(name):
    """Testing hook: PYCONVNET_PREPARE_FAILPOINT=name kills this process here, as `kill -9` would
    (tests/test_prepare.py kills a run at every commit point and checks that a rerun finishes)."""
    if os.environ.get("PYCONVNET_PREPARE_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


class _Partial:
    """One split's images and labels being assembled in OUT/.work: the images as a .npy file with
    a fixed-size header, the labels as raw int32; both cut back to the committed count on resume."""

    def __init__(self, work, split, size):
        self.images = os.path.join(work, images_file(split) + ".partial")
        self.labels = os.path.join(work, labels_file(split) + ".partial")
        self.image_bytes = size * size * 3

    def open(self, count):
        for path, head, item in ((self.images, True, self.image_bytes), (self.labels, False, 4)):
            with open(path, "ab") as f:  # creates it if missing
                pass
            need = (HEADER_BYTES if head else 0) + count * item
            if count and os.path.getsize(path) < need:
                raise PrepareError(f"{path} holds less than its progress record says ({os.path.getsize(path)} "
                                   f"< {need} bytes): the work directory is damaged; delete OUT and prepare again")
            with open(path, "r+b") as f:
                if head:
                    f.write(_npy_header((0,), "|u1"))
                f.truncate(need)

    def append(self, count, images, labels):
        for path, offset, data in ((self.images, HEADER_BYTES + count * self.image_bytes,
                                    np.ascontiguousarray(images, dtype=np.uint8).reshape(-1).data),
                                   (self.labels, count * 4, np.ascontiguousarray(labels, dtype="<i4").tobytes())):
            try:
                with open(path, "r+b") as f:
                    f.seek(offset)
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:  # a full disk: say which file could not be written
                e.filename = e.filename or path
                raise

    def read_labels(self, count):
        return np.fromfile(self.labels, dtype="<i4", count=count).astype(np.int32)

    def finish(self, count, shape, dest):
        """Writes the final shape into the header and renames the images to `dest`."""
        with open(self.images, "r+b") as f:
            f.write(_npy_header((count,) + tuple(shape), "|u1"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(self.images, dest)


# ----------------------------------------------------------------------------- shards

def _shard_path(work, index):
    return os.path.join(work, "shards", f"{index:07d}.npz")


def pixel_sums(images):
    """Exact integer sums over uint8 images (n, S, S, 3): per pixel (S, S, 3), per channel (3,),
    and of the channel products (3, 3) over every pixel."""
    pixel_sum = images.sum(axis=0, dtype=np.int64)
    rgb_outer = np.zeros((3, 3), np.int64)
    for a in range(0, len(images), 16):
        # Products of 16 images' pixels sum to < 16 * 2^16 * 255^2 < 2^53: float64 BLAS is exact.
        x = images[a:a + 16].reshape(-1, 3).astype(np.float64)
        rgb_outer += (x.T @ x).astype(np.int64)
    return pixel_sum, pixel_sum.sum(axis=(0, 1)), rgb_outer


def decode_shard(work, index, src, split, entries, size, resample):
    """Worker: decodes `entries` ([relative path, label] pairs) and writes shard `index` whole.
    Training shards also carry their pixel sums (pixel_sums) for the mean and the PCA."""
    images = np.empty((len(entries), size, size, 3), np.uint8)
    labels, skipped = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's warnings about odd but readable files
        for rel, label in entries:
            path = os.path.join(src, rel)
            try:
                images[len(labels)] = load_image(path, size, RESAMPLE[resample])
            except Exception as e:  # every way a file can fail becomes a listed skip
                skipped.append([split, rel, skip_reason(path, e)])
                continue
            labels.append(label)
    images = images[:len(labels)]
    if split == "train":
        pixel_sum, rgb_sum, rgb_outer = pixel_sums(images)
    else:
        pixel_sum, rgb_sum, rgb_outer = np.zeros((size, size, 3), np.int64), np.zeros(3, np.int64), np.zeros((3, 3), np.int64)
    atomic_write(_shard_path(work, index), lambda f: np.savez(
        f, images=images, labels=np.array(labels, np.int32), pixel_sum=pixel_sum, rgb_sum=rgb_sum,
        rgb_outer=rgb_outer, skipped=np.array(json.dumps(skipped))))
    return index


def _shards(plan, shard_size):
    """[(split, first, last)] over every split's file list, in order."""
    out = []
    for split in SPLITS:
        n = len(plan["splits"][split])
        out += [(split, a, min(n, a + shard_size)) for a in range(0, n, shard_size)]
    return out


def _default_shard_size(size, total, workers):
    """About 64 MiB of pixels per shard, and at least 4 shards per worker on small trees."""
    by_bytes = max(1, (64 << 20) // (size * size * 3))
    by_work = max(1, math.ceil(total / (4 * max(1, workers))))
    return min(by_bytes, by_work)


class _Progress:
    """The committed state: shards appended, images per split, skipped files, statistics."""

    def __init__(self, work, size):
        self.path = os.path.join(work, "progress.npz")
        self.next_shard = 0
        self.counts = {s: 0 for s in SPLITS}
        self.files_done = 0
        self.skipped = []
        self.seconds_before = 0.0  # spent by earlier, interrupted runs
        self.t0 = time.monotonic()
        self.pixel_sum = np.zeros((size, size, 3), np.int64)
        self.rgb_sum = np.zeros(3, np.int64)
        self.rgb_outer = np.zeros((3, 3), np.int64)
        if os.path.exists(self.path):
            with np.load(self.path) as z:
                meta = json.loads(str(z["meta"]))
                self.pixel_sum, self.rgb_sum, self.rgb_outer = z["pixel_sum"], z["rgb_sum"], z["rgb_outer"]
            self.next_shard, self.counts = meta["next_shard"], meta["counts"]
            self.files_done, self.skipped = meta["files_done"], meta["skipped"]
            self.seconds_before = meta["seconds"]

    @property
    def seconds(self):
        """Time spent on this preparation so far, over every run."""
        return self.seconds_before + time.monotonic() - self.t0

    def commit(self):
        meta = {"next_shard": self.next_shard, "counts": self.counts, "files_done": self.files_done,
                "skipped": self.skipped, "seconds": self.seconds}
        atomic_write(self.path, lambda f: np.savez(
            f, meta=np.array(json.dumps(meta)), pixel_sum=self.pixel_sum, rgb_sum=self.rgb_sum,
            rgb_outer=self.rgb_outer))


class Reporter:
    """The progress line on stderr (pyconvnet.console.Progress; every 10 s in a log)."""

    def __init__(self, total, done, enabled=True, stream=None):
        self.total, self.start_done = total, done
        self.enabled = enabled
        self.progress = Progress(stream or sys.stderr, every_seconds=10.0)
        self.t0 = time.monotonic()

    def update(self, done, skipped, final=False):
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.t0
        rate = (done - self.start_done) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        pct = 100.0 * done / self.total if self.total else 100.0
        self.progress.step(f"prepare: {done}/{self.total} files ({pct:.1f}%), {rate:.0f} files/s, "
                           f"ETA {format_duration(eta)}, {skipped} skipped", done, self.total, final)


def _decode_all(plan, work, progress, workers, report):
    """Decodes every shard not yet appended and appends them in order, committing after each."""
    s = plan["settings"]
    size, shards = s["size"], _shards(plan, plan["shard_size"])
    if progress.next_shard == len(shards):
        return  # all appended; finalising may have moved the images out of .work already
    partial = {split: _Partial(work, split, size) for split in SPLITS}
    for split in SPLITS:
        partial[split].open(progress.counts[split])
    os.makedirs(os.path.join(work, "shards"), exist_ok=True)
    for name in os.listdir(os.path.join(work, "shards")):
        stem = name.split(".")[0]
        if not stem.isdigit() or int(stem) < progress.next_shard or not name.endswith(".npz"):
            os.remove(os.path.join(work, "shards", name))  # appended already, or a dead temp file

    def task(k):
        split, a, b = shards[k]
        return (work, k, plan["source"], split, plan["splits"][split][a:b], size, s["resample"])

    todo = [k for k in range(progress.next_shard, len(shards)) if not os.path.exists(_shard_path(work, k))]
    pool = worker_pool(workers) if workers > 0 and todo else None
    futures, window = {}, 2 * workers + 2
    queue = collections.deque(todo)
    try:
        for k in range(progress.next_shard, len(shards)):
            while pool and queue and len(futures) < window:
                j = queue.popleft()
                futures[j] = pool.submit(decode_shard, *task(j))
            if k in futures:
                futures.pop(k).result()
            elif not os.path.exists(_shard_path(work, k)):
                queue.remove(k)
                decode_shard(*task(k))
            _append(k, shards[k], plan, work, partial, progress)
            report.update(progress.files_done, len(progress.skipped))
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)


def _append(k, shard, plan, work, partial, progress):
    split, a, b = shard
    path = _shard_path(work, k)
    with np.load(path) as z:
        images, labels = z["images"], z["labels"]
        partial[split].append(progress.counts[split], images, labels)
        _failpoint(f"append:{k}")
        if split == "train":
            progress.pixel_sum = progress.pixel_sum + z["pixel_sum"]
            progress.rgb_sum = progress.rgb_sum + z["rgb_sum"]
            progress.rgb_outer = progress.rgb_outer + z["rgb_outer"]
        progress.skipped += json.loads(str(z["skipped"]))
    progress.counts[split] += len(labels)
    progress.files_done += b - a
    progress.next_shard = k + 1
    progress.commit()
    _failpoint(f"commit:{k}")
    os.remove(path)


# ----------------------------------------------------------------------------- statistics

def pixel_statistics(pixel_sum, rgb_sum, rgb_outer, count):
    """(mean image float32 (S, S, 3), RGB covariance, eigenvalues descending, eigenvectors as
    columns) from exact integer sums over `count` images. The covariance is the population one
    (divided by the number of pixels); each eigenvector's largest component is made positive."""
    mean = (pixel_sum / count).astype(np.float32)
    n_pix = count * pixel_sum.shape[0] * pixel_sum.shape[1]
    mu = rgb_sum / n_pix
    cov = rgb_outer / n_pix - np.outer(mu, mu)
    eigvals, eigvecs = np.linalg.eigh(cov)
    order = np.argsort(eigvals)[::-1]
    eigvals, eigvecs = eigvals[order], eigvecs[:, order]
    signs = np.sign(eigvecs[np.argmax(np.abs(eigvecs), axis=0), np.arange(3)])
    return mean, cov, eigvals, eigvecs * signs


# ----------------------------------------------------------------------------- the whole run

def _versions():
    import PIL
    return {"pyconvnet": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "pillow": PIL.__version__, "format": FORMAT_VERSION}


def _settings(size, val_fraction, seed, resample):
    if not isinstance(size, int) or size < 1:
        raise PrepareError(f"size must be a positive integer; got {size!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise PrepareError(f"val_fraction must be in [0, 1); got {val_fraction!r}")
    if not isinstance(seed, int) or not 0 <= seed < 2 ** 64:
        raise PrepareError(f"seed must be an integer in [0, 2^64); got {seed!r}")
    if resample not in RESAMPLE:
        raise PrepareError(f"resample must be one of {', '.join(RESAMPLE)}; got {resample!r}")
    return {"size": size, "val_fraction": float(val_fraction), "seed": seed, "resample": resample}


def _check_out(out, src):
    """'done' (a finished dataset), 'work' (empty, or an unfinished preparation of ours)."""
    if os.path.commonpath([out, src]) == src:
        raise PrepareError(f"OUT {out} is inside SRC {src}: it would be read as a class folder")
    if not os.path.exists(out):
        return "work"
    if not os.path.isdir(out):
        raise PrepareError(f"OUT {out} exists and is not a directory")
    entries = set(os.listdir(out))
    other = sorted(e for e in entries - output_files() - {WORK} if not is_temporary(e))
    if other:
        shown = ", ".join(other[:5]) + (f" and {len(other) - 5} more" if len(other) > 5 else "")
        raise PrepareError(f"OUT {out} exists and holds other files ({shown}); prepare writes only "
                           "into a new or empty directory, or finishes its own interrupted output there")
    if MANIFEST in entries:
        return "done"
    if entries - {e for e in entries if is_temporary(e)} and WORK not in entries:
        raise PrepareError(f"OUT {out} holds part of a prepared dataset but no record of its "
                           f"preparation ({WORK}) and no {MANIFEST}; delete it and prepare again")
    return "work"


def _same_run(recorded, src, settings, what, out):
    if recorded["source"] != src or recorded["settings"] != settings:
        raise PrepareError(
            f"OUT {out} holds {what} {recorded['source']} with settings {recorded['settings']}; "
            f"this run asks for {src} with {settings}. Rerun with the same arguments, or choose "
            "another OUT (or delete this one)")


def _lock(work):
    """The lock of OUT (held in OUT/.work while preparing): one preparation at a time."""
    os.makedirs(work, exist_ok=True)
    return DirectoryLock(os.path.join(work, "lock"), f"another `pyconvnet.prepare` is writing {os.path.dirname(work)} "
                         "(process {pid}); wait for it to finish", PrepareError)


def prepare(src, out, *, size=256, val_fraction=0.1, seed=0, names=None, resample="bilinear",
            workers=None, shard_size=None, progress=True):
    """Prepares SRC into OUT (see the module docstring) and returns the manifest. An OUT that
    already holds this preparation is left as it is; an interrupted one is finished."""
    src, out = os.path.abspath(os.fspath(src)), os.path.abspath(os.fspath(out))
    settings = _settings(size, val_fraction, seed, resample)
    workers = len(os.sched_getaffinity(0)) if workers is None else int(workers)
    state = _check_out(out, src)
    work = os.path.join(out, WORK)
    if state == "done":
        manifest = read_json(os.path.join(out, MANIFEST), dict)
        _same_run(manifest, src, settings, "a dataset prepared from", out)
        if any(is_temporary(name) for name in os.listdir(out)):
            with _lock(work):  # left by a run killed after its manifest
                remove_temporaries(out)
        if os.path.isdir(work):
            shutil.rmtree(work, ignore_errors=True)
        if progress:
            print(f"prepare: {out} is already prepared ({_summary(manifest)})", file=sys.stderr)
        return manifest
    plan_path = os.path.join(work, "plan.json")
    # A new preparation reads SRC before writing anything, so that a bad SRC leaves no trace.
    plan = None if os.path.exists(plan_path) else scan(src, settings, names)
    os.makedirs(out, exist_ok=True)
    lock = _lock(work)
    try:
        remove_temporaries(out)  # from a run killed while writing the outputs
        if os.path.exists(plan_path):
            with open(plan_path) as f:
                plan = json.load(f)
            _same_run(plan, src, settings, "an unfinished preparation of", out)
        else:
            plan = plan or scan(src, settings, names)
            total = sum(len(v) for v in plan["splits"].values())
            plan["shard_size"] = shard_size or _default_shard_size(size, total, workers)
            atomic_json(plan_path, plan, indent=None)  # a line per file would double its size
            _failpoint("scan")
        state = _Progress(work, size)
        total = sum(len(v) for v in plan["splits"].values())
        report = Reporter(total, state.files_done, enabled=progress)
        _decode_all(plan, work, state, workers, report)
        report.update(state.files_done, len(state.skipped), final=True)
        manifest = _finalize(out, work, plan, state)
    finally:
        lock.close()
    shutil.rmtree(work, ignore_errors=True)
    if progress:
        print(f"prepare: wrote {out}: {_summary(manifest)}", file=sys.stderr)
    return manifest


def _finalize(out, work, plan, state):
    size = plan["settings"]["size"]
    n_train = state.counts["train"]
    if n_train == 0:
        raise PrepareError(f"no training image could be read: all {len(plan['splits']['train'])} "
                           f"files were skipped ({_reasons(state.skipped)}); see {work}/progress.npz")
    partial = {split: _Partial(work, split, size) for split in SPLITS}
    per_class = {}
    for split in SPLITS:
        labels = partial[split].read_labels(state.counts[split])
        per_class[split] = np.bincount(labels, minlength=len(plan["synsets"])).tolist()
        atomic_npy(os.path.join(out, labels_file(split)), labels)
    _failpoint("finalize:labels")
    mean, cov, eigvals, eigvecs = pixel_statistics(state.pixel_sum, state.rgb_sum, state.rgb_outer, n_train)
    atomic_npy(os.path.join(out, MEAN), mean)
    atomic_json(os.path.join(out, PCA), {
        "scale": "RGB values 0..255 of every training pixel", "pixels": n_train * size * size,
        "rgb_mean": (state.rgb_sum / (n_train * size * size)).tolist(), "covariance": cov.tolist(),
        "eigvals": eigvals.tolist(), "eigvecs": eigvecs.tolist(),
        "eigvecs_layout": "column i is the eigenvector of eigvals[i]"})
    atomic_json(os.path.join(out, CLASSES), [
        {"index": i, "synset": s, "name": n} for i, (s, n) in enumerate(zip(plan["synsets"], plan["names"]))])
    for split in SPLITS:
        dest = os.path.join(out, images_file(split))
        if os.path.exists(partial[split].images):
            partial[split].finish(state.counts[split], (size, size, 3), dest)
        _failpoint(f"finalize:images:{split}")
    splits = {}
    for split in SPLITS:
        n = state.counts[split]
        splits[split] = {
            "images": images_file(split), "labels": labels_file(split), "count": n,
            "files": len(plan["splits"][split]),
            "skipped": sum(1 for s in state.skipped if s[0] == split),
            "bytes": n * size * size * 3, "per_class": per_class[split]}
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "source": plan["source"],
        "layout": plan["layout"], "settings": plan["settings"], "image_shape": [size, size, 3],
        "dtype": "uint8", "num_classes": len(plan["synsets"]), "splits": splits,
        "files": {"classes": CLASSES, "mean": MEAN, "pca": PCA},
        "classes_without_train_images": [s for s, c in zip(plan["synsets"], per_class["train"]) if c == 0],
        "skipped": [{"split": s, "path": p, "reason": r} for s, p, r in state.skipped],
        "ignored": plan["ignored"], "versions": _versions(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(state.seconds, 3)}
    atomic_json(os.path.join(out, MANIFEST), manifest)
    fsync_directory(out)
    _failpoint("finalize:manifest")
    return manifest


def _reasons(skipped):
    kinds = collections.Counter(r.split(":")[0] for *_, r in skipped)
    return ", ".join(f"{n} {k}" for k, n in kinds.most_common()) or "none"


def _summary(manifest):
    sp = manifest["splits"]
    skipped = manifest["skipped"]
    s = manifest["image_shape"][0]
    text = (f"{sp['train']['count']} train + {sp['val']['count']} val images of "
            f"{manifest['num_classes']} classes at {s}x{s}; "
            f"skipped {len(skipped)} of {sp['train']['files'] + sp['val']['files']} files")
    if skipped:
        text += f" ({_reasons([(x['split'], x['path'], x['reason']) for x in skipped])}; listed in {MANIFEST})"
    if manifest["classes_without_train_images"]:
        text += f"; WARNING: classes with no training image: {manifest['classes_without_train_images']}"
    return text


def parser():
    paragraphs = __doc__.split("\n\n")
    p = argparse.ArgumentParser(prog="python -m pyconvnet.prepare",
                                description="\n\n".join([paragraphs[0]] + paragraphs[2:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", metavar="SRC", help="the image tree: SRC/train + SRC/val, or one tree to split")
    p.add_argument("out", metavar="OUT", help="the output directory (new, empty, or an interrupted run's)")
    p.add_argument("--size", type=int, default=256, help="short side and crop size (default 256)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="share of each class held out for val when SRC has no val/ (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/val split (default 0)")
    p.add_argument("--names", metavar="FILE", help="synset names: lines 'SYNSET NAME' or a JSON object")
    p.add_argument("--resample", choices=sorted(RESAMPLE), default="bilinear",
                   help="Pillow resampling filter (default bilinear)")
    p.add_argument("--workers", type=int, default=None,
                   help="decoding processes (default: all cores; 0: decode in this process)")
    p.add_argument("--shard-size", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def run(argv=None):
    """Runs the command line; returns the manifest, or None when interrupted by Ctrl-C."""
    a = parser().parse_args(argv)
    if a.workers is not None and a.workers < 0:
        raise PrepareError(f"--workers must be >= 0; got {a.workers}")
    if a.shard_size is not None and a.shard_size < 1:
        raise PrepareError(f"--shard-size must be >= 1; got {a.shard_size}")
    try:
        return prepare(a.src, a.out, size=a.size, val_fraction=a.val_fraction, seed=a.seed, names=a.names,
                       resample=a.resample, workers=a.workers, shard_size=a.shard_size, progress=not a.quiet)
    except BrokenProcessPool:
        raise UserError("a decoding worker died (killed, or out of memory); the work done so far is kept: "
                        "run the same command again to resume") from None
    except OSError as e:  # disk full, OUT unwritable, ...
        raise UserError(f"{e}; the work done so far is kept: fix this and run the same command again "
                        "to resume") from None
    except KeyboardInterrupt:
        print("\nprepare: interrupted; run the same command again to resume", file=sys.stderr)
        return None


def main(argv=None):
    code, manifest = run_command(run, argv)
    return 130 if code == 0 and manifest is None else code


if __name__ == "__main__":
    # Run through the package module so that worker processes find these functions by name.
    from pyconvnet.prepare import main as _main
    sys.exit(_main())
