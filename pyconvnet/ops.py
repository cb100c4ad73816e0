"""The engine's ops. Tensors in, Tensors out on the inputs' device; NumPy arrays are accepted as
CPU tensors. Each function validates its arguments once (in C++, the same for both devices) and
runs the CPU or CUDA kernel according to where its inputs are.

Every op takes `version=`: 0 (the default) runs the device's default kernel, 1..count a
numbered one (`versions(op, device)` lists them). A device accepts only its own version numbers:
asking the CPU for a CUDA-only version is a ValueError that lists the CPU's.
"""
from __future__ import annotations

import numbers

from . import _C
from ._C import Tensor
from .tensor import as_tensor

OPS = tuple(_C.versioned_ops())  # the ops of the kernel-version registry (versions())

# ---------------------------------------------------------------------------------------------
# Argument converters: Python values -> the C++ types the engine receives. They check only the
# type and that the value fits; the rules on values are checked (once, for both devices) in C++.
# ---------------------------------------------------------------------------------------------


def _int(v, op: str, name: str, bits=64) -> int:
    """An int argument (bool is not one); ValueError, naming it, if it does not fit the signed C++
    integer of `bits` bits that receives it (None: any size)."""
    if type(v) is int and (bits is None or -(1 << (bits - 1)) <= v < 1 << (bits - 1)):
        return v  # the common case, without the slower abstract-class check below
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{op}: argument '{name}' must be an int; got {type(v).__name__} {v!r}")
    if bits is not None and not -2**(bits - 1) <= int(v) < 2**(bits - 1):
        raise ValueError(f"{op}: argument '{name}' is out of range; got {int(v)}")
    return int(v)


def _float(v, op: str, name: str) -> float:
    if type(v) is float:
        return v
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{op}: argument '{name}' must be a number; got {type(v).__name__} {v!r}")
    return float(v)


