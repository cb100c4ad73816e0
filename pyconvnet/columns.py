"""The two columns of a network on two devices (model parallelism), as the paper trained AlexNet.

`Sequential.to_columns([dev0, dev1])` splits every layer in two: column 1's half of each layer's
kernels (output channels or features), biases and LRN groups on dev0, column 2's on dev1. The
columns compute concurrently (each device's ops run on its own stream) and exchange activations
only where the paper's do:

    image on dev0 --copy--> both columns' conv1
    conv2 (groups=2), conv4, conv5, LRN (groups=2), ReLU, pooling, dropout: each column alone
    conv3, fc6, fc7, fc8: each column takes both columns' outputs (concat along axis 1)
    logits: both columns' halves of fc8 joined on dev0

Backward mirrors it: where both columns read one input, each column's part of the input gradient
is the sum of the two columns' gradients (ops.add). The crossings are asynchronous peer copies, or
copies staged through pinned host memory, ordered by events (csrc/transfer.h): the host never
waits between layers. Parameters keep their one-device names and shapes to the outside
(state_dict, checkpoints), so a run moves between the layouts.
"""
from __future__ import annotations

import copy

import numpy as np

from . import _C, cuda, ops
from .keys import dropout_key
from .layers import Conv2d, Dropout, Flatten, Layer, Linear, LRN, MaxPool2d, ReLU
from .tensor import tensor


def check_devices(devices, who: str = "to_columns") -> list:
    """The two devices of a column layout, as "cuda:N" names: two distinct CUDA devices that
    exist. ValueError naming what is wrong otherwise."""
    if isinstance(devices, str):
        devices = [d.strip() for d in devices.split(",") if d.strip()]
    devices = list(devices)
    if len(devices) != 2:
        raise ValueError(f"{who}: the two columns need exactly 2 devices; got {len(devices)} ({', '.join(map(str, devices)) or 'none'})")
    names = []
    for d in devices:
        if not isinstance(d, str) or not (d == "cuda" or (d.startswith("cuda:") and d[5:].isdigit())):
            raise ValueError(f"{who}: the columns run on CUDA devices ('cuda:N'); got {d!r}")
        names.append(f"cuda:{int(d[5:]) if d != 'cuda' else 0}")
    if names[0] == names[1]:
        raise ValueError(f"{who}: the two columns need two different devices; got {names[0]} twice")
    for d in names:
        if int(d[5:]) >= cuda.device_count():
            raise ValueError(f"{who}: device {d} does not exist; {cuda.device_count()} CUDA device(s) visible"
                             + (f" ({cuda.unavailable_reason()})" if not cuda.is_available() else ""))
    return names


