"""A prepared dataset on disk, as ``python -m pyconvnet.prepare`` writes it, and its reader.

Layout of a prepared directory (every file is written whole, then renamed into place)::

    manifest.json       written last: its presence means the directory is complete
    classes.json        [{"index": 0, "synset": "n01440764", "name": "tench, Tinca tinca"}, ...]
    train_images.npy    uint8 (N, S, S, 3), HWC RGB, memory-mappable (np.load(mmap_mode="r"))
    train_labels.npy    int32 (N,)
    val_images.npy      uint8 (M, S, S, 3)   (M may be 0)
    val_labels.npy      int32 (M,)
    mean.npy            float32 (S, S, 3): the per-pixel mean of the training images
    pca.json            the RGB covariance of all training pixels (0..255 scale, float64) and its
                        eigenvalues (descending) and eigenvectors (columns), for PCA lighting

S is the prepared size (256 for ImageNet: short side rescaled to S, central SxS kept).
"""
from __future__ import annotations

import json
import os

import numpy as np

from .errors import UserError

FORMAT = "pyconvnet-prepared"
FORMAT_VERSION = 1
SPLITS = ("train", "val")
MANIFEST = "manifest.json"
CLASSES = "classes.json"
MEAN = "mean.npy"
PCA = "pca.json"


class DatasetError(UserError, ValueError):
    """A prepared directory is damaged or not one: the message names the file and what to do."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A directory without a manifest: not a prepared dataset, or an unfinished preparation."""


