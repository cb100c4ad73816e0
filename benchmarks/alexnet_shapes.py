"""AlexNet's layer shapes and the work of every op pass at a given batch: FLOPs and the bytes a
kernel must move at least (each input read once, each output written once, float32 = 4 bytes).

One source for bench_kernels.py (which times the passes) and roofline.py (which prints the floor
time of each at a device's peak). The shapes follow docs/alexnet.md: 224x224 input, conv1
11x11/4 padding 2, the two columns as groups=2 in conv2, conv4, conv5 and in both LRNs.

FLOPs: 2 per multiply-add of the convolutions and matrix products, the figure the paper's cost
(724.4M multiply-adds per image forward) is quoted in; bias additions are not counted (under 0.2%
of any layer). The element-wise ops (ReLU, LRN, pooling, dropout, softmax, SGD) get a nominal
count per element (written next to each) only so that every row has one: their floor time is set
by their bytes on any GPU or CPU, whose balance point is well above 1-2 FLOP per byte.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

F32 = 4

# name, C_in, H_in, K, kernel, stride, padding, groups: AlexNet's convolutions.
CONVS = [
    ("conv1", 3, 224, 96, 11, 4, 2, 1),
    ("conv2", 96, 27, 256, 5, 1, 2, 2),
    ("conv3", 256, 13, 384, 3, 1, 1, 1),
    ("conv4", 384, 13, 384, 3, 1, 1, 2),
    ("conv5", 384, 13, 256, 3, 1, 1, 2),
]
# name, in_features, out_features.
LINEARS = [("fc6", 256 * 6 * 6, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 1000)]
# The activations each element-wise op sees (C, H, W) or (F,), as the model applies them.
RELUS = [("relu1", (96, 55, 55)), ("relu2", (256, 27, 27)), ("relu3", (384, 13, 13)),
         ("relu4", (384, 13, 13)), ("relu5", (256, 13, 13)), ("relu6", (4096,)), ("relu7", (4096,))]
LRNS = [("lrn1", (96, 55, 55)), ("lrn2", (256, 27, 27))]
POOLS = [("pool1", (96, 55, 55)), ("pool2", (256, 27, 27)), ("pool5", (256, 13, 13))]
DROPOUTS = [("drop6", (4096,)), ("drop7", (4096,))]
CLASSES = 1000
LRN_ARGS = dict(size=5, alpha=1e-4, beta=0.75, k=2.0, groups=2)
POOL_KERNEL, POOL_STRIDE, DROPOUT_P = 3, 2, 0.5
# The augmentation kernel (pyconvnet.ops.augment, data pipeline): uint8 256x256 images to
# float32 224x224 crops.
AUG_SIZE, AUG_CROP = 256, 224


def conv_out(h, k, s, p):
    return (h + 2 * p - k) // s + 1


@dataclass
class Case:
    """One op pass at one layer's shape."""
    key: str            # "conv2.fwd", unique
    layer: str          # "conv2"
    op: str             # the pyconvnet.ops function timed
    pass_: str          # fwd, bwd_data, bwd_filter, bwd, update
    shapes: dict        # tensor name -> shape, for the printed description
    flops: float
    bytes: float
    params: dict = field(default_factory=dict)  # stride, padding, groups, ...
    in_training_step: bool = True  # whether AlexNet's training step runs this pass

    def describe(self) -> str:
        s = self.shapes
        if self.op == "conv2d":
            g = self.params["groups"]
            return (f"x{_t(s['x'])} w{_t(s['w'])} s{self.params['stride']} p{self.params['padding']}"
                    + (f" g{g}" if g > 1 else ""))
        if self.op == "linear":
            return f"x{_t(s['x'])} w{_t(s['w'])}"
        return " ".join(f"{k}{_t(v)}" for k, v in s.items())


def _t(shape) -> str:
    return "(" + ",".join(str(d) for d in shape) + ")"


