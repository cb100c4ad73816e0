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
