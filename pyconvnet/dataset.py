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
            raise FileNotFoundError(f"{self.path} is not a prepared dataset: it has no {MANIFEST}.{hint}")
        with open(manifest_path) as f:
            self.manifest = json.load(f)
        if self.manifest.get("format") != FORMAT or self.manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{manifest_path}: format {self.manifest.get('format')!r} version "
                             f"{self.manifest.get('format_version')!r}; this pyconvnet reads {FORMAT!r} "
                             f"version {FORMAT_VERSION}: prepare the dataset again")
        with open(os.path.join(self.path, CLASSES)) as f:
            self.classes = json.load(f)
        self.num_classes = len(self.classes)
        self.size = int(self.manifest["image_shape"][0])
        self.mean = np.load(os.path.join(self.path, MEAN))
        with open(os.path.join(self.path, PCA)) as f:
            pca = json.load(f)
        self.eigvals = np.array(pca["eigvals"], dtype=np.float64)
        self.eigvecs = np.array(pca["eigvecs"], dtype=np.float64)

    def count(self, split: str) -> int:
        return int(self._split(split)["count"])

    def images(self, split: str) -> np.ndarray:
        """uint8 (N, S, S, 3), memory-mapped read-only."""
        self._split(split)
        return np.load(os.path.join(self.path, images_file(split)), mmap_mode="r")

    def labels(self, split: str) -> np.ndarray:
        """int32 (N,)."""
        self._split(split)
        return np.load(os.path.join(self.path, labels_file(split)))

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