def alexnet_cases(batch: int) -> list[Case]:
    """Every op pass of one AlexNet training step at `batch`, in the order the step runs them
    (forward layers, loss, then the backward passes and updates grouped per layer kind)."""
    n = batch
    cases: list[Case] = []

    for name, c, h, k, r, s, p, g in CONVS:
        o = conv_out(h, r, s, p)
        x, w, y = (n, c, h, h), (k, c // g, r, r), (n, k, o, o)
        macs = n * k * o * o * (c // g) * r * r
        nx, nw, ny = prod(x), prod(w), prod(y)
        prm = dict(stride=s, padding=p, groups=g)
        cases.append(Case(f"{name}.fwd", name, "conv2d", "fwd", dict(x=x, w=w, y=y), 2 * macs,
                          F32 * (nx + nw + k + ny), prm))
        # conv1's input gradient is never computed: the image needs none (input_grad=False).
        cases.append(Case(f"{name}.bwd_data", name, "conv2d", "bwd_data", dict(x=x, w=w, y=y), 2 * macs,
                          F32 * (ny + nw + nx), prm, in_training_step=name != "conv1"))
        cases.append(Case(f"{name}.bwd_filter", name, "conv2d", "bwd_filter", dict(x=x, w=w, y=y), 2 * macs,
                          F32 * (ny + nx + nw + k), prm))

    for name, fin, fout in LINEARS:
        x, w, y = (n, fin), (fout, fin), (n, fout)
        macs = n * fin * fout
        nx, nw, ny = prod(x), prod(w), prod(y)
        cases.append(Case(f"{name}.fwd", name, "linear", "fwd", dict(x=x, w=w, y=y), 2 * macs,
                          F32 * (nx + nw + fout + ny)))
        cases.append(Case(f"{name}.bwd_data", name, "linear", "bwd_data", dict(x=x, w=w, y=y), 2 * macs,
                          F32 * (ny + nw + nx)))
        cases.append(Case(f"{name}.bwd_filter", name, "linear", "bwd_filter", dict(x=x, w=w, y=y), 2 * macs,
                          F32 * (ny + nx + nw + fout)))

    for name, shape in RELUS:
        e = n * prod(shape)
        sh = (n, *shape)
        cases.append(Case(f"{name}.fwd", name, "relu", "fwd", dict(x=sh), e, F32 * 2 * e))  # 1 max per element
        cases.append(Case(f"{name}.bwd", name, "relu_backward", "bwd", dict(dy=sh), e, F32 * 3 * e))

    for name, shape in LRNS:
        e = n * prod(shape)
        sh = (n, *shape)
        # Nominal FLOPs per element: forward 5 squares + 4 adds + scale, offset, power, multiply (13);
        # backward recomputes the forward's normaliser and sums a second 5-wide window (30).
        cases.append(Case(f"{name}.fwd", name, "lrn", "fwd", dict(x=sh), 13 * e, F32 * 2 * e, dict(LRN_ARGS)))
        # dy and x read, dx written (pyconvnet's kernels recompute from x rather than read y).
        cases.append(Case(f"{name}.bwd", name, "lrn_backward", "bwd", dict(dy=sh), 30 * e, F32 * 3 * e,
                          dict(LRN_ARGS)))

    for name, (c, h, w) in POOLS:
        o = conv_out(h, POOL_KERNEL, POOL_STRIDE, 0)
        ein, eout = n * c * h * w, n * c * o * o
        prm = dict(kernel=POOL_KERNEL, stride=POOL_STRIDE)
        # 8 comparisons per 3x3 window; x read, y and the uint8 taps written.
        cases.append(Case(f"{name}.fwd", name, "max_pool2d", "fwd", dict(x=(n, c, h, w), y=(n, c, o, o)),
                          8 * eout, F32 * (ein + eout) + eout, prm))
        # dy and the taps read, dx written; nominal 1 compare per window.
        cases.append(Case(f"{name}.bwd", name, "max_pool2d_backward", "bwd", dict(x=(n, c, h, w), y=(n, c, o, o)),
                          eout, F32 * (ein + eout) + eout, prm))

    for name, shape in DROPOUTS:
        e = n * prod(shape)
        sh = (n, *shape)
        prm = dict(p=DROPOUT_P)
        # x read, y written (float32) and the uint8 mask written; 1 compare + 1 multiply nominal.
        cases.append(Case(f"{name}.fwd", name, "dropout", "fwd", dict(x=sh), 2 * e, (2 * F32 + 1) * e, prm))
        cases.append(Case(f"{name}.bwd", name, "dropout_backward", "bwd", dict(dy=sh), e, (2 * F32 + 1) * e, prm))

    e = n * CLASSES
    # Softmax: max, subtract, exp, sum, divide: 5 per element nominal.
    cases.append(Case("softmax.fwd", "fc8", "softmax", "fwd", dict(x=(n, CLASSES)), 5 * e, F32 * 2 * e,
                      in_training_step=False))
    # The fused loss + gradient the training step calls: logits and labels read, dlogits written.
    cases.append(Case("xent.fwd_bwd", "fc8", "cross_entropy", "fwd_bwd", dict(logits=(n, CLASSES)), 6 * e,
                      F32 * (2 * e + n)))

    params = []
    for name, c, h, k, r, s, p, g in CONVS:
        params += [(f"{name}.w", (k, c // g, r, r)), (f"{name}.b", (k,))]
    for name, fin, fout in LINEARS:
        params += [(f"{name}.w", (fout, fin)), (f"{name}.b", (fout,))]
    for pname, shape in params:
        e = prod(shape)
        # w, dw, v read; w, v written; 6 FLOPs per element (v = m*v - wd*lr*w - lr*dw; w += v).
        cases.append(Case(f"sgd.{pname}", pname.split(".")[0], "sgd_update", "update", dict(w=shape),
                          6 * e, F32 * 5 * e))
    return cases


def augment_case(batch: int) -> Case:
    """The device augmentation (random crop + reflection + mean subtraction + PCA lighting):
    uint8 (N, 256, 256, 3) images -> float32 (N, 3, 224, 224). Reads the crop's bytes and the
    mean over the crop, writes the float32 crop; 2 FLOPs per output element."""
    e = batch * 3 * AUG_CROP * AUG_CROP
    return Case("augment.train", "data", "augment", "fwd",
                dict(images=(batch, AUG_SIZE, AUG_SIZE, 3), y=(batch, 3, AUG_CROP, AUG_CROP)),
                2 * e, e + F32 * e + F32 * 3 * AUG_CROP * AUG_CROP, in_training_step=False)


def training_step_totals(batch: int) -> tuple[float, float]:
    """(FLOPs, bytes) of all the passes one training step runs."""
    cs = [c for c in alexnet_cases(batch) if c.in_training_step]
    return sum(c.flops for c in cs), sum(c.bytes for c in cs)