def _pair(v, op: str, name: str) -> tuple:
    """An int or an (h, w) pair of ints, as a pair."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{op}: argument '{name}' must be an int or an (h, w) pair; got {v!r}")
        return (_int(v[0], op, name), _int(v[1], op, name))
    i = _int(v, op, name)
    return (i, i)


def _version(v, op: str) -> int:
    return _int(v, op, "version", bits=32)


def _device(device, who: str) -> str:
    if not isinstance(device, str):
        raise TypeError(f"{who}: argument 'device' must be a string such as 'cpu' or 'cuda:0'; got {device!r}")
    return device


# ---------------------------------------------------------------------------------------------
# Kernel versions (csrc/ops/versions.h)
# ---------------------------------------------------------------------------------------------


PRECISIONS = ("fp32", "tf32", "3xtf32")  # a kernel version's arithmetic (precision())


def versions(op: str, device: str = "cpu", precision: str | None = None) -> list:
    """The numbered kernel versions of `op` (one of OPS) on `device`, [1, ..., count]: each can be
    passed as `version=`; with `precision` (one of PRECISIONS) only the versions of that
    arithmetic. ValueError for an unknown op, device or precision."""
    count, _ = _C.kernel_versions(op, _device(device, "versions"))
    if precision is None:
        return list(range(1, count + 1))
    if precision not in PRECISIONS:
        raise ValueError(f"versions: argument 'precision' must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return [v for v, p in enumerate(_C.kernel_precisions(op, device), 1) if p == precision]


def precision(op: str, device: str = "cpu", version: int = 0) -> str:
    """The arithmetic of `op`'s kernel `version` on `device` (0: the default): "fp32" (FP32
    products and sums), "tf32" (tensor cores, operands rounded to TF32's 10-bit mantissa, FP32
    sums) or "3xtf32" (tensor cores, each operand split into two TF32 parts: FP32-accurate).
    ValueError for a version the device does not have."""
    count, best = _C.kernel_versions(op, _device(device, "precision"))
    v = _version(version, "precision")
    if not 0 <= v <= count:
        raise ValueError(f"precision: argument 'version' must be one of 0..{count} for {op} on {device}; got {v}")
    return _C.kernel_precisions(op, device)[(v or best) - 1]


def default_version(op: str, device: str = "cpu") -> int:
    """The version that `version=0` runs for `op` on `device` (the fastest measured)."""
    return _C.kernel_versions(op, _device(device, "default_version"))[1]


# ---------------------------------------------------------------------------------------------
# Convolution and fully-connected layers
# ---------------------------------------------------------------------------------------------


def conv2d(x, w, b=None, stride=1, padding=0, groups=1, version=0, relu=False):
    """2-D convolution (cross-correlation) of x (N, C, H, W) with w (K, C/groups, R, S), plus b (K,).

    stride and padding are ints or (h, w) pairs; the output is (N, K, P, Q) with
    P = (H + 2*padding_h - R) // stride_h + 1. relu=True applies ReLU to the output in the same
    pass: bit-identical to relu(conv2d(...)), one write of y instead of two passes over it."""
    op = "conv2d"
    return _C.conv2d_forward(as_tensor(x, op, "x"), as_tensor(w, op, "w"), as_tensor(b, op, "b", optional=True),
                             _pair(stride, op, "stride"), _pair(padding, op, "padding"),
                             _int(groups, op, "groups"), bool(relu), _version(version, op))


def conv2d_backward(dy, x, w, stride=1, padding=0, groups=1, input_grad=True, version=0):
    """(dx, dw, db) of conv2d for the output gradient dy; dx is None when input_grad is False."""
    op = "conv2d_backward"
    return _C.conv2d_backward(as_tensor(dy, op, "dy"), as_tensor(x, op, "x"), as_tensor(w, op, "w"),
                              _pair(stride, op, "stride"), _pair(padding, op, "padding"),
                              _int(groups, op, "groups"), bool(input_grad), _version(version, op))


def linear(x, w, b=None, version=0, relu=False):
    """y = x @ w.T + b for x (N, in), w (out, in), b (out,). relu=True: max(y, 0) in the same
    pass, bit-identical to relu(linear(...))."""
    op = "linear"
    return _C.linear_forward(as_tensor(x, op, "x"), as_tensor(w, op, "w"), as_tensor(b, op, "b", optional=True),
                             bool(relu), _version(version, op))


def linear_backward(dy, x, w, input_grad=True, version=0):
    """(dx, dw, db) of linear for the output gradient dy (N, out); dx is None when input_grad is False."""
    op = "linear_backward"
    return _C.linear_backward(as_tensor(dy, op, "dy"), as_tensor(x, op, "x"), as_tensor(w, op, "w"),
                              bool(input_grad), _version(version, op))


# ---------------------------------------------------------------------------------------------
# Activation, normalization, pooling, dropout
# ---------------------------------------------------------------------------------------------


def relu(x, version=0):
    """y = max(x, 0). NaN stays NaN."""
    return _C.relu_forward(as_tensor(x, "relu", "x"), _version(version, "relu"))


def relu_backward(dy, y, version=0):
    """dx = dy where y > 0, else 0 (y is relu's output)."""
    op = "relu_backward"
    return _C.relu_backward(as_tensor(dy, op, "dy"), as_tensor(y, op, "y"), _version(version, op))


def add(a, b, version=0):
    """a + b elementwise (float32, one shape, one device)."""
    return _C.add_forward(as_tensor(a, "add", "a"), as_tensor(b, "add", "b"), _version(version, "add"))


def _lrn_params(op, size, alpha, beta, k, groups):
    return _C.LrnParams(_int(size, op, "size"), _float(alpha, op, "alpha"), _float(beta, op, "beta"),
                        _float(k, op, "k"), _int(groups, op, "groups"))


def lrn(x, size=5, alpha=1e-4, beta=0.75, k=2.0, groups=1, version=0):
    """Cross-channel local response normalization of x (N, C, H, W):
    y_i = x_i / (k + alpha/size * sum_j x_j^2)^beta over the `size` channels j centred on i within
    i's group of C/groups channels (AlexNet: groups=2, the two columns). size must be odd."""
    op = "lrn"
    return _C.lrn_forward(as_tensor(x, op, "x"), _lrn_params(op, size, alpha, beta, k, groups),
                          _version(version, op))


def lrn_backward(dy, x, y, size=5, alpha=1e-4, beta=0.75, k=2.0, groups=1, version=0):
    """dx of lrn given dy, its input x and output y (y is checked but not read: the kernels
    recompute the normalizer from x, which costs less memory traffic)."""
    op = "lrn_backward"
    return _C.lrn_backward(as_tensor(dy, op, "dy"), as_tensor(x, op, "x"), as_tensor(y, op, "y"),
                           _lrn_params(op, size, alpha, beta, k, groups), _version(version, op))


def max_pool2d(x, kernel=3, stride=2, version=0, taps=False):
    """Max over kernel x kernel windows of x (N, C, H, W) moved by `stride` (windows may overlap),
    output floor((H - kernel) / stride) + 1 per side. NaN in a window gives NaN.

    taps=True returns (y, taps): taps, uint8 with y's shape, is each window's argmax r*kernel + c
    in the window (row r, column c): its first element in row-major order equal to the maximum,
    the first NaN for a NaN window (kernel <= 16, so that it fits a uint8). y is the same either way."""
    op = "max_pool2d"
    x, kernel, stride = as_tensor(x, op, "x"), _int(kernel, op, "kernel"), _int(stride, op, "stride")
    if taps:
        return _C.max_pool2d_forward_taps(x, kernel, stride, _version(version, op))
    return _C.max_pool2d_forward(x, kernel, stride, _version(version, op))


def max_pool2d_backward(dy, taps, x_shape, kernel=3, stride=2, version=0):
    """dx (N, C, H, W) of max_pool2d from dy and the taps of its forward (taps=True); x_shape: the
    input's (H, W) or (N, C, H, W). Each window's gradient goes to its tap; overlapping windows
    accumulate, in window order. A tap >= kernel**2 (none the forward writes) sends its window's
    gradient nowhere."""
    op = "max_pool2d_backward"
    if not isinstance(x_shape, (tuple, list)):
        raise TypeError(f"{op}: argument 'x_shape' must be a tuple (H, W) or (N, C, H, W); got {x_shape!r}")
    return _C.max_pool2d_backward(as_tensor(dy, op, "dy"), as_tensor(taps, op, "taps"),
                                  [_int(v, op, "x_shape") for v in x_shape], _int(kernel, op, "kernel"),
                                  _int(stride, op, "stride"), _version(version, op))


def dropout(x, p, seed, version=0, first_row=0, part=None):
    """Inverted dropout: returns (y, mask). x is read as rows (its first axis); element j of row r
    is kept iff the Philox word philox_words(seed, 1, j, 1, row=first_row + r) >= round(p * 2**32),
    so the same seed gives the same mask on every device, and a sample's mask depends only on
    its row number: parts of a batch given their first row in the whole batch draw the whole
    batch's mask. Kept elements are scaled by 1 / (1 - p). mask is a uint8 Tensor of 0/1 with
    x's shape. p in [0, 1); seed an int in [0, 2**64); first_row + rows <= 2**32.

    part=(offset, width): x (N, F) is the features [offset, offset + F) of an (N, width)
    tensor, and draws exactly that part of the wider tensor's mask (one column's half of a
    layer): element j of row r draws word offset + j of row first_row + r."""
    op = "dropout"
    seed = _int(seed, op, "seed", bits=None)
    if not 0 <= seed < 2**64:
        raise ValueError(f"{op}: argument 'seed' must be an int in [0, 2**64); got {seed}")
    offset, width = (0, -1) if part is None else _pair(part, op, "part")
    if part is not None and width < 0:
        raise ValueError(f"{op}: argument 'part' must be (offset, width) with width >= 0; got {part!r}")
    return _C.dropout_forward(as_tensor(x, op, "x"), _float(p, op, "p"), seed, _int(first_row, op, "first_row"),
                              _version(version, op), offset, width)


def dropout_backward(dy, mask, p, version=0):
    """dx = dy * mask / (1 - p), with the uint8 mask returned by dropout (nonzero = kept)."""
    op = "dropout_backward"
    return _C.dropout_backward(as_tensor(dy, op, "dy"), as_tensor(mask, op, "mask"), _float(p, op, "p"),
                               _version(version, op))


# ---------------------------------------------------------------------------------------------
# Softmax, loss, SGD
# ---------------------------------------------------------------------------------------------


def softmax(x, version=0):
    """Softmax over the last axis of x (N, classes), shifted by each row's maximum."""
    return _C.softmax_forward(as_tensor(x, "softmax", "x"), _version(version, "softmax"))


def cross_entropy(logits, labels, version=0, hits=False):
    """(loss, dlogits): the mean over the batch of -log softmax(logits)[n, labels[n]] as a Python
    float, and its gradient with respect to logits (N, classes) as a Tensor, in one pass. labels:
    int32 (N,) in [0, classes), on the logits' device (ValueError naming the first bad row).

    hits=True: (loss, dlogits, (top1, top5)), the number of rows whose label is among the 1 and 5
    highest logits (ties: the lower class index ranks first; NaN ranks last), counted by the same
    kernel, so no copy of the logits is needed for a running accuracy."""
    op = "cross_entropy"
    loss, dlogits, top1, top5 = _C.cross_entropy(as_tensor(logits, op, "logits"), as_tensor(labels, op, "labels"),
                                                 _version(version, op))
    return (loss, dlogits, (top1, top5)) if hits else (loss, dlogits)


def cross_entropy_async(logits, labels, version=0):
    """cross_entropy without waiting for the device: (pending, dlogits), where pending.read()
    returns (loss, top-1 hits, top-5 hits) — waiting for them the first time — and raises
    cross_entropy's ValueError for a label out of range. A training step that reads its loss
    only when it prints it never stalls the GPU."""
    op = "cross_entropy"
    return _C.cross_entropy_async(as_tensor(logits, op, "logits"), as_tensor(labels, op, "labels"),
                                  _version(version, op))


def sgd_update(w, dw, v, lr, momentum=0.9, weight_decay=0.0005, version=0):
    """In place on the Tensors w and v: v <- momentum*v - weight_decay*lr*w - lr*dw; w <- w + v.
    Returns None. w and v must be Tensors (an update of a temporary copy of a NumPy array would
    be lost); dw may be a NumPy array when w is on the CPU."""
    op = "sgd_update"
    for name, t in (("w", w), ("v", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: argument '{name}' must be a pyconvnet.Tensor (it is updated in place); "
                            f"got {type(t).__name__}")
    _C.sgd_update(w, as_tensor(dw, op, "dw"), v, _float(lr, op, "lr"), _float(momentum, op, "momentum"),
                  _float(weight_decay, op, "weight_decay"), _version(version, op))


# ---------------------------------------------------------------------------------------------
# Data: augmentation; the random draws are in pyconvnet/augment.py
# ---------------------------------------------------------------------------------------------


def augment(images, mean, offsets, flips, lighting=None, crop=224, repeats=1, version=0):
    """uint8 (N, H, W, 3) images -> float32 (M, 3, crop, crop) network input, M = N * repeats:
    out[m, c, i, j] = images[m // repeats, y + i, x + jj, c] - mean[y + i, x + jj, c] + lighting[m, c]
    where (y, x) = offsets[m] (int32 (M, 2)), jj = crop - 1 - j if flips[m] (int32 (M,), 0/1) else j,
    lighting float32 (M, 3) (None: zeros). images and mean (float32 (H, W, 3)) are on the device
    that computes; offsets, flips and lighting are NumPy arrays or CPU tensors."""
    op = "augment"
    crop, repeats, version = _int(crop, op, "crop"), _int(repeats, op, "repeats"), _version(version, op)
    if lighting is None:
        lighting = _C.zeros((0 if offsets is None else len(offsets), 3), "float32", "cpu")
    return _C.augment(as_tensor(images, op, "images"), as_tensor(mean, op, "mean"),
                      as_tensor(offsets, op, "offsets"), as_tensor(flips, op, "flips"),
                      as_tensor(lighting, op, "lighting"), crop, repeats, version)
