"""The random draws of training augmentation, and the fixed crops of evaluation.

The kernel (pyconvnet.ops.augment, csrc/ops/augment.h) takes per-image parameters: a crop corner,
a flip bit and an RGB lighting offset. This module draws them for training, from the Philox
generator on the host, so that the CPU and CUDA kernels (and the NumPy reference) compute the
same batch from the same numbers:

- Image k (its index in the split) presented in epoch e gets the 8 words
  philox_word(seed, kStreamAugment, 8 * (e * 2^32 + k) + t), t = 0..7. Each image is presented
  once per epoch, so every presentation has its own draw, independent of the batch size and of
  the order of the batch: a run resumed at any step draws what the uninterrupted run drew.
- Crop corner y = (w0 * (H - crop + 1)) >> 32, x = (w1 * (W - crop + 1)) >> 32 (uniform over the
  H - crop + 1 positions, exact integer arithmetic); flip = w2 >> 31.
- Three standard normals by Box-Muller in float64, with u(w) = (w + 0.5) / 2^32 in (0, 1):
  z0, z1 = r cos(2 pi u(w4)), r sin(2 pi u(w4)) with r = sqrt(-2 ln u(w3)); z2 likewise from w5, w6
  (w7 is unused). The lighting alphas are lighting_std * z (the paper: N(0, 0.1)).
- The RGB offset is sum_i p_i * alpha_i * lambda_i of the paper, with p_i, lambda_i the eigenvectors
  and eigenvalues of the training pixels' RGB covariance, taken on pixel values in [0, 1]: there
  ImageNet's eigenvalues are about (0.2175, 0.0188, 0.0045) and an offset of a few percent of the
  range results, as in the widely used reimplementations. Our pixels and eigenvalues are on the
  0..255 scale (eigenvalues 255^2 times larger, offsets 255 times larger), so
  offset = eigvecs @ (alpha * eigvals) / 255. Read on the 0..255 scale literally, the formula
  would add offsets of about +-1400 to ImageNet pixels.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import keys, ops
from .keys import STREAM_AUGMENT, STREAM_SHUFFLE
WORDS_PER_IMAGE = 8
LIGHTING_STD = 0.1  # the paper's standard deviation of the alphas
PIXEL_SCALE = 255.0  # see the module docstring


class Params(NamedTuple):
    """Per-output-image parameters of the augmentation kernel."""
    offsets: np.ndarray   # int32 (M, 2): crop corner (y, x)
    flips: np.ndarray     # int32 (M,): 1 = reflect horizontally
    lighting: np.ndarray  # float32 (M, 3): RGB offset
    repeats: int = 1      # outputs per input image (10 for the ten crops)


def augment_words(seed: int, epoch: int, indices) -> np.ndarray:
    """uint32 (n, 8): the Philox words of each image index presented in `epoch`."""
    indices = np.asarray(indices, dtype=np.int64)
    if not 0 <= epoch < keys.MAX_EPOCH:
        raise ValueError(f"augment_words: epoch must be in [0, 2^29); got {epoch}")
    if indices.size and (indices.min() < 0 or indices.max() >= keys.MAX_ITEM):
        raise ValueError("augment_words: image indices must be in [0, 2^32)")
    out = np.empty((len(indices), WORDS_PER_IMAGE), np.uint32)
    for row, k in enumerate(indices.tolist()):
        out[row] = keys.draws(seed, STREAM_AUGMENT, epoch, k, WORDS_PER_IMAGE, WORDS_PER_IMAGE)
    return out


def uniform(words) -> np.ndarray:
    """float64 (w + 0.5) / 2^32: uniform in (0, 1), never 0 or 1."""
    return (np.asarray(words, dtype=np.float64) + 0.5) / 2.0 ** 32


def draw(seed: int, epoch: int, indices, height: int, width: int, crop: int,
         lighting_std: float = LIGHTING_STD):
    """(offsets int32 (n, 2), flips int32 (n,), alphas float64 (n, 3)) for the training
    presentation of images `indices` in `epoch` (see the module docstring)."""
    if not 1 <= crop <= min(height, width):
        raise ValueError(f"draw: crop must be in [1, min(height, width)] = [1, {min(height, width)}]; got {crop}")
    w = augment_words(seed, epoch, indices).astype(np.uint64)
    offsets = np.stack([(w[:, 0] * np.uint64(height - crop + 1)) >> np.uint64(32),
                        (w[:, 1] * np.uint64(width - crop + 1)) >> np.uint64(32)], axis=1).astype(np.int32)
    flips = (w[:, 2] >> np.uint64(31)).astype(np.int32)
    u = uniform(w[:, 3:7])
    r1, r2 = np.sqrt(-2.0 * np.log(u[:, 0])), np.sqrt(-2.0 * np.log(u[:, 2]))
    z = np.stack([r1 * np.cos(2 * np.pi * u[:, 1]), r1 * np.sin(2 * np.pi * u[:, 1]),
                  r2 * np.cos(2 * np.pi * u[:, 3])], axis=1)
    return offsets, flips, lighting_std * z


def lighting_offsets(alphas, eigvals, eigvecs) -> np.ndarray:
    """float32 (n, 3): eigvecs @ (alpha * eigvals) / 255 per row of alphas (n, 3), computed in
    float64; eigvals and eigvecs (columns) on the 0..255 scale (module docstring)."""
    alphas = np.asarray(alphas, dtype=np.float64)
    scaled = alphas * np.asarray(eigvals, dtype=np.float64) / PIXEL_SCALE
    return (scaled @ np.asarray(eigvecs, dtype=np.float64).T).astype(np.float32)


def train_params(seed, epoch, indices, height, width, crop, eigvals, eigvecs,
                 lighting_std=LIGHTING_STD) -> Params:
    """Random crop, reflection and PCA lighting for each image in `indices`."""
    offsets, flips, alphas = draw(seed, epoch, indices, height, width, crop, lighting_std)
    return Params(offsets, flips, lighting_offsets(alphas, eigvals, eigvecs))


def center_params(n, height, width, crop) -> Params:
    """The central crop of each of n images, unreflected, no lighting."""
    offsets = np.tile(np.array([(height - crop) // 2, (width - crop) // 2], np.int32), (n, 1))
    return Params(offsets, np.zeros(n, np.int32), np.zeros((n, 3), np.float32))


TEN_CROP_ORDER = ("center", "top-left", "top-right", "bottom-left", "bottom-right")


def ten_crop_params(n, height, width, crop) -> Params:
    """The ten crops of the paper's test procedure, repeats=10: output 10 * i + t of image i is crop
    TEN_CROP_ORDER[t % 5], reflected for t >= 5."""
    dy, dx = height - crop, width - crop
    corners = np.array([(dy // 2, dx // 2), (0, 0), (0, dx), (dy, 0), (dy, dx)], np.int32)
    offsets = np.tile(np.concatenate([corners, corners]), (n, 1))
    flips = np.tile(np.repeat(np.array([0, 1], np.int32), 5), n)
    return Params(offsets, flips, np.zeros((10 * n, 3), np.float32), repeats=10)


def apply(images, mean, params: Params, crop: int, version: int = 0):
    """ops.augment with `params`: float32 (len(params.offsets), 3, crop, crop) on images' device."""
    return ops.augment(images, mean, params.offsets, params.flips, params.lighting, crop,
                       params.repeats, version)


def shuffle(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of `n` images in `epoch`: a permutation sorted by 64-bit Philox keys
    philox_word(seed, kStreamShuffle, 2 * (e * 2^32 + k) + {0, 1}) (ties, practically
    impossible, keep index order)."""
    if not 0 <= epoch < keys.MAX_EPOCH or not 0 <= n < keys.MAX_ITEM:
        raise ValueError(f"shuffle: epoch must be in [0, 2^29) and n in [0, 2^32); got {epoch}, {n}")
    w = keys.draws(seed, STREAM_SHUFFLE, epoch, 0, 2, 2 * n).astype(np.uint64)
    return np.argsort((w[0::2] << np.uint64(32)) | w[1::2], kind="stable")
