"""Layers: each has forward(x, train) and backward(dy), and keeps what backward needs.

A layer with parameters holds them in `params` (name -> Tensor) and, after backward, their
gradients in `grads` (same names). Layers run on whatever device their inputs and parameters are
on; `to(device)` moves the parameters. All the arithmetic happens in pyconvnet.ops.
"""
from __future__ import annotations

import numpy as np

from . import ops
from .tensor import tensor


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


class Layer:
    """Base class. Subclasses set `name` and, if they learn, `params`. A layer whose arithmetic is
    one of the kernel-versioned GEMM ops names it in `op` ("conv2d", "linear") and runs kernel
    `version` of it (0: the device's default; Sequential.set_versions sets it)."""

    op: str | None = None

    def __init__(self, name: str):
        self.name = name
        self.version = 0
        self.params: dict = {}
        self.grads: dict = {}
        # The learning rate of this layer's parameters is the trainer's times lr_mult (as
        # cuda-convnet's per-layer epsW).
        self.lr_mult = 1.0

    def forward(self, x, train: bool = True):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def output_shape(self, shape: tuple) -> tuple:
        """The output shape (without the batch axis) for an input of `shape`; ValueError if the
        layer cannot take that input."""
        return shape

    def to(self, device: str) -> "Layer":
        self.params = {k: v.to(device) for k, v in self.params.items()}
        self.grads = {}
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class _FusesReLU(Layer):
    """A layer whose forward can apply the ReLU that follows it (the bias and ReLU in the GEMM's
    epilogue: one pass over the output instead of two). `Sequential` sets `relu` on such a layer
    and `fused` on its ReLU, which then passes through; the layer keeps its output for ReLU's
    backward."""

    relu = False

    def _keep_output(self, y, train):
        self.y = y if train and self.relu else None
        return y

    def _relu_backward(self, dy):
        if not self.relu:
            return dy
        dy = ops.relu_backward(dy, self.y)
        self.y = None
        return dy