def read_json(path, kind=None):
    """The JSON document in file `path`; DatasetError naming the file when it cannot be read or
    parsed, or when its top level is not of type `kind` (dict or list)."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing; prepare the dataset again") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read it ({e.strerror or e})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e}); prepare the dataset again") from None
    if kind is not None and not isinstance(doc, kind):
        raise DatasetError(f"{path}: expected a JSON {'object' if kind is dict else 'array'}, got "
                           f"{type(doc).__name__}; prepare the dataset again")
    return doc


def images_file(split: str) -> str:
    return f"{split}_images.npy"


def labels_file(split: str) -> str:
    return f"{split}_labels.npy"


def output_files() -> set:
    """Every file name a finished preparation puts in its directory."""
    return {MANIFEST, CLASSES, MEAN, PCA} | {f(s) for s in SPLITS for f in (images_file, labels_file)}


class PreparedDataset:
    """A prepared directory, opened read-only. Images are memory-mapped, not loaded.

    Opening validates the whole directory against its manifest, so that a damaged dataset is a
    DatasetError naming the file at once, not a wrong result or a traceback an epoch later: the
    manifest and classes documents, every array's header (shape, dtype) and size on disk, the
    labels (in range), the mean image and the PCA (the right shapes, finite).

    Attributes: path, manifest (dict), classes (list of dicts), num_classes, size (S), mean
    (float32 (S, S, 3)), eigvals (float64 (3,), descending), eigvecs (float64 (3, 3), column i
    is the eigenvector of eigvals[i]), both on the 0..255 pixel scale.
    """

    def __init__(self, path):
        self.path = os.path.abspath(os.fspath(path))
        manifest_path = os.path.join(self.path, MANIFEST)
        if not os.path.isfile(manifest_path):
            work = os.path.join(self.path, ".work")
            hint = (" An interrupted preparation is there: run the same `python -m pyconvnet.prepare` "
                    "command again to finish it." if os.path.isdir(work) else
                    " Create one with `python -m pyconvnet.prepare SRC OUT`.")
            raise DatasetNotFoundError(f"{self.path} is not a prepared dataset: it has no {MANIFEST}.{hint}")
        self.manifest = read_json(manifest_path, dict)
        if self.manifest.get("format") != FORMAT or self.manifest.get("format_version") != FORMAT_VERSION:
            raise DatasetError(f"{manifest_path}: format {self.manifest.get('format')!r} version "
                               f"{self.manifest.get('format_version')!r}; this pyconvnet reads {FORMAT!r} "
                               f"version {FORMAT_VERSION}: prepare the dataset again")
        shape, splits = self.manifest.get("image_shape"), self.manifest.get("splits")
        if not (isinstance(shape, list) and len(shape) == 3 and all(_is_int(v) for v in shape)
                and shape[0] == shape[1] >= 1 and shape[2] == 3):
            self._damaged(MANIFEST, f"image_shape must be [S, S, 3]; got {shape!r}")
        if not (isinstance(splits, dict) and all(isinstance(splits.get(s), dict) and _is_int(splits[s].get("count"))
                                                 and splits[s]["count"] >= 0 for s in SPLITS)):
            self._damaged(MANIFEST, f"splits must give a count for each of {', '.join(SPLITS)}")
        self.size = int(shape[0])
        self.classes = read_json(os.path.join(self.path, CLASSES), list)
        if not self.classes or not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in self.classes):
            self._damaged(CLASSES, "must list one {\"name\": ...} object per class")
        self.num_classes = len(self.classes)
        if self.manifest.get("num_classes", self.num_classes) != self.num_classes:
            self._damaged(CLASSES, f"lists {self.num_classes} classes; {MANIFEST} says {self.manifest['num_classes']}")
        self.mean = self._array(MEAN, (self.size, self.size, 3), np.float32)
        pca = read_json(os.path.join(self.path, PCA), dict)
        try:
            self.eigvals = np.array(pca["eigvals"], dtype=np.float64)
            self.eigvecs = np.array(pca["eigvecs"], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            self._damaged(PCA, "needs eigvals (3 numbers) and eigvecs (3 x 3 numbers)")
        if self.eigvals.shape != (3,) or self.eigvecs.shape != (3, 3):
            self._damaged(PCA, f"eigvals must have 3 values and eigvecs 3 x 3; got shapes {self.eigvals.shape} "
                               f"and {self.eigvecs.shape}")
        if not (np.isfinite(self.eigvals).all() and np.isfinite(self.eigvecs).all()):
            self._damaged(PCA, "holds non-finite values (NaN or infinity)")
        self._labels = {}
        for split in SPLITS:
            n = self.count(split)
            self._header(images_file(split), (n, self.size, self.size, 3), np.uint8)
            labels = self._array(labels_file(split), (n,), np.int32)
            if n and (labels.min() < 0 or labels.max() >= self.num_classes):
                bad = labels[(labels < 0) | (labels >= self.num_classes)]
                self._damaged(labels_file(split), f"holds label {bad[0]} outside [0, {self.num_classes})")
            self._labels[split] = labels

    def _damaged(self, name, what):
        raise DatasetError(f"{os.path.join(self.path, name)}: {what}; prepare the dataset again")

    def _header(self, name, shape, dtype) -> int:
        """The data offset of .npy file `name`, after checking its shape, dtype and size on disk."""
        path = os.path.join(self.path, name)
        try:
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                got_shape, fortran, got_dtype = read(f)
                offset = f.tell()
            size = os.path.getsize(path)
        except FileNotFoundError:
            self._damaged(name, "missing")
        except (OSError, ValueError) as e:
            self._damaged(name, f"not a readable .npy file ({e})")
        if tuple(got_shape) != shape or got_dtype != np.dtype(dtype) or fortran:
            self._damaged(name, f"must hold {np.dtype(dtype)} of shape {shape} ({MANIFEST}); got "
                                f"{got_dtype} of shape {tuple(got_shape)}")
        expected = offset + int(np.prod(shape)) * np.dtype(dtype).itemsize
        if size != expected:
            self._damaged(name, f"is {size:,} bytes; its header says {expected:,} (truncated or damaged)")
        return offset

    def _array(self, name, shape, dtype) -> np.ndarray:
        """A small .npy file read whole, checked like _header and for finite values."""
        self._header(name, shape, dtype)
        try:
            a = np.load(os.path.join(self.path, name), allow_pickle=False)
        except (OSError, ValueError) as e:
            self._damaged(name, f"not a readable .npy file ({e})")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            self._damaged(name, "holds non-finite values (NaN or infinity)")
        return a

    def count(self, split: str) -> int:
        return int(self._split(split)["count"])

    def images(self, split: str) -> np.ndarray:
        """uint8 (N, S, S, 3), memory-mapped read-only."""
        self._split(split)
        return np.load(os.path.join(self.path, images_file(split)), mmap_mode="r")

    def labels(self, split: str) -> np.ndarray:
        """int32 (N,)."""
        self._split(split)
        return self._labels[split].copy()

    def class_names(self) -> list:
        return [c["name"] for c in self.classes]

    def _split(self, split):
        splits = self.manifest["splits"]
        if split not in splits:
            raise ValueError(f"PreparedDataset: split must be one of {sorted(splits)}; got {split!r}")
        return splits[split]

    def __repr__(self):
        counts = ", ".join(f"{s}={self.count(s)}" for s in self.manifest["splits"])
        return f"PreparedDataset({self.path!r}, {counts}, classes={self.num_classes}, size={self.size})"


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
