#!/usr/bin/env python3
"""Every pyconvnet op pass at AlexNet's layer shapes, every kernel version, next to PyTorch.

    python benchmarks/bench_kernels.py                       # CUDA if available (batch 128), else CPU (batch 8)
    python benchmarks/bench_kernels.py --device cpu --batch 8 --json out.json
    python benchmarks/bench_kernels.py --only 'conv2|fc6' --versions default

One fixed-format line per (case, kernel version):

    conv2.fwd       v2*  x(128,96,27,27) w(256,48,5,5) s1 p2 g2  | ours    1.234 ms  46571 GFLOP/s  69.6% F | torch    1.100 ms  52245 GFLOP/s | ours/torch  0.89x | tf32    0.400 ms | check 3.1e-07

  v2*       the kernel version (`version=2`); * marks the op's default (what version=0 runs).
            The versions of each op on the device come from pyconvnet.ops.versions.
  ms        median wall-clock time per call (bench_common.py: inputs rotated through copies larger
            than the last-level cache, many calls per repetition, device synchronised).
  rate      GFLOP/s for passes bound by arithmetic at this device's peaks, GB/s for those bound
            by memory traffic (alexnet_shapes.py counts both; the larger floor time decides).
  % F / % B that rate as a share of the device's FP32 peak (F) or memory bandwidth peak (B):
            100% is the roofline floor, the time no kernel can beat.
  torch     the same computation through PyTorch on the same device (cuDNN/cuBLAS with TF32
            off on the GPU, its CPU kernels on the CPU); ours/torch is the speed ratio
            (torch time / our time): above 1.00x pyconvnet is faster.
  tf32      convolutions and matrix products: PyTorch with TF32 allowed (not float32-exact:
            shown for reference, not used in the ratio).
  check     max |ours - torch| / max |torch| over the outputs on the same inputs ("BAD" above
            1e-3); "-" where the ops draw different random numbers (dropout) or torch has none.

A summary table follows (default version and best version of every case, against PyTorch), and
with --json everything is written for tools. These are measurements, not tests: nothing here
runs in CI.
"""
from __future__ import annotations

import argparse
import gc
import math
import re
import sys
import time

import numpy as np

import bench_common as common
from bench_common import pyconvnet
from alexnet_shapes import Case, alexnet_cases, augment_case

from pyconvnet import _C, ops

CHECK_TOL = 1e-3  # scale-relative: float32 sums of up to 9216 products in different orders stay far below


# ----------------------------------------------------------------------------- versions

def registered_versions(case_op: str, device: str, precision: dict | None = None):
    """(versions, default) of the op behind a case on `device`, from the engine's registry
    (pyconvnet.ops.versions): a backward pass shares its op's numbers. `precision` (from
    bench_common.benchmark_precision) replaces the default of the ops it names (tf32: conv2d's and
    linear's TF32 versions; 0 keeps the registry's)."""
    op = case_op[:-len("_backward")] if case_op.endswith("_backward") else case_op
    return ops.versions(op, device), (precision or {}).get(op) or ops.default_version(op, device)


# ----------------------------------------------------------------------------- one case

class Bench:
    """The inputs and calls of one case, for pyconvnet and for PyTorch.

    make_host(rng) -> dict of NumPy arrays (the case's data); ours_set(host) -> tuple of pyconvnet
    Tensors (one rotation copy); ours(version) -> call(set); torch_set/torch_call likewise;
    ours_out/torch_out turn a call's result into a list of NumPy arrays for the check."""

    tf32 = False          # PyTorch's figure with TF32 allowed is also taken
    checkable = True
    torch_note = ""       # how PyTorch computes it, when not one obvious call
    needs = None          # what must exist in pyconvnet for the case (else it is skipped)

    def __init__(self, case: Case, ctx):
        self.c, self.ctx = case, ctx

    def ours_out(self, r):
        return [_np(t) for t in (r if isinstance(r, tuple) else (r,)) if t is not None and not isinstance(t, float)]

    def torch_out(self, r):
        return [t.detach().cpu().numpy() for t in (r if isinstance(r, (tuple, list)) else (r,))
                if t is not None and not isinstance(t, float)]


def _np(t):
    return t.numpy() if hasattr(t, "numpy") else np.asarray(t)


