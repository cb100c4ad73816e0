#!/usr/bin/env python3
"""Images per second of a full AlexNet training step (forward, loss, backward, SGD update):
pyconvnet, the same two-column network in PyTorch at the same batch and precision, and pyconvnet
fed by its data loader with device augmentation.

    python benchmarks/bench_e2e.py                         # CUDA if available (batch 128), else CPU (batch 8)
    python benchmarks/bench_e2e.py --device cpu --batch 8 --steps 5 --json e2e.json

One line per run:

    pyconvnet  synthetic input             batch 128   41.20 ms/step   3107 img/s   mfu 20.3%
    torch      float32 (TF32 off)          batch 128   30.10 ms/step   4252 img/s   mfu 27.8% | pyconvnet/torch 0.73x
    torch      TF32 on                     ...
    pyconvnet  loader + device augmentation  ...                                             | vs synthetic 0.98x; waited 0.4%

The step: pyconvnet.models.loss_and_grad (forward in training mode, fused softmax cross-entropy,
backward) then ops.sgd_update on every parameter (lr 0.01, momentum 0.9, weight decay 0.0005);
PyTorch: nn.Sequential of the same layers with the same initial weights, F.cross_entropy,
loss.backward(), optim.SGD (fused where PyTorch has it). Both read the loss back as a Python float
every step (pyconvnet's cross_entropy returns it so; PyTorch: loss.item()), which synchronises the
device, so the wall time of each step is the step's time. Warm-up steps first (cuDNN's algorithm
search, allocator pools); images/s = batch x timed steps / their total wall time; ms/step is the
median step. On the CPU PyTorch's steps alternate with pyconvnet's (a machine whose speed drifts
then slows both alike); on the GPU each is timed in turn. mfu = the step's FLOPs (benchmarks/alexnet_shapes.py, ~4.2 GFLOP per image) / time / FP32 peak.

The loader run reads a generated dataset of random 256x256 JPEG-prepared images (made once in
$TMPDIR, about 200 KB per image) through pyconvnet.loader.Loader: pread into pinned staging
buffers on a background thread, asynchronous copy to the device, random crop + reflection + PCA
lighting on the device (ops.augment). The ratio against synthetic input shows what the data path
costs the step; "waited" is the share of the time the loop waited for a batch.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import bench_common as common
from bench_common import pyconvnet
from alexnet_shapes import training_step_totals

from pyconvnet import models, ops

LR, MOMENTUM, DECAY = 0.01, 0.9, 0.0005


# ----------------------------------------------------------------------------- pyconvnet

class PyconvnetStep:
    def __init__(self, device: str, seed: int = 0, versions: dict | None = None):
        self.device = device
        self.model = models.alexnet(num_classes=1000, input_size=224, width=1.0, seed=seed, init="paper").to(device)
        self.model.set_versions(versions or {})
        self.velocity = {key: pyconvnet.zeros(tuple(layer.params[p].shape), device=device)
                         for key, layer, p in self.model.parameters()}
        self.step_index = 0

    def __call__(self, x, labels) -> float:
        self.model.set_dropout_seed(self.step_index)
        self.step_index += 1
        loss, _ = models.loss_and_grad(self.model, x, labels)
        for key, layer, p in self.model.parameters():
            ops.sgd_update(layer.params[p], layer.grads[p], self.velocity[key], LR, MOMENTUM, DECAY)
        return loss


# ----------------------------------------------------------------------------- PyTorch

def torch_alexnet(torch, state: dict, device):
    """The same two-column AlexNet in PyTorch, with pyconvnet's initial weights (`state`)."""
    nn, F = torch.nn, torch.nn.functional

    class GroupLRN(nn.Module):
        """LRN within each column: PyTorch's LocalResponseNorm on a (2N, C/2, H, W) view."""

        def forward(self, x):
            n, c, h, w = x.shape
            return F.local_response_norm(x.reshape(n * 2, c // 2, h, w), 5, 1e-4, 0.75, 2.0).reshape(n, c, h, w)

    layers = dict(
        conv1=nn.Conv2d(3, 96, 11, 4, 2), relu1=nn.ReLU(), lrn1=GroupLRN(), pool1=nn.MaxPool2d(3, 2),
        conv2=nn.Conv2d(96, 256, 5, 1, 2, groups=2), relu2=nn.ReLU(), lrn2=GroupLRN(), pool2=nn.MaxPool2d(3, 2),
        conv3=nn.Conv2d(256, 384, 3, 1, 1), relu3=nn.ReLU(),
        conv4=nn.Conv2d(384, 384, 3, 1, 1, groups=2), relu4=nn.ReLU(),
        conv5=nn.Conv2d(384, 256, 3, 1, 1, groups=2), relu5=nn.ReLU(), pool5=nn.MaxPool2d(3, 2),
        flatten=nn.Flatten(),
        fc6=nn.Linear(9216, 4096), relu6=nn.ReLU(), drop6=nn.Dropout(0.5),
        fc7=nn.Linear(4096, 4096), relu7=nn.ReLU(), drop7=nn.Dropout(0.5),
        fc8=nn.Linear(4096, 1000))
    net = nn.Sequential(*layers.values())
    names = {id(m): n for n, m in layers.items()}
    with torch.no_grad():
        for m in net:
            for pname, p in m.named_parameters():
                p.copy_(torch.from_numpy(state[f"{names[id(m)]}.{pname}"]))
    return net.to(device).train()


class TorchStep:
    def __init__(self, torch, state, device):
        self.torch = torch
        self.net = torch_alexnet(torch, state, device)
        params = list(self.net.parameters())
        try:
            self.opt = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM, weight_decay=DECAY, fused=True)
            self.opt_kind = "fused SGD"
        except (RuntimeError, TypeError, ValueError):
            self.opt = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM, weight_decay=DECAY)
            self.opt_kind = "SGD (default implementation)"

    def __call__(self, x, labels) -> float:
        self.opt.zero_grad(set_to_none=True)
        loss = self.torch.nn.functional.cross_entropy(self.net(x), labels)
        loss.backward()
        self.opt.step()
        return loss.item()


