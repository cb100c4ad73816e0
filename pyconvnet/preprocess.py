"""The training pipeline's preprocessing of an image file, for a network trained on a prepared
dataset: decoded and resized exactly as pyconvnet.prepare does it (EXIF orientation, 8-bit RGB,
short side to the prepared size S, the central S x S square), then cut into the evaluation crops
(the centre crop, or the ten crops) with the mean image subtracted, by the same op (ops.augment)
that makes the loader's evaluation batches."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from . import augment, prepare
from .dataset import PreparedDataset
from .tensor import tensor


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """size: the prepared side S; crop: the network's input side; resample: prepare's --resample;
    mean: float32 (S, S, 3), the training images' mean image on the 0..255 scale."""
    size: int
    crop: int
    resample: str
    mean: np.ndarray

    @classmethod
    def of(cls, dataset: PreparedDataset, crop: int) -> "Preprocessing":
        """The preprocessing of the images of `dataset` for a network with `crop` x `crop` input."""
        if not 1 <= crop <= dataset.size:
            raise ValueError(f"Preprocessing: crop {crop} does not fit the {dataset.size}x{dataset.size} "
                             f"images of {dataset.path}")
        resample = dataset.manifest.get("settings", {}).get("resample", "bilinear")
        return cls(dataset.size, int(crop), resample, np.ascontiguousarray(dataset.mean, np.float32))

    def load(self, path) -> np.ndarray:
        """One image file as prepare stores it: uint8 (S, S, 3). Raises what Pillow raises for a
        file it cannot read (prepare.skip_reason(path, error) says why in a few words)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's warnings about odd but readable files
            return prepare.load_image(path, self.size, prepare.RESAMPLE[self.resample])

    def crops(self, images: np.ndarray, device: str = "cpu", ten_crop: bool = False):
        """The network input of uint8 images (n, S, S, 3) on `device`: float32 (n, 3, crop, crop)
        centre crops, or (10 n, 3, crop, crop) with image i's ten crops at rows 10 i .. 10 i + 9
        (augment.TEN_CROP_ORDER, then the same reflected)."""
        n, s = len(images), self.size
        params = (augment.ten_crop_params if ten_crop else augment.center_params)(n, s, s, self.crop)
        return augment.apply(tensor(np.ascontiguousarray(images, np.uint8), device), tensor(self.mean, device),
                             params, self.crop)