class Conv(Bench):
    tf32 = True

    def __init__(self, case, ctx):
        super().__init__(case, ctx)
        p = case.params
        self.s, self.p, self.g = p["stride"], p["padding"], p["groups"]
        self.needs = {"fwd": "conv2d", "bwd_data": "_C.conv2d_backward_data",
                      "bwd_filter": "_C.conv2d_backward_filter"}[case.pass_]

    def make_host(self, rng):
        sh = self.c.shapes
        h = dict(x=rng.standard_normal(sh["x"], dtype=np.float32),
                 w=(0.05 * rng.standard_normal(sh["w"], dtype=np.float32)),
                 b=rng.standard_normal(sh["w"][0], dtype=np.float32),
                 dy=rng.standard_normal(sh["y"], dtype=np.float32))
        return h

    def ours_set(self, h):
        T, d = pyconvnet.tensor, self.ctx.device
        if self.c.pass_ == "fwd":
            return (T(h["x"], d), T(h["w"], d), T(h["b"], d))
        if self.c.pass_ == "bwd_data":
            return (T(h["dy"], d), T(h["w"], d))
        return (T(h["dy"], d), T(h["x"], d))

    def ours(self, v):
        s, p, g, sh = (self.s,) * 2, (self.p,) * 2, self.g, self.c.shapes
        if self.c.pass_ == "fwd":
            return lambda a: ops.conv2d(a[0], a[1], a[2], s, p, g, version=v)
        if self.c.pass_ == "bwd_data":
            return lambda a: _C.conv2d_backward_data(a[0], a[1], list(sh["x"]), s, p, g, v)
        return lambda a: _C.conv2d_backward_filter(a[0], a[1], list(sh["w"]), s, p, g, v)

    def torch_set(self, h, shared):
        t = self.ctx.torch_tensor
        if self.c.pass_ == "fwd":
            return (t(h["x"]), t(h["w"]), t(h["b"]))
        # PyTorch's backward takes both x and w but reads only the one the pass needs: the other
        # is shared by all the copies.
        if self.c.pass_ == "bwd_data":
            return (t(h["dy"]), shared.setdefault("x", t(h["x"])), t(h["w"]))
        return (t(h["dy"]), t(h["x"]), shared.setdefault("w", t(h["w"])))

    def torch_call(self):
        torch, F = self.ctx.torch, self.ctx.F
        s, p, g, k = [self.s] * 2, [self.p] * 2, self.g, self.c.shapes["w"][0]
        bwd = torch.ops.aten.convolution_backward
        if self.c.pass_ == "fwd":
            return lambda a: F.conv2d(a[0], a[1], a[2], s, p, 1, g)
        if self.c.pass_ == "bwd_data":
            return lambda a: bwd(a[0], a[1], a[2], None, s, p, [1, 1], False, [0, 0], g, [True, False, False])[0]
        return lambda a: bwd(a[0], a[1], a[2], [k], s, p, [1, 1], False, [0, 0], g, [False, True, True])[1:]


class Linear(Bench):
    tf32 = True

    def __init__(self, case, ctx):
        super().__init__(case, ctx)
        self.needs = {"fwd": "linear", "bwd_data": "_C.linear_backward_data",
                      "bwd_filter": "_C.linear_backward_weight"}[case.pass_]
        if case.pass_ == "bwd_filter":
            self.torch_note = "dy^T x and dy.sum(0): two calls, as autograd makes them"

    make_host = Conv.make_host
    ours_set = Conv.ours_set  # the same operands: (x, w, b), (dy, w) or (dy, x)

    def ours(self, v):
        if self.c.pass_ == "fwd":
            return lambda a: ops.linear(a[0], a[1], a[2], version=v)
        if self.c.pass_ == "bwd_data":
            return lambda a: _C.linear_backward_data(a[0], a[1], v)
        return lambda a: _C.linear_backward_weight(a[0], a[1], v)

    def torch_set(self, h, shared):
        t = self.ctx.torch_tensor
        if self.c.pass_ == "fwd":
            return (t(h["x"]), t(h["w"]), t(h["b"]))
        if self.c.pass_ == "bwd_data":
            return (t(h["dy"]), t(h["w"]))
        return (t(h["dy"]), t(h["x"]))

    def torch_call(self):
        torch, F = self.ctx.torch, self.ctx.F
        if self.c.pass_ == "fwd":
            return lambda a: F.linear(a[0], a[1], a[2])
        if self.c.pass_ == "bwd_data":
            return lambda a: torch.mm(a[0], a[1])
        return lambda a: (torch.mm(a[0].t(), a[1]), a[0].sum(0))


class Relu(Bench):
    needs = "relu"

    def make_host(self, rng):
        sh = next(iter(self.c.shapes.values()))
        return dict(x=rng.standard_normal(sh, dtype=np.float32), dy=rng.standard_normal(sh, dtype=np.float32))

    def ours_set(self, h):
        T, d = pyconvnet.tensor, self.ctx.device
        if self.c.pass_ == "fwd":
            return (T(h["x"], d),)
        return (T(h["dy"], d), ops.relu(T(h["x"], d)))

    def ours(self, v):
        if self.c.pass_ == "fwd":
            return lambda a: ops.relu(a[0], version=v)
        return lambda a: ops.relu_backward(a[0], a[1], version=v)

    def torch_set(self, h, shared):
        t = self.ctx.torch_tensor
        if self.c.pass_ == "fwd":
            return (t(h["x"]),)
        return (t(h["dy"]), self.ctx.torch.relu(t(h["x"])))

    def torch_call(self):
        torch = self.ctx.torch
        if self.c.pass_ == "fwd":
            return lambda a: torch.relu(a[0])
        return lambda a: torch.ops.aten.threshold_backward(a[0], a[1], 0.0)


