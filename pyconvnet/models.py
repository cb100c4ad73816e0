"""Models: a Sequential container and the two-column AlexNet of Krizhevsky et al. (2012).

On one device the two columns are grouped convolutions (groups=2 in conv2, conv4, conv5) and
grouped LRNs (each column normalises over its own channels); conv3 and fc6-8 see both columns.
docs/alexnet.md states the network, the recipe and the decisions this follows.
"""
from __future__ import annotations

import numpy as np

from . import ops
from .keys import dropout_key
from .layers import Conv2d, Dropout, Flatten, Layer, Linear, LRN, MaxPool2d, ReLU
from .tensor import tensor


# The smallest input side AlexNet's strides allow: conv1 11x11/4 (padding 2) and three 3x3/2
# pools must leave at least one pixel (tests/test_model.py checks it against the arithmetic).
MIN_INPUT_SIZE = 63

# The typical standard deviation of mean-subtracted pixels on the 0..255 scale (ImageNet: ~60).
PIXEL_STD = 64.0


class Sequential:
    """Layers applied in order. Checks at construction that every layer accepts its input shape,
    so a bad input size or class count fails early with the layer's name."""

    def __init__(self, name: str, layers: list[Layer], input_shape: tuple, config: dict | None = None):
        self.name, self.layers, self.input_shape = name, layers, tuple(input_shape)
        self.config = dict(config or {})
        names = [l.name for l in layers]
        if len(set(names)) != len(names):
            raise ValueError(f"{name}: layer names must be unique; got {names}")
        self.shapes = []
        shape = self.input_shape
        for layer in layers:
            shape = layer.output_shape(shape)
            self.shapes.append(shape)
        self.device = "cpu"
        # Parameter names and shapes never change; in columns the layers' halves live in
        # self.columns (pyconvnet/columns.py) and these layers hold no parameters.
        self._param_shapes = {f"{l.name}.{p}": tuple(t.shape) for l in layers for p, t in l.params.items()}
        self.columns = None

    # -------------------------------------------------------------------- running
    def forward(self, x, train: bool = False):
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"{self.name}: input must have shape (N, {', '.join(map(str, self.input_shape))}); got {tuple(x.shape)}")
        if self.columns is not None:
            return self.columns.forward(x, train)
        for layer in self.layers:
            x = layer.forward(x, train)
        return x

    def backward(self, dy):
        if self.columns is not None:
            return self.columns.backward(dy)
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
            if dy is None:
                break
        return dy

    def set_dropout_seed(self, seed: int, step: int = 0, first_row: int = 0) -> None:
        """Give every dropout layer its own mask stream for step `step` of a run seeded `seed`
        (keys.dropout_key); the input's first sample is sample `first_row` of the step's batch."""
        if self.columns is not None:
            return self.columns.set_dropout_seed(seed, step, first_row)
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Dropout):
                layer.seed = dropout_key(seed, step, i)
                layer.first_row = first_row

    def set_versions(self, versions: dict) -> None:
        """Run kernel version versions[op] (pyconvnet.ops.versions) in every layer of that op,
        e.g. {"conv2d": 4, "linear": 4}; 0 is the device's default."""
        for layer in self.layers:
            if layer.op in versions:
                layer.version = int(versions[layer.op])

    def to(self, device: str) -> "Sequential":
        """Every parameter on `device` (from columns too: the halves are joined)."""
        if self.columns is not None:
            state = self.state_dict()
            self.columns = None
            for layer in self.layers:
                layer.params = {p: tensor(state[f"{layer.name}.{p}"]) for p in self._params_of(layer)}
        for layer in self.layers:
            layer.to(device)
        self.device = device
        return self

    def to_columns(self, devices) -> "Sequential":
        """Column 1's half of every layer (kernels, biases, LRN groups; its momentum in training)
        on devices[0], column 2's on devices[1], as the paper's two GPUs (pyconvnet/columns.py).
        forward takes its input on devices[0] and returns the logits there; parameters() yields
        the halves; state_dict() and load_state_dict() exchange the same arrays as on one device."""
        from .columns import Columns  # columns imports layers and keys, as this module does

        if self.columns is not None:
            self.to("cpu")
        columns = Columns(self, devices)
        self.columns = columns
        for layer in self.layers:
            layer.params, layer.grads = {}, {}
        self.device = columns.devices[0]
        return self

    def _params_of(self, layer) -> list:
        return [key.split(".", 1)[1] for key in self._param_shapes if key.split(".", 1)[0] == layer.name]

    # -------------------------------------------------------------------- parameters
    def parameters(self):
        """(key, layer, name) for every parameter tensor, in layer order; key is "layer.name" (in
        columns, each half's key is "layer.name[column 1]" or "[column 2]")."""
        if self.columns is not None:
            yield from self.columns.parameters()
            return
        for layer in self.layers:
            for pname in layer.params:
                yield f"{layer.name}.{pname}", layer, pname

    def param_shapes(self) -> dict:
        """{"layer.name": shape} of every parameter as one array (the state_dict's shapes)."""
        return dict(self._param_shapes)

    def merge(self, arrays: dict) -> dict:
        """Arrays keyed as parameters() (one per tensor) -> keyed "layer.name" (one per parameter,
        columns' halves joined). The identity on one device."""
        return self.columns.merge(arrays) if self.columns is not None else dict(arrays)

    def split(self, arrays: dict) -> dict:
        """The inverse of merge."""
        return self.columns.split(arrays) if self.columns is not None else dict(arrays)

    def num_parameters(self) -> int:
        return sum(int(np.prod(s)) for s in self._param_shapes.values())

    def state_dict(self) -> dict:
        """Every parameter as a float32 NumPy array, keyed "conv1.weight", "conv1.bias", ...
        (the same arrays on one device and in columns)."""
        return self.merge({key: layer.params[p].numpy() for key, layer, p in self.parameters()})

    def load_state_dict(self, state: dict) -> None:
        """Copy arrays (as from state_dict) into the parameters; keys and shapes must match."""
        expected = self._param_shapes
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ValueError(f"{self.name}.load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for key in expected:
            a = np.asarray(state[key])
            if a.shape != expected[key]:
                raise ValueError(f"{self.name}.load_state_dict: '{key}' must have shape {expected[key]}; got {a.shape}")
        parts = self.split({key: np.asarray(state[key], dtype=np.float32) for key in expected})
        for key, layer, p in self.parameters():
            layer.params[p] = tensor(np.ascontiguousarray(parts[key], dtype=np.float32), layer.params[p].device)

    def summary(self) -> str:
        where = f", two columns on {' and '.join(self.columns.devices)}" if self.columns is not None else ""
        lines = [f"{self.name}: input {self.input_shape}, {self.num_parameters():,} parameters{where}"]
        for layer, shape in zip(self.layers, self.shapes):
            n = sum(int(np.prod(self._param_shapes[f"{layer.name}.{p}"])) for p in self._params_of(layer))
            lines.append(f"  {layer.name:<8} {type(layer).__name__:<10} -> {str(shape):<16} {n:>12,}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


def alexnet(num_classes: int = 1000, input_size: int = 224, width: float = 1.0, seed: int = 0,
            init: str = "paper", name: str | None = None) -> Sequential:
    """The two-column AlexNet.

    num_classes: outputs of fc8. input_size: side of the (square) input crop; any size the layer
    arithmetic allows (at least 63 with the paper's strides). width: multiplies every layer's
    channel count (1.0 = the paper's 96-256-384-384-256 / 4096-4096); smaller widths give a
    scaled-down network of the same structure. init: "paper" — weights N(0, 0.01), biases 1 in
    conv2, conv4, conv5, fc6, fc7 and 0 elsewhere (docs/alexnet.md); "caffe" — the same
    but biases 0.1 (Caffe found bias 1 gave a flat loss early on); "he" — weights
    N(0, sqrt(2 / fan_in)) (divided by PIXEL_STD in conv1, whose input is raw 0..255 pixels
    minus the mean) and zero biases, which makes small, quickly trained networks start
    learning at once.
    """
    if init not in ("paper", "caffe", "he"):
        raise ValueError(f"alexnet: init must be 'paper', 'caffe' or 'he'; got {init!r}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"alexnet: num_classes must be a positive int; got {num_classes!r}")
    if width <= 0:
        raise ValueError(f"alexnet: width must be > 0; got {width}")

    def ch(n):  # channels scaled by width, kept even so the two columns split them evenly
        return max(2, int(round(n * width / 2)) * 2)

    c1, c2, c3, c4, c5, f = ch(96), ch(256), ch(384), ch(384), ch(256), ch(4096)
    rng = np.random.default_rng(seed)
    one = {"paper": 1.0, "caffe": 0.1, "he": 0.0}[init]

    def conv(nm, cin, cout, k, s, p, g, bias, **kw):
        std = np.sqrt(2.0 / (cin // g * k * k)) if init == "he" else 0.01
        if init == "he" and nm == "conv1":
            std /= PIXEL_STD  # the input is mean-subtracted pixels on the 0..255 scale, not unit variance
        return Conv2d(nm, cin, cout, k, s, p, g, std=std, bias=bias, rng=rng, **kw)

    def fc(nm, fin, fout, bias):
        std = np.sqrt(2.0 / fin) if init == "he" else 0.01
        return Linear(nm, fin, fout, std=std, bias=bias, rng=rng)

    # The spatial size after conv1..pool5, to size fc6; the layers re-check it below.
    def out(h, k, s, p=0):
        return (h + 2 * p - k) // s + 1
    s5 = out(out(out(out(out(input_size, 11, 4, 2), 3, 2), 5, 1, 2), 3, 2), 3, 2)
    if s5 < 1:
        raise ValueError(f"alexnet: input_size={input_size} is too small for AlexNet's layer arithmetic "
                         f"(conv1 11x11/4 and three 3x3/2 pools need at least {MIN_INPUT_SIZE})")
    layers = [
        conv("conv1", 3, c1, 11, 4, 2, 1, 0.0, input_grad=False), ReLU("relu1"),
        LRN("lrn1", groups=2), MaxPool2d("pool1", 3, 2),
        conv("conv2", c1, c2, 5, 1, 2, 2, one), ReLU("relu2"), LRN("lrn2", groups=2), MaxPool2d("pool2", 3, 2),
        conv("conv3", c2, c3, 3, 1, 1, 1, 0.0), ReLU("relu3"),
        conv("conv4", c3, c4, 3, 1, 1, 2, one), ReLU("relu4"),
        conv("conv5", c4, c5, 3, 1, 1, 2, one), ReLU("relu5"), MaxPool2d("pool5", 3, 2),
        Flatten("flatten"),
        fc("fc6", c5 * s5 * s5, f, one), ReLU("relu6"), Dropout("drop6", 0.5),
        fc("fc7", f, f, one), ReLU("relu7"), Dropout("drop7", 0.5),
        fc("fc8", f, num_classes, 0.0),
    ]
    if init == "he":
        # conv1 sees raw pixels (std ~PIXEL_STD), not unit-variance inputs: its gradient is
        # PIXEL_STD times larger and its weights PIXEL_STD times smaller than He assumes, so its
        # relative steps would be PIXEL_STD^2 larger. Scaling its learning rate by 1/PIXEL_STD^2
        # makes the step exactly that of a network fed unit-variance inputs.
        layers[0].lr_mult = 1.0 / PIXEL_STD ** 2
    if name is None:
        name = "AlexNet" if width == 1.0 and input_size == 224 else f"AlexNet (scaled-down: width {width:g}, input {input_size})"
    config = dict(arch="alexnet", num_classes=num_classes, input_size=input_size, width=width, seed=seed, init=init)
    return Sequential(name, layers, (3, input_size, input_size), config)


def from_config(config: dict) -> Sequential:
    """Rebuild a model from its `config` (as stored in checkpoints)."""
    cfg = dict(config)
    if cfg.pop("arch", None) != "alexnet":
        raise ValueError(f"unknown model architecture in config: {config!r}")
    return alexnet(**cfg)


def loss_and_grad(model: Sequential, x, labels, hits=False):
    """Forward in training mode, softmax cross-entropy, backward. Returns (loss, logits), or with
    hits=True (loss, logits, (top-1 hits, top-5 hits)) as counted by the loss kernel."""
    logits = model.forward(x, train=True)
    loss, dlogits, counts = ops.cross_entropy(logits, labels, hits=True)
    model.backward(dlogits)
    return (loss, logits, counts) if hits else (loss, logits)