class Conv2d(_FusesReLU):
    """Grouped 2D convolution. Weights (K, C/groups, R, S) ~ N(0, std), bias = `bias`."""

    op = "conv2d"

    def __init__(self, name, in_channels, out_channels, kernel, stride=1, padding=0, groups=1,
                 std=0.01, bias=0.0, input_grad=True, rng=None):
        super().__init__(name)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel, self.stride, self.padding = _pair(kernel), _pair(stride), _pair(padding)
        self.groups, self.input_grad = groups, input_grad
        rng = rng if rng is not None else np.random.default_rng(0)
        w = rng.normal(0.0, std, (out_channels, in_channels // groups, *self.kernel)).astype(np.float32)
        self.params = {"weight": tensor(w), "bias": tensor(np.full(out_channels, bias, np.float32))}

    def output_shape(self, shape):
        c, h, w = shape
        if c != self.in_channels:
            raise ValueError(f"{self.name}: expects {self.in_channels} input channels; got {c} (input shape {shape})")
        (r, s), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        if h + 2 * ph < r or w + 2 * pw < s:
            raise ValueError(f"{self.name}: a {r}x{s} kernel does not fit a {h}x{w} input padded by {ph},{pw}")
        return (self.out_channels, (h + 2 * ph - r) // sh + 1, (w + 2 * pw - s) // sw + 1)

    def forward(self, x, train=True):
        self.x = x if train else None
        y = ops.conv2d(x, self.params["weight"], self.params["bias"], self.stride, self.padding, self.groups,
                       relu=self.relu, version=self.version)
        return self._keep_output(y, train)

    def backward(self, dy):
        dy = self._relu_backward(dy)
        dx, dw, db = ops.conv2d_backward(dy, self.x, self.params["weight"], self.stride, self.padding,
                                         self.groups, input_grad=self.input_grad, version=self.version)
        self.grads = {"weight": dw, "bias": db}
        self.x = None
        return dx


class Linear(_FusesReLU):
    """y = x w^T + b. Weights (out, in) ~ N(0, std), bias = `bias`."""

    op = "linear"

    def __init__(self, name, in_features, out_features, std=0.01, bias=0.0, rng=None):
        super().__init__(name)
        self.in_features, self.out_features = in_features, out_features
        rng = rng if rng is not None else np.random.default_rng(0)
        w = rng.normal(0.0, std, (out_features, in_features)).astype(np.float32)
        self.params = {"weight": tensor(w), "bias": tensor(np.full(out_features, bias, np.float32))}

    def output_shape(self, shape):
        if shape != (self.in_features,):
            raise ValueError(f"{self.name}: expects input shape ({self.in_features},); got {shape}")
        return (self.out_features,)

    def forward(self, x, train=True):
        self.x = x if train else None
        y = ops.linear(x, self.params["weight"], self.params["bias"], relu=self.relu, version=self.version)
        return self._keep_output(y, train)

    def backward(self, dy):
        dy = self._relu_backward(dy)
        dx, dw, db = ops.linear_backward(dy, self.x, self.params["weight"], version=self.version)
        self.grads = {"weight": dw, "bias": db}
        self.x = None
        return dx


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W), sharing memory; backward restores the shape."""

    def output_shape(self, shape):
        return (int(np.prod(shape)),)

    def forward(self, x, train=True):
        self.shape = x.shape
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))

    def backward(self, dy):
        return dy.reshape(self.shape)


class ReLU(Layer):
    """max(x, 0). fused: the layer before applies it in its forward (_FusesReLU), so this one
    passes its input and gradient through."""

    fused = False

    def forward(self, x, train=True):
        if self.fused:
            return x
        y = ops.relu(x)
        self.y = y if train else None
        return y

    def backward(self, dy):
        if self.fused:
            return dy
        dx = ops.relu_backward(dy, self.y)
        self.y = None
        return dx


class LRN(Layer):
    """Cross-channel local response normalisation (alpha/size convention, within `groups`)."""

    def __init__(self, name, size=5, alpha=1e-4, beta=0.75, k=2.0, groups=1):
        super().__init__(name)
        self.kw = dict(size=size, alpha=alpha, beta=beta, k=k, groups=groups)

    def output_shape(self, shape):
        if shape[0] % self.kw["groups"]:
            raise ValueError(f"{self.name}: groups={self.kw['groups']} must divide the {shape[0]} channels")
        return shape

    def forward(self, x, train=True):
        y = ops.lrn(x, **self.kw)
        self.x, self.y = (x, y) if train else (None, None)
        return y

    def backward(self, dy):
        dx = ops.lrn_backward(dy, self.x, self.y, **self.kw)
        self.x = self.y = None
        return dx


class MaxPool2d(Layer):
    def __init__(self, name, kernel=3, stride=2):
        super().__init__(name)
        self.kernel, self.stride = kernel, stride
        # Training keeps each window's tap (uint8, a quarter of y's bytes) for the backward.
        self.taps = self.x_shape = None

    def output_shape(self, shape):
        c, h, w = shape
        if h < self.kernel or w < self.kernel:
            raise ValueError(f"{self.name}: a {self.kernel}x{self.kernel} pool does not fit a {h}x{w} input")
        return (c, (h - self.kernel) // self.stride + 1, (w - self.kernel) // self.stride + 1)

    def forward(self, x, train=True):
        if not train:
            self.taps = self.x_shape = None
            return ops.max_pool2d(x, self.kernel, self.stride)
        y, self.taps = ops.max_pool2d(x, self.kernel, self.stride, taps=True)
        self.x_shape = x.shape
        return y

    def backward(self, dy):
        dx = ops.max_pool2d_backward(dy, self.taps, self.x_shape, self.kernel, self.stride)
        self.taps = self.x_shape = None
        return dx


class Dropout(Layer):
    """Inverted dropout. The mask of each step comes from `seed` (set by the model before every
    training step), so a run is reproducible and CPU and CUDA draw the same masks; row i of the
    input draws mask row first_row + i (its sample's position in the whole batch). `part`
    (offset, width): the layer is one column's features [offset, ...) of a layer `width` wide,
    and draws that part of its mask (ops.dropout)."""

    def __init__(self, name, p=0.5):
        super().__init__(name)
        self.p = p
        self.seed = 0
        self.first_row = 0
        self.part = None

    def forward(self, x, train=True):
        if not train or self.p == 0:
            self.mask = None
            return x
        y, self.mask = ops.dropout(x, self.p, self.seed, first_row=self.first_row, part=self.part)
        return y

    def backward(self, dy):
        if self.mask is None:
            return dy
        dx = ops.dropout_backward(dy, self.mask, self.p)
        self.mask = None
        return dx