class Lrn(Bench):
    needs = "lrn"
    torch_note = "F.local_response_norm per column (a view of (2N, C/2, H, W)); backward by autograd"

    make_host = Relu.make_host

    def kw(self):
        return {k: self.c.params[k] for k in ("size", "alpha", "beta", "k", "groups")}

    def ours_set(self, h):
        T, d = pyconvnet.tensor, self.ctx.device
        if self.c.pass_ == "fwd":
            return (T(h["x"], d),)
        x = T(h["x"], d)
        return (T(h["dy"], d), x, ops.lrn(x, **self.kw()))

    def ours(self, v):
        kw = self.kw()
        if self.c.pass_ == "fwd":
            return lambda a: ops.lrn(a[0], version=v, **kw)
        return lambda a: ops.lrn_backward(a[0], a[1], a[2], version=v, **kw)

    def _torch_lrn(self, x):
        p = self.c.params
        n, c, hh, ww = x.shape
        g = p["groups"]
        y = self.ctx.F.local_response_norm(x.reshape(n * g, c // g, hh, ww), p["size"], p["alpha"], p["beta"], p["k"])
        return y.reshape(n, c, hh, ww)

    def torch_set(self, h, shared):
        t = self.ctx.torch_tensor
        if self.c.pass_ == "fwd":
            return (t(h["x"]),)
        x = t(h["x"]).requires_grad_()
        with self.ctx.torch.enable_grad():
            y = self._torch_lrn(x)
        return (t(h["dy"]), x, y)

    def torch_call(self):
        torch = self.ctx.torch
        if self.c.pass_ == "fwd":
            return lambda a: self._torch_lrn(a[0])
        return lambda a: torch.autograd.grad(a[2], a[1], a[0], retain_graph=True)[0]


class Pool(Bench):
    """The training passes: our forward writes y and the taps (uint8), our backward reads dy and
    the taps; PyTorch's forward writes y and its int64 indices, its backward reads dy and them."""
    needs = "max_pool2d"
    torch_note = "max_pool2d_with_indices and its backward from the int64 indices (ours: uint8 taps)"

    def make_host(self, rng):
        sh = self.c.shapes
        return dict(x=rng.standard_normal(sh["x"], dtype=np.float32), dy=rng.standard_normal(sh["y"], dtype=np.float32))

    def ours_set(self, h):
        T, d, p = pyconvnet.tensor, self.ctx.device, self.c.params
        x = T(h["x"], d)
        if self.c.pass_ == "fwd":
            return (x,)
        _, taps = ops.max_pool2d(x, p["kernel"], p["stride"], taps=True)
        return (T(h["dy"], d), taps, x.shape)

    def ours(self, v):
        k, s = self.c.params["kernel"], self.c.params["stride"]
        if self.c.pass_ == "fwd":
            return lambda a: ops.max_pool2d(a[0], k, s, version=v, taps=True)
        return lambda a: ops.max_pool2d_backward(a[0], a[1], a[2], k, s, version=v)

    def ours_out(self, r):
        return super().ours_out(r[0] if self.c.pass_ == "fwd" else r)  # y (taps and indices differ)

    def torch_set(self, h, shared):
        t, k, s = self.ctx.torch_tensor, self.c.params["kernel"], self.c.params["stride"]
        x = t(h["x"])
        if self.c.pass_ == "fwd":
            return (x,)
        _, idx = self.ctx.torch.ops.aten.max_pool2d_with_indices(x, [k, k], [s, s])
        return (t(h["dy"]), x, idx)

    def torch_call(self):
        torch = self.ctx.torch
        k, s = self.c.params["kernel"], self.c.params["stride"]
        if self.c.pass_ == "fwd":
            return lambda a: torch.ops.aten.max_pool2d_with_indices(a[0], [k, k], [s, s])
        return lambda a: torch.ops.aten.max_pool2d_with_indices_backward(a[0], a[1], [k, k], [s, s], [0, 0], [1, 1],
                                                                         False, a[2])

    def torch_out(self, r):
        return super().torch_out(r[0] if self.c.pass_ == "fwd" else r)


class Dropout(Bench):
    needs = "dropout"
    checkable = False  # different random numbers
    torch_note = "aten.native_dropout / native_dropout_backward"

    make_host = Relu.make_host

    def ours_set(self, h):
        T, d, p = pyconvnet.tensor, self.ctx.device, self.c.params["p"]
        if self.c.pass_ == "fwd":
            return (T(h["x"], d),)
        _, mask = ops.dropout(T(h["x"], d), p, 7)
        return (T(h["dy"], d), mask)

    def ours(self, v):
        p = self.c.params["p"]
        if self.c.pass_ == "fwd":
            return lambda a: ops.dropout(a[0], p, 12345, version=v)
        return lambda a: ops.dropout_backward(a[0], a[1], p, version=v)

    def torch_set(self, h, shared):
        t, p = self.ctx.torch_tensor, self.c.params["p"]
        if self.c.pass_ == "fwd":
            return (t(h["x"]),)
        _, mask = self.ctx.torch.ops.aten.native_dropout(t(h["x"]), p, True)
        return (t(h["dy"]), mask)

    def torch_call(self):
        torch, p = self.ctx.torch, self.c.params["p"]
        if self.c.pass_ == "fwd":
            return lambda a: torch.ops.aten.native_dropout(a[0], p, True)
        return lambda a: torch.ops.aten.native_dropout_backward(a[0], a[1], 1.0 / (1.0 - p))


class Softmax(Bench):
    needs = "softmax"

    def make_host(self, rng):
        return dict(x=3 * rng.standard_normal(self.c.shapes["x"], dtype=np.float32))

    def ours_set(self, h):
        return (pyconvnet.tensor(h["x"], self.ctx.device),)

    def ours(self, v):
        return lambda a: ops.softmax(a[0], version=v)

    def torch_set(self, h, shared):
        return (self.ctx.torch_tensor(h["x"]),)

    def torch_call(self):
        return lambda a: self.ctx.torch.softmax(a[0], 1)


class CrossEntropy(Bench):
    needs = "cross_entropy"
    torch_note = "F.cross_entropy + autograd.grad + loss.item() (ours returns the loss as a float too)"

    def make_host(self, rng):
        n, classes = self.c.shapes["logits"]
        return dict(x=3 * rng.standard_normal((n, classes), dtype=np.float32),
                    labels=rng.integers(0, classes, n).astype(np.int32))

    def ours_set(self, h):
        d = self.ctx.device
        return (pyconvnet.tensor(h["x"], d), pyconvnet.tensor(h["labels"], d))

    def ours(self, v):
        return lambda a: ops.cross_entropy(a[0], a[1], version=v)

    def torch_set(self, h, shared):
        return (self.ctx.torch_tensor(h["x"]), self.ctx.torch_tensor(h["labels"].astype(np.int64)))

    def torch_call(self):
        torch, F = self.ctx.torch, self.ctx.F

        def call(a):
            with torch.enable_grad():
                logits = a[0].detach().requires_grad_()
                loss = F.cross_entropy(logits, a[1])
                (g,) = torch.autograd.grad(loss, logits)
            return loss.item(), g
        return call

    def ours_out(self, r):
        return [np.array([r[0]], np.float32), _np(r[1])]

    def torch_out(self, r):
        return [np.array([r[0]], np.float32), r[1].cpu().numpy()]


class Sgd(Bench):
    needs = "sgd_update"
    LR, MOMENTUM, DECAY = 0.01, 0.9, 0.0005

    def __init__(self, case, ctx):
        super().__init__(case, ctx)
        self.torch_note = ("torch._fused_sgd_ (v = m v + dw + wd w; w -= lr v: the same traffic)"
                           if ctx.torch is not None and hasattr(ctx.torch, "_fused_sgd_") else "")

    def make_host(self, rng):
        sh = self.c.shapes["w"]
        return dict(w=rng.standard_normal(sh, dtype=np.float32), dw=rng.standard_normal(sh, dtype=np.float32))

    def ours_set(self, h):
        T, d = pyconvnet.tensor, self.ctx.device
        return (T(h["w"], d), T(h["dw"], d), pyconvnet.zeros(h["w"].shape, device=d))

    def ours(self, v):
        def call(a):
            ops.sgd_update(a[0], a[1], a[2], self.LR, self.MOMENTUM, self.DECAY, version=v)
            return a[0]
        return call

    def torch_set(self, h, shared):
        t = self.ctx.torch_tensor
        return (t(h["w"]), t(h["dw"]), self.ctx.torch.zeros(h["w"].shape, device=self.ctx.torch_device))

    def torch_call(self):
        torch = self.ctx.torch
        lr, m, wd = self.LR, self.MOMENTUM, self.DECAY
        if hasattr(torch, "_fused_sgd_"):
            def call(a):
                torch._fused_sgd_([a[0]], [a[1]], [a[2]], weight_decay=wd, momentum=m, lr=lr, dampening=0.0,
                                  nesterov=False, maximize=False, is_first_step=False)
                return a[0]
        else:
            self.torch_note = "v.mul_(m).add_(w, -wd lr).add_(dw, -lr); w.add_(v): four kernels"

            def call(a):
                a[2].mul_(m).add_(a[0], alpha=-wd * lr).add_(a[1], alpha=-lr)
                a[0].add_(a[2])
                return a[0]
        return call
    # The check compares w after one update from v = 0 on fresh copies (both conventions give
    # w - lr (dw + wd w) then): see check_case.


class Augment(Bench):
    needs = "augment"
    checkable = False
    torch_note = "no single PyTorch op: not compared"

    def make_host(self, rng):
        n, s, _, _ = self.c.shapes["images"]
        crop = self.c.shapes["y"][-1]
        return dict(images=rng.integers(0, 256, (n, s, s, 3), dtype=np.uint8),
                    mean=rng.uniform(0, 255, (s, s, 3)).astype(np.float32),
                    offsets=rng.integers(0, s - crop + 1, (n, 2)).astype(np.int32),
                    flips=rng.integers(0, 2, n).astype(np.int32),
                    lighting=rng.standard_normal((n, 3), dtype=np.float32))

    def ours_set(self, h):
        d = self.ctx.device
        # offsets, flips and lighting are per-batch draws made on the host: passed as NumPy.
        return (pyconvnet.tensor(h["images"], d), pyconvnet.tensor(h["mean"], d), h["offsets"], h["flips"],
                h["lighting"])

    def ours(self, v):
        crop = self.c.shapes["y"][-1]
        return lambda a: ops.augment(a[0], a[1], a[2], a[3], a[4], crop=crop, version=v)


BENCHES = {"conv2d": Conv, "linear": Linear, "relu": Relu, "relu_backward": Relu, "lrn": Lrn,
           "lrn_backward": Lrn, "max_pool2d": Pool, "max_pool2d_backward": Pool, "dropout": Dropout,
           "dropout_backward": Dropout, "softmax": Softmax, "cross_entropy": CrossEntropy,
           "sgd_update": Sgd, "augment": Augment}


def available(need: str) -> bool:
    if need.startswith("_C."):
        return hasattr(_C, need[3:])
    return hasattr(ops, need)


# ----------------------------------------------------------------------------- context

class Context:
    def __init__(self, device, torch, machine, args):
        self.device, self.torch, self.machine, self.args = device, torch, machine, args
        self.precision = getattr(args, "precision_versions", None)  # the --precision defaults
        self.on_cuda = device.startswith("cuda")
        self.index = int(device.split(":")[1]) if ":" in device else 0
        if torch is not None:
            import torch.nn.functional as F
            self.F = F
            self.torch_device = torch.device(device)
        else:
            self.F = self.torch_device = None

    def torch_tensor(self, a):
        # Always a copy: on the CPU .to() would return the array's own memory, so every rotation
        # copy would be one buffer (and in-place ops would write into the host data).
        return self.torch.from_numpy(np.ascontiguousarray(a)).to(self.torch_device, copy=True)

    def sync_ours(self):
        if self.on_cuda:
            pyconvnet.cuda.synchronize(self.index)

    def sync_torch(self):
        if self.on_cuda:
            self.torch.cuda.synchronize(self.index)

    def torch_events(self):
        if not self.on_cuda:
            return None
        E = self.torch.cuda.Event
        return lambda: (E(enable_timing=True), E(enable_timing=True))

    def set_tf32(self, on: bool):
        if self.torch is not None and self.on_cuda:
            common.set_torch_tf32(self.torch, on)

    def free(self):
        gc.collect()
        if self.on_cuda:
            pyconvnet.cuda.synchronize(self.index)
            pyconvnet.cuda.empty_cache(self.index)
            if self.torch is not None:
                self.torch.cuda.synchronize(self.index)
                self.torch.cuda.empty_cache()


# ----------------------------------------------------------------------------- measuring

def set_bytes(s) -> int:
    return sum(int(t.nbytes) for t in s if hasattr(t, "nbytes"))


def rate(case: Case, seconds: float, machine) -> tuple[float, str, float]:
    """(rate, unit, % of the bounding peak) of a case done in `seconds`."""
    t_flops, t_bytes = case.flops / machine.flops, case.bytes / machine.bandwidth
    if t_flops >= t_bytes:
        return case.flops / seconds / 1e9, "GFLOP/s", 100 * t_flops / seconds
    return case.bytes / seconds / 1e9, "GB/s", 100 * t_bytes / seconds


def bound(case: Case, machine) -> str:
    return "F" if case.flops / machine.flops >= case.bytes / machine.bandwidth else "B"


def compare(ours: list, theirs: list) -> float:
    """max |a - b| / max |b| over the outputs (in float32: an error estimate against 1e-3 needs no
    more, and outputs of 10^8 elements stay quick)."""
    err = 0.0
    if len(ours) != len(theirs):
        return math.inf
    for a, b in zip(ours, theirs):
        a, b = np.asarray(a, np.float32).reshape(-1), np.asarray(b, np.float32).reshape(-1)
        if a.shape != b.shape:
            return math.inf
        scale = max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-30)
        if a.size:
            err = max(err, float(np.max(np.abs(a - b))) / scale)
    return err


def run_case(case: Case, ctx: Context, rng) -> dict:
    """Times every kernel version of one case and PyTorch's equivalent; returns the JSON record."""
    bench = BENCHES[case.op](case, ctx)
    rec = dict(key=case.key, layer=case.layer, op=case.op, pass_=case.pass_, shapes=case.shapes,
               params=case.params, flops=case.flops, bytes=case.bytes, bound=bound(case, ctx.machine),
               floor_ms=1e3 * max(case.flops / ctx.machine.flops, case.bytes / ctx.machine.bandwidth),
               in_training_step=case.in_training_step, describe=case.describe(), results=[], torch=None,
               note="")
    if bench.needs and not available(bench.needs):
        rec["note"] = f"skipped: pyconvnet has no {bench.needs} in this build"
        return rec
    a = ctx.args
    target, budget, max_reps = a.target_ms / 1e3, a.budget_s, 9
    host = bench.make_host(rng)

    # PyTorch first: its outputs on copy 0 are the check's reference for every version of ours.
    # On the CPU its repetitions are taken later, alternating with our default version's
    # (bench_common.time_alternating), its copies kept meanwhile; on the GPU it is timed now.
    ref, torch_timer = None, None
    alternate = not ctx.on_cuda
    if ctx.torch is not None and hasattr(bench, "torch_set"):
        try:
            ref, rec["torch"], torch_timer = time_torch(bench, case, host, ctx, target, budget, max_reps, alternate)
        except Exception as e:  # PyTorch's side failing must not cost pyconvnet's figures
            rec["torch_error"] = f"{type(e).__name__}: {e}"
        if torch_timer is None:
            ctx.free()

    # pyconvnet: every version.
    first = bench.ours_set(host)
    k = rotation_k(first, ctx)
    rec["rotation_copies"] = k
    sets = [first] + [bench.ours_set(host) for _ in range(k - 1)]
    versions, default = registered_versions(case.op, ctx.device, ctx.precision)
    if a.versions == "default":
        versions = [default]
    rec["default_version"] = default
    for v in versions:
        call = bench.ours(v)
        err = None
        try:
            if bench.checkable and ref is not None:
                if case.op == "sgd_update":
                    err = compare(bench.ours_out(call(bench.ours_set(host))), ref)
                else:
                    err = compare(bench.ours_out(call(sets[0])), ref)
            if torch_timer is not None and v == default:
                ours_timer = common.Timer(call, sets, ctx.sync_ours, target, budget, max_reps)
                with ctx.torch.no_grad():
                    tt, tm = common.time_alternating([torch_timer, ours_timer])
                rec["torch"].update(timing_record(tt))
                torch_timer = None  # its copies go with it
            else:
                tm = common.time_calls(call, sets, ctx.sync_ours, target, budget, max_reps)
        except Exception as e:  # a failing kernel version is reported, and the run goes on
            rec["results"].append(dict(version=v, error=f"{type(e).__name__}: {e}"))
            continue
        rec["results"].append(dict(version=v, default=v == default, ms=tm.median_s * 1e3,
                                   min_ms=tm.min_s * 1e3, calls_per_rep=tm.calls_per_rep, reps=tm.reps, check=err))
    if torch_timer is not None:  # our default version failed: PyTorch timed alone
        with ctx.torch.no_grad():
            rec["torch"].update(timing_record(common.time_alternating([torch_timer])[0]))
        rec["torch"]["alternated"] = False
    torch_timer = None
    sets = first = None  # drop the copies before freeing the device's cache
    ctx.free()
    return rec


def timing_record(tm) -> dict:
    return dict(ms=tm.median_s * 1e3, min_ms=tm.min_s * 1e3, calls_per_rep=tm.calls_per_rep, reps=tm.reps,
                event_ms=None if tm.event_median_s is None else tm.event_median_s * 1e3)


def time_torch(bench, case, host, ctx, target, budget, max_reps, alternate=False):
    """(reference outputs or None, the JSON record, None) of PyTorch's computation of the case;
    with `alternate`, the record without the timing and the case's Timer, warmed up, whose
    repetitions the caller takes (alternating them with ours)."""
    torch = ctx.torch
    ctx.set_tf32(False)
    shared = {}
    ref = None
    with torch.no_grad():
        first = bench.torch_set(host, shared)
        k = rotation_k(first, ctx)
        sets = [first] + [bench.torch_set(host, shared) for _ in range(k - 1)]
        call = bench.torch_call()
        if bench.checkable:
            # sgd_update works in place: compare one update of fresh copies (v = 0).
            ref = bench.torch_out(call(bench.torch_set(host, {}) if case.op == "sgd_update" else sets[0]))
        if alternate:
            timer = common.Timer(call, sets, ctx.sync_torch, target, budget, max_reps, events=ctx.torch_events())
            return ref, dict(note=bench.torch_note, alternated=True), timer
        tm = common.time_calls(call, sets, ctx.sync_torch, target, budget, max_reps, events=ctx.torch_events())
        tr = dict(timing_record(tm), note=bench.torch_note)
        if bench.tf32 and ctx.on_cuda:
            ctx.set_tf32(True)
            try:
                t2 = common.time_calls(call, sets, ctx.sync_torch, target, budget, max_reps, events=ctx.torch_events())
            finally:
                ctx.set_tf32(False)
            tr["tf32_ms"] = t2.median_s * 1e3
    return ref, tr, None


def rotation_k(first, ctx) -> int:
    cap = (2 << 30) if ctx.on_cuda else (1 << 30)
    return common.rotation_count(set_bytes(first), ctx.machine.cache_bytes, cap)


# ----------------------------------------------------------------------------- printing

def fmt_line(rec: dict, res: dict, machine) -> str:
    case = Case(rec["key"], rec["layer"], rec["op"], rec["pass_"], rec["shapes"], rec["flops"], rec["bytes"], rec["params"])
    v = res["version"]
    tag = f"v{v}" + ("*" if res.get("default") and v != 0 else "")
    head = f"{rec['key']:<18} {tag:<4} {rec['describe']:<46}"
    if "error" in res:
        return f"{head} | ours FAILED: {res['error']}"
    r, unit, pct = rate(case, res["ms"] / 1e3, machine)
    line = f"{head} | ours {res['ms']:9.3f} ms {r:9.1f} {unit:<7} {pct:5.1f}% {bound(case, machine)}"
    t = rec.get("torch")
    if t:
        tr, tunit, _ = rate(case, t["ms"] / 1e3, machine)
        line += f" | torch {t['ms']:9.3f} ms {tr:9.1f} {tunit:<7} | ours/torch {t['ms'] / res['ms']:6.2f}x"
        line += f" | tf32 {t['tf32_ms']:9.3f} ms" if t.get("tf32_ms") is not None else " | tf32         -   "
    else:
        line += " | torch -"
    chk = res.get("check")
    line += " | check " + ("-" if chk is None else f"{chk:.1e}" + (" BAD" if chk > CHECK_TOL else ""))
    return line


def summary(records: list, machine, has_torch: bool, precision: str = "fp32") -> list[str]:
    """A Markdown table: per case the default version and the fastest one, against PyTorch (with
    TF32 allowed where it has a TF32 time, at --precision tf32)."""
    out = ["| case | shape | floor ms | default: ms | % peak | fastest: version, ms | torch ms | tf32 ms | ours/torch (default) |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    tot_ours = tot_torch = tot_floor = tot_ours_cmp = 0.0
    without_torch = 0
    for rec in records:
        ok = [r for r in rec["results"] if "ms" in r]
        if not ok:
            out.append(f"| {rec['key']} | {rec['describe']} | {rec['floor_ms']:.3f} | {rec['note'] or 'failed'} | | | | | |")
            continue
        d = next((r for r in ok if r.get("default")), ok[0])
        best = min(ok, key=lambda r: r["ms"])
        case = Case(rec["key"], rec["layer"], rec["op"], rec["pass_"], rec["shapes"], rec["flops"], rec["bytes"], rec["params"])
        _, unit, pct = rate(case, d["ms"] / 1e3, machine)
        t = rec.get("torch")
        tms = f"{t['ms']:.3f}" if t else "-"
        tf = f"{t['tf32_ms']:.3f}" if t and t.get("tf32_ms") is not None else "-"
        t_ms = t and (t["tf32_ms"] if precision == "tf32" and t.get("tf32_ms") is not None else t["ms"])
        ratio = f"{t_ms / d['ms']:.2f}x" if t else "-"
        out.append(f"| {rec['key']} | {rec['describe']} | {rec['floor_ms']:.3f} | {d['ms']:.3f} | "
                   f"{pct:.1f}% {'F' if unit == 'GFLOP/s' else 'B'} | v{best['version']} {best['ms']:.3f} | {tms} | {tf} | {ratio} |")
        if rec["in_training_step"]:
            tot_ours += d["ms"]
            tot_floor += rec["floor_ms"]
            if t:
                tot_torch += t_ms
                tot_ours_cmp += d["ms"]
            else:
                without_torch += 1
    ratio = f"{tot_torch / tot_ours_cmp:.2f}x" if has_torch and tot_ours_cmp else "-"
    if has_torch and without_torch:
        ratio += f" (over the {sum(1 for r in records if r['in_training_step'] and r.get('torch'))} passes with a torch time)"
    out.append(f"| **sum over one training step's passes** | | {tot_floor:.3f} | {tot_ours:.3f} | "
               f"{100 * tot_floor / tot_ours if tot_ours else 0:.1f}% of floor | | "
               f"{f'{tot_torch:.3f}' if has_torch and tot_torch else '-'} | | {ratio} |")
    return out


# ----------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if usable, else cpu)")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default 128 on CUDA, 8 on the CPU)")
    ap.add_argument("--only", default=None, help="regular expression on case keys (e.g. 'conv|fc')")
    ap.add_argument("--versions", choices=("all", "default"), default="all", help="kernel versions to time")
    ap.add_argument("--precision", default="fp32",
                    help="fp32 (default) or tf32: the convolutions' and fully-connected layers' default is then their "
                         "TF32 tensor-core version, compared with PyTorch with TF32 allowed (CUDA only)")
    ap.add_argument("--no-torch", action="store_true", help="do not compare with PyTorch")
    ap.add_argument("--json", default=None, help="write the results to this file")
    ap.add_argument("--target-ms", type=float, default=None,
                    help="wall time of one repetition (default 10 ms on CUDA, 20 ms on the CPU)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="time per case and version, at which repetitions are cut to 3 (default 0.6 s on CUDA, 1 s on the CPU)")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="seconds after which no new case is started (the tables and JSON are still written)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    device = common.benchmark_device(a.device, "bench_kernels")
    a.precision_versions = common.benchmark_precision(a.precision, device, "bench_kernels")
    on_cuda = device.startswith("cuda")
    batch = a.batch or (128 if on_cuda else 8)
    a.target_ms = a.target_ms or (10.0 if on_cuda else 20.0)
    a.budget_s = a.budget_s or (0.6 if on_cuda else 1.0)

    torch, torch_note = (None, "PyTorch comparison switched off (--no-torch)") if a.no_torch else common.load_torch(device)
    if torch is not None and on_cuda:
        torch.backends.cudnn.benchmark = True  # cuDNN times its algorithms and keeps the fastest
    machine = common.machine_for(device, torch)

    print(f"# pyconvnet kernel benchmark: AlexNet layer shapes, batch {batch}, precision {a.precision}"
          + (" (default of conv2d and linear: their TF32 versions; ours/torch against torch with TF32)"
             if a.precision == "tf32" else ""))
    print(f"# date: {common.now_utc()}   commit: {common.commit()}")
    print(f"# {common.versions_line(torch)}")
    for line in machine.header():
        print(f"# {line}")
    if torch is None:
        print(f"# note: {torch_note}")
    elif on_cuda:
        print("# torch: cuDNN/cuBLAS, cudnn.benchmark=True (algorithm search in warm-up), TF32 OFF for the float32 "
              "comparison; the tf32 column has TF32 allowed")
    else:
        print(f"# torch: its CPU kernels, {torch.get_num_threads()} threads")
    print(f"# timing: median wall-clock per call over repetitions of back-to-back calls on inputs rotated through "
          f"copies totalling >= 3x the {machine.cache_bytes >> 20} MiB last-level cache, device synchronised "
          f"(pyconvnet.cuda.synchronize / torch.cuda.synchronize) — the same method for both libraries (bench_common.py)"
          + ("; PyTorch's repetitions alternate with those of our default version, so that the machine's drift "
             "cancels in their ratio" if not on_cuda and torch is not None else ""))
    print("# columns: case, kernel version (* = default), shapes | ours: ms, rate, % of peak (F: FP32 FLOP/s, B: memory "
          "bandwidth) | torch ms, rate | ours/torch = speed ratio (>1: pyconvnet faster) | torch with TF32 | check")
    sys.stdout.flush()

    cases = alexnet_cases(batch)
    if hasattr(ops, "augment"):
        cases.append(augment_case(batch))
    else:
        print("# note: pyconvnet.ops.augment (the data pipeline's device augmentation) is not in this build: not timed")
    if a.only:
        cases = [c for c in cases if re.search(a.only, c.key)]
    ctx = Context(device, torch, machine, a)
    rng = np.random.default_rng(a.seed)
    records = []
    t_start = time.perf_counter()
    skipped = []
    for case in cases:
        if a.time_limit is not None and time.perf_counter() - t_start > a.time_limit:
            skipped.append(case.key)
            continue
        t_case = time.perf_counter()
        try:
            rec = run_case(case, ctx, rng)
        except Exception as e:  # one case failing (out of memory, a device fault) is reported; the run goes on
            rec = dict(key=case.key, layer=case.layer, op=case.op, pass_=case.pass_, shapes=case.shapes,
                       params=case.params, flops=case.flops, bytes=case.bytes, bound=bound(case, machine),
                       floor_ms=1e3 * max(case.flops / machine.flops, case.bytes / machine.bandwidth),
                       in_training_step=case.in_training_step, describe=case.describe(), torch=None,
                       results=[dict(version=-1, error=f"{type(e).__name__}: {e}")], note="")
            try:
                ctx.free()
            except Exception:  # a device in an error state: the next cases will say so
                pass
        rec["bench_s"] = time.perf_counter() - t_case
        records.append(rec)
        if rec["note"]:
            print(f"{case.key:<18} {'':<4} {case.describe():<46} | {rec['note']}")
        if rec.get("torch_error"):
            print(f"{case.key:<18} {'':<4} {case.describe():<46} | torch FAILED: {rec['torch_error']}")
        for res in rec["results"]:
            print(fmt_line(rec, res, machine))
        sys.stdout.flush()
    elapsed = time.perf_counter() - t_start

    print()
    print(f"## Summary: {machine.name}, batch {batch}, {common.now_utc()}, commit {common.commit()}")
    print()
    for line in summary(records, machine, torch is not None, a.precision):
        print(line)
    print()
    print(f"# {len(records)} cases in {elapsed:.0f} s; at the end, {common.load_line()}")
    if skipped:
        print(f"# TIME LIMIT ({a.time_limit:g} s) reached: {len(skipped)} cases not run: {' '.join(skipped)}")
    bad = [(r["key"], x["version"]) for r in records for x in r["results"] if x.get("check") is not None and x["check"] > CHECK_TOL]
    failed = [(r["key"], x["version"]) for r in records for x in r["results"] if "error" in x]
    if bad:
        print(f"# CHECK FAILED (ours differs from PyTorch by more than {CHECK_TOL:g} of the output's scale): {bad}")
    if failed:
        print(f"# KERNELS FAILED: {failed}")

    if a.json:
        common.write_json(a.json, dict(
            kind="pyconvnet-kernel-benchmark", date=common.now_utc(), commit=common.commit(),
            versions=common.versions_line(torch), device=device, batch=batch, precision=a.precision, machine=machine,
            torch=None if torch is None else torch.__version__, torch_note=torch_note,
            timing="median wall-clock per call, back-to-back calls on rotated inputs (>= 3x LLC), device synchronised",
            elapsed_s=elapsed, load_at_end=common.load_line(), not_run=skipped, cases=records))
        print(f"# JSON written to {a.json}")
    return 1 if bad or failed else 0


if __name__ == "__main__":
    sys.exit(main())
