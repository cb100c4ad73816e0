"""The engine's ops. Tensors in, Tensors out on the inputs' device; NumPy arrays are accepted as
CPU tensors. Each function validates its arguments once (in C++, the same for both devices) and
runs the CPU or CUDA kernel according to where its inputs are.
"""
from __future__ import annotations

from . import _C
from .tensor import as_tensor


def relu(x):
    """y = max(x, 0). NaN stays NaN."""
    return _C.relu_forward(as_tensor(x, "relu", "x"))


def relu_backward(dy, y):
    """dx = dy where y > 0, else 0 (y is relu's output)."""
    return _C.relu_backward(as_tensor(dy, "relu_backward", "dy"), as_tensor(y, "relu_backward", "y"))


# ---------------------------------------------------------------------------------------------
# Convolution and fully-connected layers (csrc/ops/conv.*, csrc/ops/linear.*)
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# LRN, max-pool, dropout, softmax and loss, SGD (csrc/ops/*)
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Data: augmentation (csrc/ops/augment.*); the random draws are in pyconvnet/augment.py
# ---------------------------------------------------------------------------------------------

def augment(images, mean, offsets, flips, lighting=None, crop=224, repeats=1, version=0):
    """uint8 (N, H, W, 3) images -> float32 (M, 3, crop, crop) network input, M = N * repeats:
    out[m, c, i, j] = images[m // repeats, y + i, x + jj, c] - mean[y + i, x + jj, c] + lighting[m, c]
    where (y, x) = offsets[m] (int32 (M, 2)), jj = crop - 1 - j if flips[m] (int32 (M,), 0/1) else j,
    lighting float32 (M, 3) (None: zeros). images and mean (float32 (H, W, 3)) are on the device
    that computes; offsets, flips and lighting are NumPy arrays or CPU tensors."""
    op = "augment"
    if lighting is None:
        lighting = _C.zeros((0 if offsets is None else len(offsets), 3), "float32", "cpu")
    return _C.augment(as_tensor(images, op, "images"), as_tensor(mean, op, "mean"),
                      as_tensor(offsets, op, "offsets"), as_tensor(flips, op, "flips"),
                      as_tensor(lighting, op, "lighting"), crop, repeats, version)