# ----------------------------------------------------------------------------- timing

def time_steps(step, batches, warmup: int, steps: int) -> dict:
    """Runs `warmup` then `steps` steps on the batches produced by `batches()` (an iterator of
    (x, labels)); every step ends with the loss on the host, so its wall time is its cost."""
    return time_steps_alternating([(step, batches)], warmup, steps)[0]


def time_steps_alternating(runs, warmup: int, steps: int) -> list:
    """time_steps for several (step, batches) pairs with their steps taken in turn (step 1 of each,
    then step 2 of each, ...): on a CPU whose speed drifts with other tenants' load, the drift then
    slows each alike instead of entering their ratio. Returns their dicts, in order; a run's
    total_s is the sum of its own steps' times."""
    its = [batches() for _, batches in runs]
    try:
        for (step, _), it in zip(runs, its):
            for _ in range(warmup):
                step(*next(it))
        times = [[] for _ in runs]
        losses = [None] * len(runs)
        for _ in range(steps):
            for k, ((step, _), it) in enumerate(zip(runs, its)):
                t0 = time.perf_counter()
                losses[k] = step(*next(it))
                times[k].append(time.perf_counter() - t0)
    finally:
        for it in its:
            it.close()  # a loader's epoch stops its producer thread here
    return [dict(step_ms_median=1e3 * statistics.median(t), step_ms_min=1e3 * min(t), total_s=sum(t),
                 steps=steps, warmup=warmup, last_loss=float(loss), alternated=len(runs) > 1)
            for t, loss in zip(times, losses)]


def repeat(x, labels):
    def gen():
        while True:
            yield x, labels
    return gen