def halves(n: int) -> tuple:
    """Column 1 and column 2's shares of n channels or features (column 1 takes an odd one)."""
    return (n - n // 2, n // 2)


def column_key(key: str, column: int) -> str:
    """The key of column `column`'s (0 or 1) half of parameter `key`: "conv1.weight[column 1]"."""
    return f"{key}[column {column + 1}]"


class _Column:
    """One step of the plan: a layer split into two column layers (pair), each on its device."""

    def __init__(self, source: Layer, pair: tuple):
        self.source, self.pair = source, pair


class _Gather:
    """Both columns' outputs (split along axis 1 in `sizes`) joined on each device: the input of a
    layer that sees both columns."""

    def __init__(self, sizes: tuple):
        self.sizes = sizes


class _Broadcast:
    """The one input (on the first device) copied to the second: the image into both conv1s."""


class Columns:
    """The plan of a Sequential split over two devices. Built by Sequential.to_columns."""

    def __init__(self, net, devices):
        self.net, self.devices = net, check_devices(devices)
        self.plan: list = []
        self.param_rows: dict = {}  # "layer.param" -> (rows of column 1, rows of column 2)
        self._widths = ()  # while building: each column's share of the last layer's outputs (axis 1)
        state = {key: layer.params[p].numpy() for key, layer, p in net.parameters()}
        split = False  # False: one tensor on the first device; True: one half per column
        for index, layer in enumerate(net.layers):
            split = self._add(index, layer, split, state)
        if not split:
            raise ValueError(f"{net.name}.to_columns: no layer splits into columns")
        self.out_sizes = self._sizes(net.layers[-1])

    # ------------------------------------------------------------------ building the plan
    def _sizes(self, layer) -> tuple:
        n = layer.out_channels if isinstance(layer, Conv2d) else layer.out_features
        if n < 2:
            raise ValueError(f"{self.net.name}.to_columns: {layer.name} has {n} output(s); each column needs at least one")
        return halves(n)

    def _add(self, index, layer, split, state) -> bool:
        who = f"{self.net.name}.to_columns: {layer.name}"
        if isinstance(layer, (Conv2d, Linear)):
            groups = getattr(layer, "groups", 1)
            if groups == 2 and split:
                pass  # each column's group sees only its own column
            elif groups == 1:
                if split:
                    self.plan.append(_Gather(self._widths))
                else:
                    self.plan.append(_Broadcast())
            else:
                raise ValueError(f"{who} has groups={groups}; a column layout needs 1 (sees both columns) or 2 "
                                 f"(one group per column, after a layer that split)")
            sizes = self._sizes(layer)
            pair = []
            for c, (lo, hi) in enumerate(((0, sizes[0]), (sizes[0], sizes[0] + sizes[1]))):
                col = copy.copy(layer)
                col.grads = {}
                if isinstance(layer, Conv2d):
                    col.out_channels, col.groups = hi - lo, 1
                    col.in_channels = layer.in_channels // groups
                else:
                    col.out_features = hi - lo
                col.params = {p: tensor(np.ascontiguousarray(state[f"{layer.name}.{p}"][lo:hi]), self.devices[c])
                              for p in layer.params}
                pair.append(col)
            for p in layer.params:
                self.param_rows[f"{layer.name}.{p}"] = sizes
            self._widths = sizes
            self.plan.append(_Column(layer, tuple(pair)))
            return True
        if not split:
            raise ValueError(f"{who}: a {type(layer).__name__} before the first layer that splits into columns")
        if isinstance(layer, LRN):
            if layer.kw["groups"] != 2:
                raise ValueError(f"{who} normalises over groups={layer.kw['groups']}; in columns it needs 2 (one per column)")
            pair = []
            for _ in range(2):
                col = copy.copy(layer)
                col.kw = dict(layer.kw, groups=1)
                pair.append(col)
        elif isinstance(layer, Dropout):
            width = sum(self._widths)
            pair = []
            for c, offset in enumerate((0, self._widths[0])):
                col = copy.copy(layer)
                col.part, col.index = (offset, width), index
                pair.append(col)
        elif isinstance(layer, (ReLU, MaxPool2d, Flatten)):
            pair = [copy.copy(layer), copy.copy(layer)]
            if isinstance(layer, Flatten):
                shape = self.net.shapes[index - 1]  # per column: its share of the channels times H x W
                inner = int(np.prod(shape[1:]))
                self._widths = tuple(w * inner for w in self._widths)
        else:
            raise ValueError(f"{who}: a {type(layer).__name__} cannot be split into columns")
        self.plan.append(_Column(layer, tuple(pair)))
        return True

    # ------------------------------------------------------------------ running
    def forward(self, x, train: bool):
        d0, d1 = self.devices
        if getattr(x, "device", None) != d0:
            raise ValueError(f"{self.net.name}: in columns on {d0} and {d1} the input must be a Tensor on {d0}; "
                             f"got {getattr(x, 'device', type(x).__name__)}")
        h = x
        for step in self.plan:
            if isinstance(step, _Broadcast):
                h = (h, _C.transfer(h, d1))
            elif isinstance(step, _Gather):
                h = tuple(_C.concat(list(h), d) for d in self.devices)
            else:
                h = tuple(layer.forward(part, train) for layer, part in zip(step.pair, h))
        return _C.concat(list(h), d0)

    def backward(self, dy):
        d = tuple(_C.split(dy, list(self.out_sizes), self.devices))
        for step in reversed(self.plan):
            if isinstance(step, _Broadcast):
                return ops.add(d[0], _C.transfer(d[1], self.devices[0]))
            if isinstance(step, _Gather):
                # Column j's part of the input gradient: its slice of both columns' gradients.
                parts = [_C.split(g, list(step.sizes), self.devices) for g in d]
                d = tuple(ops.add(parts[0][j], parts[1][j]) for j in range(2))
            else:
                d = tuple(layer.backward(g) for layer, g in zip(step.pair, d))
                if d[0] is None:
                    return None
        return d

    def set_dropout_seed(self, seed: int, step: int = 0, first_row: int = 0) -> None:
        """Both halves of a dropout layer draw the one-device layer's mask (its own part of it);
        the input's first sample is sample `first_row` of the step's batch."""
        for s in self.plan:
            if isinstance(s, _Column) and isinstance(s.source, Dropout):
                for layer in s.pair:
                    layer.seed = dropout_key(seed, step, layer.index)
                    layer.first_row = first_row

    # ------------------------------------------------------------------ parameters
    def parameters(self):
        """(key, layer, name) of every parameter half: key is "layer.name[column 1]" or "[column 2]"."""
        for s in self.plan:
            if isinstance(s, _Column):
                for c, layer in enumerate(s.pair):
                    for p in layer.params:
                        yield column_key(f"{layer.name}.{p}", c), layer, p

    def merge(self, arrays: dict) -> dict:
        """{"layer.name": the whole array} from {"layer.name[column c]": each column's half}."""
        return {key: np.concatenate([arrays[column_key(key, c)] for c in range(2)], axis=0)
                for key in self.param_rows}

    def split(self, arrays: dict) -> dict:
        """The inverse of merge: each whole array cut into its columns' rows."""
        out = {}
        for key, (n0, _) in self.param_rows.items():
            a = np.asarray(arrays[key])
            out[column_key(key, 0)], out[column_key(key, 1)] = a[:n0], a[n0:]
        return out
