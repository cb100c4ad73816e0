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
import operator  # noqa: E402  (kept in this section: the file is shared by op families)


def _int(v, op: str, name: str) -> int:
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError(f"{op}: argument '{name}' must be an int; got {v!r}") from None


def _pair(v, op: str, name: str) -> tuple:
    """An int or an (h, w) pair of ints, as a pair."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{op}: argument '{name}' must be an int or an (h, w) pair; got {v!r}")
        return (_int(v[0], op, name), _int(v[1], op, name))
    i = _int(v, op, name)
    return (i, i)


def conv2d_versions(device="cpu"):
    """The conv2d kernel versions on `device` (pass one as `version=`; 0 means the best)."""
    return _C.conv2d_versions(device)


def conv2d(x, w, b=None, stride=1, padding=0, groups=1, version=0):
    """2-D convolution (cross-correlation) of x (N, C, H, W) with w (K, C/groups, R, S), plus b (K,).

    stride and padding are ints or (h, w) pairs; the output is (N, K, P, Q) with
    P = (H + 2*padding_h - R) // stride_h + 1. `version` picks a kernel (conv2d_versions)."""
    op = "conv2d"
    return _C.conv2d_forward(as_tensor(x, op, "x"), as_tensor(w, op, "w"), as_tensor(b, op, "b", optional=True),
                             _pair(stride, op, "stride"), _pair(padding, op, "padding"),
                             _int(groups, op, "groups"), _int(version, op, "version"))


def conv2d_backward(dy, x, w, stride=1, padding=0, groups=1, input_grad=True, version=0):
    """(dx, dw, db) of conv2d for the output gradient dy; dx is None when input_grad is False."""
    op = "conv2d_backward"
    return _C.conv2d_backward(as_tensor(dy, op, "dy"), as_tensor(x, op, "x"), as_tensor(w, op, "w"),
                              _pair(stride, op, "stride"), _pair(padding, op, "padding"),
                              _int(groups, op, "groups"), bool(input_grad), _int(version, op, "version"))


def linear_versions(device="cpu"):
    """The linear kernel versions on `device` (pass one as `version=`; 0 means the best)."""
    return _C.linear_versions(device)


def linear(x, w, b=None, version=0):
    """y = x @ w.T + b for x (N, in), w (out, in), b (out,)."""
    op = "linear"
    return _C.linear_forward(as_tensor(x, op, "x"), as_tensor(w, op, "w"), as_tensor(b, op, "b", optional=True),
                             _int(version, op, "version"))


def linear_backward(dy, x, w, input_grad=True, version=0):
    """(dx, dw, db) of linear for the output gradient dy (N, out); dx is None when input_grad is False."""
    op = "linear_backward"
    return _C.linear_backward(as_tensor(dy, op, "dy"), as_tensor(x, op, "x"), as_tensor(w, op, "w"),
                              bool(input_grad), _int(version, op, "version"))



# ---------------------------------------------------------------------------------------------
# LRN, max-pool, dropout, softmax and loss, SGD (csrc/ops/*)
# ---------------------------------------------------------------------------------------------