# ----------------------------------------------------------------------------- loader


def loader_batches(loader):
    def gen():
        epoch = 0
        while True:
            for b in loader.epoch(epoch):
                yield b.inputs, b.labels
            epoch += 1
    return gen


# ----------------------------------------------------------------------------- main

def line(name, what, batch, r, flops, peak, extra=""):
    ips = batch * r["steps"] / r["total_s"]
    r["images_per_s"] = ips
    r["mfu"] = flops / (r["total_s"] / r["steps"]) / peak
    return (f"{name:<10} {what:<32} batch {batch:<4} {r['step_ms_median']:9.2f} ms/step {ips:9.1f} img/s "
            f"  mfu {100 * r['mfu']:5.1f}%" + (f" | {extra}" if extra else ""))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if usable, else cpu)")
    ap.add_argument("--batch", type=int, default=None, help="default 128 on CUDA, 8 on the CPU")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 20 on CUDA, 5 on the CPU)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 5 on CUDA, 2 on the CPU)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-loader", action="store_true", help="skip the run with the data loader")
    ap.add_argument("--json", default=None)
    ap.add_argument("--precision", default="fp32",
                    help="fp32 (default) or tf32: pyconvnet's convolutions and fully-connected layers on TF32 "
                         "tensor cores, as python -m pyconvnet.train --precision tf32 (CUDA only)")
    a = ap.parse_args(argv)

    device = common.benchmark_device(a.device, "bench_e2e")
    versions = common.benchmark_precision(a.precision, device, "bench_e2e")
    on_cuda = device.startswith("cuda")
    batch = a.batch or (128 if on_cuda else 8)
    steps = a.steps or (20 if on_cuda else 5)
    warmup = a.warmup if a.warmup is not None else (5 if on_cuda else 2)
    torch, torch_note = (None, "PyTorch comparison switched off (--no-torch)") if a.no_torch else common.load_torch(device)
    machine = common.machine_for(device, torch)
    flops, _ = training_step_totals(batch)

    print(f"# pyconvnet end-to-end benchmark: AlexNet training step (forward, loss, backward, SGD update), batch {batch}, "
          + ("float32" if a.precision == "fp32" else "float32 data, pyconvnet's conv2d and linear on TF32 tensor cores "
             f"(versions {versions['conv2d']} and {versions['linear']})"))
    print(f"# date: {common.now_utc()}   commit: {common.commit()}")
    print(f"# {common.versions_line(torch)}")
    for hl in machine.header():
        print(f"# {hl}")
    print(f"# step FLOPs: {flops / 1e9:.1f} GFLOP ({flops / batch / 1e9:.2f} per image; benchmarks/alexnet_shapes.py); "
          f"floor at FP32 peak: {1e3 * flops / machine.flops:.2f} ms/step")
    print(f"# timing: {warmup} warm-up steps, then {steps} timed steps; every step reads its loss on the host "
          "(device synchronised); img/s = batch x steps / total time, ms/step = median step"
          + ("; PyTorch's steps alternate with pyconvnet's" if torch is not None and not on_cuda else ""))
    sys.stdout.flush()

    rng = np.random.default_rng(0)
    x_host = rng.standard_normal((batch, 3, 224, 224), dtype=np.float32)
    labels_host = rng.integers(0, 1000, batch).astype(np.int32)
    results = {}

    ours = PyconvnetStep(device, versions=versions)
    state = ours.model.state_dict()  # the initial weights, for PyTorch
    x, labels = pyconvnet.tensor(x_host, device), pyconvnet.tensor(labels_host, device)
    torch_runs = {}  # key -> (what, its result): PyTorch's lines, printed after ours
    if torch is not None and not on_cuda:
        # The CPU: PyTorch's steps alternate with ours (time_steps_alternating).
        tx = torch.from_numpy(x_host).to(torch.device(device), copy=True)
        tl = torch.from_numpy(labels_host.astype(np.int64)).to(torch.device(device))
        step = TorchStep(torch, state, torch.device(device))
        r, rt = time_steps_alternating([(ours, repeat(x, labels)), (step, repeat(tx, tl))], warmup, steps)
        rt["optimizer"] = step.opt_kind
        torch_runs["torch"] = ("float32 (TF32 off)", rt)
        del step, tx, tl
    else:
        r = time_steps(ours, repeat(x, labels), warmup, steps)
    print(line("pyconvnet", "synthetic input" + (", TF32" if a.precision == "tf32" else ""), batch, r, flops,
               machine.flops))
    results["pyconvnet"] = r
    sys.stdout.flush()
    del x, labels

    if torch is not None:
        if on_cuda:
            torch.backends.cudnn.benchmark = True
            tdev = torch.device(device)
            tx = torch.from_numpy(x_host).to(tdev, copy=True)
            tl = torch.from_numpy(labels_host.astype(np.int64)).to(tdev)
            for what, tf32 in [("float32 (TF32 off)", False), ("TF32 on", True)]:
                common.set_torch_tf32(torch, tf32)
                step = TorchStep(torch, state, tdev)
                rt = time_steps(step, repeat(tx, tl), warmup, steps)
                rt["optimizer"] = step.opt_kind
                torch_runs["torch_tf32" if tf32 else "torch"] = (what, rt)
                del step
            common.set_torch_tf32(torch, False)
            del tx, tl
            torch.cuda.empty_cache()
        for key, (what, rt) in torch_runs.items():
            # Speed ratio: the same number of steps, so torch's time over ours.
            extra = f"pyconvnet/torch {rt['total_s'] / results['pyconvnet']['total_s']:.2f}x ({rt['optimizer']})"
            print(line("torch", what, batch, rt, flops, machine.flops, extra))
            results[key] = rt
            sys.stdout.flush()
    else:
        print(f"# note: {torch_note}")

    if a.no_loader:
        print("# note: loader run skipped (--no-loader)")
    else:
        try:
            from pyconvnet.loader import Loader
        except ImportError as e:
            Loader = None
            print(f"# note: pyconvnet.loader is not in this build ({e}): the loader run is skipped")
        if Loader is not None:
            count = max(4 * batch, 256)
            data = common.sample_dataset(count)
            with Loader(data, "train", batch, device=device, seed=1) as loader:
                # One epoch first: page cache, staging slots, device pools.
                for _ in loader.epoch(0):
                    pass
                loader.wait_seconds = 0.0
                r = time_steps(ours, loader_batches(loader), warmup, steps)
                r["wait_s"] = loader.wait_seconds
                r["dataset"] = f"{count} generated images, prepared at 256x256, crop 224, transform 'train'"
            base = results["pyconvnet"]["total_s"]
            print(line("pyconvnet", "loader + device augmentation", batch, r, flops, machine.flops,
                       f"vs synthetic {base / r['total_s']:.2f}x; waited for data {100 * r['wait_s'] / r['total_s']:.1f}% of the time"))
            results["pyconvnet_loader"] = r

    if "torch" in results:
        print(f"# pyconvnet / torch (float32, images/s): {results['torch']['total_s'] / results['pyconvnet']['total_s']:.2f}x"
              + (f"; against torch with TF32: {results['torch_tf32']['total_s'] / results['pyconvnet']['total_s']:.2f}x"
                 if "torch_tf32" in results else ""))
    print(f"# at the end, {common.load_line()}")
    if a.json:
        common.write_json(a.json, dict(kind="pyconvnet-e2e-benchmark", date=common.now_utc(), commit=common.commit(),
                                       versions=common.versions_line(torch), device=device, batch=batch,
                                       precision=a.precision, kernel_versions=versions,
                                       machine=machine, step_flops=flops, torch_note=torch_note,
                                       load_at_end=common.load_line(), results=results))
        print(f"# JSON written to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
