"""The SGD trainer: the paper's recipe, progress output, checkpoints, resumption.

Everything random in a run is a pure function of (seed, epoch, step): the order of the images
(shuffled per epoch from the seed), the augmentation draws and the dropout masks (Philox, keyed by
seed and position). So the state to resume is only the weights, the momentum buffers, the
learning-rate schedule and the position, and a resumed run ends with exactly the weights of an
uninterrupted one on the same device.

With several ranks (pyconvnet.distributed) each computes its part of every batch; the gradients,
the loss and the hits are summed over the ranks every step, validation is shared out, and rank 0
alone prints, logs and writes checkpoints. The draws depend on the sample's position in the
batch, not on the rank, so the weights do not depend on the number of ranks beyond the order of
floating-point sums.
"""
from __future__ import annotations

import dataclasses
import math
import pathlib
import signal
import sys
import time

import numpy as np

from . import checkpoint, ops
from .console import Progress, format_duration
from .distributed import SINGLE
from .errors import UserError
from .inference import model_state
from .metrics import evaluate
from .models import Sequential, loss_and_grad
from .rundir import RunDir
from .tensor import tensor, zeros


@dataclasses.dataclass
class Schedule:
    """lr divided by 10 at the given epochs, or (with no epochs given) whenever the validation
    top-1 error has not improved for `patience` epochs, at most `max_drops` times."""
    lr: float
    drop_epochs: list
    patience: int
    max_drops: int
    best_error: float = math.inf
    epochs_since_best: int = 0
    drops: list = dataclasses.field(default_factory=list)  # epochs after which lr was divided

    def after_epoch(self, epoch: int, val_error: float) -> bool:
        """Update with the validation error of `epoch` (1-based count of finished epochs);
        returns True if the learning rate was divided."""
        if val_error < self.best_error - 1e-9:
            self.best_error, self.epochs_since_best = val_error, 0
        else:
            self.epochs_since_best += 1
        if self.drop_epochs:
            drop = epoch in self.drop_epochs
        else:
            drop = self.epochs_since_best >= self.patience and len(self.drops) < self.max_drops
        if drop:
            self.lr /= 10.0
            self.drops.append(epoch)
            self.epochs_since_best = 0
        return drop


class Trainer:
    """Trains `model` on `data` (a pyconvnet.data.Dataset) with SGD + momentum + weight decay.

    config holds: epochs, batch_size, lr, momentum, weight_decay, lr_drop_epochs, patience,
    max_drops, seed, device (where the batches go), drop_last, log_every, and optionally devices
    (the two columns' devices, when the model is in columns: models.Sequential.to_columns).
    group: the ranks of the run (data sharded over them; default one process). A model in
    columns trains in one process: with several ranks a UserError says so.
    """

    def __init__(self, model: Sequential, data, config: dict, run_dir, out=sys.stdout, group=SINGLE):
        self.model, self.data, self.config = model, data, dict(config)
        if group.size > 1 and model.columns is not None:
            raise UserError(f"a model in two columns (on {' and '.join(model.columns.devices)}) trains in one "
                            f"process; this run has {group.size} ranks: train the columns without mpirun, or "
                            f"the ranks without columns")
        self.group, self.root = group, group.rank == 0
        self.reducer_name = group.reducer_name(config["device"])
        self.reducer = None  # made at the first step (with NCCL, a collective)
        self.run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        self.run_dir = self.run.path
        self.device = config["device"]
        self.progress = Progress(out)
        self.print = self.progress.line
        # One momentum buffer per parameter tensor, on its device (each column's on its own).
        self.velocity = {key: zeros(layer.params[p].shape, device=layer.params[p].device)
                         for key, layer, p in model.parameters()}
        self.schedule = Schedule(config["lr"], list(config.get("lr_drop_epochs") or []), config["patience"], config["max_drops"])
        self.epoch, self.step = 0, 0  # next position: epoch index (0-based) and step within it
        self.history: list = []
        self.running = self._fresh_running()

    @staticmethod
    def _fresh_running():
        return {"loss_sum": 0.0, "seen": 0, "err1": 0, "err5": 0, "time": 0.0}

    # ------------------------------------------------------------------ state
    def state(self) -> tuple[dict, dict]:
        arrays = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        momentum = self.model.merge({k: v.numpy() for k, v in self.velocity.items()})
        arrays.update({f"momentum/{k}": v for k, v in momentum.items()})
        meta = {
            "model_config": self.model.config,
            "train_config": self.config,
            "epoch": self.epoch,
            "step": self.step,
            "schedule": dataclasses.asdict(self.schedule),
            "rng": {"seed": self.config["seed"], "position": [self.epoch, self.step],
                    "note": "all random streams are Philox/NumPy streams keyed by (seed, epoch, step)"},
            "running": self.running,
            "history": self.history,
            "classes": list(self.data.class_names),
        }
        return arrays, meta

    def save(self, where: str | None = None) -> pathlib.Path:
        """Writes the checkpoint, if every weight and momentum value is finite: a diverged model
        never replaces the last good checkpoint (a UserError says so instead, naming `where`).
        With several ranks (all holding the same weights) rank 0 checks and writes it, and every
        rank raises its error."""
        return self.group.on_root(lambda: self._write(where))

    def _write(self, where: str | None) -> pathlib.Path:
        arrays, meta = self.state()
        bad = [name for name, a in arrays.items() if not np.isfinite(a).all()]
        if bad:
            raise UserError(self._stopped(f"{bad[0]} became non-finite (NaN or infinity)", where))
        try:
            return checkpoint.save(self.run.checkpoint, arrays, meta)
        except OSError as e:  # a full disk, a file-size limit, a directory gone
            then = (f"the previous checkpoint is kept: make room and continue with --resume {self.run_dir}"
                    if self.run.checkpoint.exists() else "no checkpoint was written: make room and start again")
            raise UserError(f"cannot write the checkpoint {self.run.checkpoint} ({e.strerror or e}); {then}") from None

    def _stopped(self, what: str, where: str | None = None) -> str:
        """The message of a run stopped by divergence."""
        kept = (f"the last good checkpoint {self.run.checkpoint} is kept" if self.run.checkpoint.exists()
                else "no checkpoint was written yet")
        where = where or f"at epoch {self.epoch + 1}, step {self.step + 1}"
        return f"training stopped: {what} {where} (learning rate {self.schedule.lr:g}); {kept}. Try a lower --lr."

    def restore(self, arrays: dict, meta: dict) -> None:
        """Continues from a checkpoint's state (checked against this model: names, shapes, dtypes,
        finiteness; a CheckpointError names what does not fit)."""
        checkpoint.check_arrays(self.run.checkpoint, arrays, self.model.param_shapes(),
                                prefixes=("model/", "momentum/"))
        self.model.load_state_dict(model_state(arrays))
        momentum = self.model.split({k: arrays[f"momentum/{k}"] for k in self.model.param_shapes()})
        for key, layer, p in self.model.parameters():
            self.velocity[key] = tensor(np.ascontiguousarray(momentum[key]), layer.params[p].device)
        self.epoch, self.step = meta["epoch"], meta["step"]
        self.schedule = Schedule(**meta["schedule"])
        self.running = meta["running"]
        self.history = meta["history"]

    def log(self, record: dict) -> None:
        if self.root:
            self.run.log(record)

    # ------------------------------------------------------------------ one step
    def train_step(self, x, labels, global_step: int, rows=None, stop=False):
        """(loss, (top-1 hits, top-5 hits), stop) of one SGD step; the hits are counted on the
        device. rows = (first, stop, batch rows): the part of the step's batch that x holds (by
        default all of it); with several ranks the loss, hits and gradients are those of the whole
        batch, and `stop` is true if any rank passed stop=True."""
        first, last, total = rows or (0, len(labels), len(labels))
        self.model.set_dropout_seed(self.config["seed"], global_step, first)
        loss, _, hits = loss_and_grad(self.model, x, labels, hits=True)
        params = list(self.model.parameters())
        if self.group.size > 1:
            n = last - first
            loss_sum, hits1, hits5, stops = self.group.sum([loss * n, hits[0], hits[1], stop])
            loss, hits, stop = loss_sum / total, (int(hits1), int(hits5)), stops > 0
        if not math.isfinite(loss):
            raise FloatingPointError(loss)
        if self.group.size > 1:
            if self.reducer is None:
                self.reducer = self.group.reducer(self.device)
            grads = self.reducer.reduce([layer.grads[p] for _, layer, p in params], n / total)
            for (_, layer, p), g in zip(params, grads):
                layer.grads[p] = g
        lr, m, wd = self.schedule.lr, self.config["momentum"], self.config["weight_decay"]
        for key, layer, p in params:
            ops.sgd_update(layer.params[p], layer.grads[p], self.velocity[key], lr * layer.lr_mult, m, wd)
        for _, layer, _ in params:
            layer.grads = {}
        return loss, hits, stop

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, split: str = "val", ten_crop: bool = False) -> dict:
        return evaluate(self.model, self.data, split, self.config["batch_size"], ten_crop, self.group)

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict:
        cfg = self.config
        epochs, bs = cfg["epochs"], cfg["batch_size"]
        steps = self.data.steps_per_epoch(bs, cfg["drop_last"])
        interrupted = {"flag": False}

        def on_signal(signum, frame):  # Ctrl-C or SIGTERM: checkpoint after this step; twice: at once
            if interrupted["flag"]:
                raise KeyboardInterrupt
            interrupted["flag"] = signum
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while self.epoch < epochs:
                t_epoch = time.perf_counter() - self.running["time"]
                t_last = time.perf_counter()
                batches = self.data.train_batches(bs, self.epoch, self.step, cfg["drop_last"])
                for x, labels, labels_host in batches:
                    global_step = self.epoch * steps + self.step
                    rows = self.data.train_rows(bs, cfg["drop_last"], self.step)
                    try:
                        loss, (hits1, hits5), stop = self.train_step(x, labels, global_step, rows,
                                                                     bool(interrupted["flag"]))
                    except FloatingPointError as e:
                        self.print("")
                        raise UserError(self._stopped(f"the loss became {e.args[0]}")) from None
                    if stop and not interrupted["flag"]:  # another rank was interrupted
                        interrupted["flag"] = signal.SIGTERM
                    # With several ranks only the agreed value may decide: a signal that lands on
                    # one rank after the step's sum must wait for the next step, or that rank would
                    # save while the others went on.
                    stopping = stop if self.group.size > 1 else bool(interrupted["flag"])
                    r = self.running
                    n = rows[2]
                    r["loss_sum"] += loss * n
                    r["seen"] += n
                    r["err1"] += n - hits1
                    r["err5"] += n - hits5
                    self.step += 1
                    now = time.perf_counter()
                    r["time"] = now - t_epoch
                    ips = n / max(now - t_last, 1e-9)
                    t_last = now
                    done = self.epoch * steps + self.step
                    eta = r["time"] / max(self.step, 1) * (epochs * steps - done)
                    self.progress.step(
                        f"epoch {self.epoch + 1}/{epochs} step {self.step}/{steps} loss {loss:.4f} "
                        f"top-1 {100 * (1 - r['err1'] / r['seen']):.1f}% {ips:,.0f} img/s ETA {format_duration(eta)}",
                        self.step, steps)
                    if cfg.get("log_every") and self.step % cfg["log_every"] == 0:
                        self.log({"event": "step", "epoch": self.epoch + 1, "step": self.step, "loss": loss,
                                  "lr": self.schedule.lr, "images_per_s": ips})
                    if stopping:
                        path = self.save()
                        self.print(f"\ninterrupted at epoch {self.epoch + 1}, step {self.step}/{steps}; "
                                   f"checkpoint saved to {path}")
                        self.print(f"resume with: python -m pyconvnet.train --resume {self.run_dir}")
                        return {"interrupted": interrupted["flag"]}
                self._end_epoch(steps)
                stopping = bool(interrupted["flag"])
                if self.group.size > 1:  # the agreed value, as after a step
                    stopping = self.group.sum([stopping])[0] > 0
                    if stopping:
                        interrupted["flag"] = interrupted["flag"] or signal.SIGTERM
                if stopping:  # Ctrl-C during validation: the epoch's checkpoint is saved
                    self.print(f"interrupted after epoch {self.epoch}; checkpoint saved to "
                               f"{self.run.checkpoint}")
                    self.print(f"resume with: python -m pyconvnet.train --resume {self.run_dir}")
                    return {"interrupted": interrupted["flag"]}
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self._finish()

    def _end_epoch(self, steps: int) -> None:
        r = self.running
        val = self.evaluate("val")
        if not math.isfinite(val["loss"]):
            raise UserError(self._stopped(f"the validation loss became {val['loss']}",
                                          f"after epoch {self.epoch + 1}"))
        lr = self.schedule.lr
        self.epoch += 1
        dropped = self.schedule.after_epoch(self.epoch, val["top1_error"])
        rec = {
            "event": "epoch", "epoch": self.epoch, "lr": lr,
            "train_loss": r["loss_sum"] / max(r["seen"], 1),
            "train_top1_error": r["err1"] / max(r["seen"], 1), "train_top5_error": r["err5"] / max(r["seen"], 1),
            "val_loss": val["loss"], "val_top1_error": val["top1_error"], "val_top5_error": val["top5_error"],
            "time_s": r["time"], "images_per_s": r["seen"] / max(r["time"], 1e-9), "lr_dropped": dropped,
        }
        self.history.append(rec)
        self.log(rec)
        self.print(f"epoch {self.epoch}/{self.config['epochs']}: train loss {rec['train_loss']:.4f} "
                   f"top-1/top-5 error {100 * rec['train_top1_error']:.1f}%/{100 * rec['train_top5_error']:.1f}% | "
                   f"val loss {val['loss']:.4f} top-1/top-5 error {100 * val['top1_error']:.1f}%/"
                   f"{100 * val['top5_error']:.1f}% (centre crop) | {format_duration(r['time'])}, "
                   f"{rec['images_per_s']:,.0f} img/s" + (f" | lr -> {self.schedule.lr:g}" if dropped else ""))
        self.step = 0
        self.running = self._fresh_running()
        self.save(f"after epoch {self.epoch}")

    def _finish(self) -> dict:
        ten = self.evaluate("val", ten_crop=True)
        centre = self.history[-1] if self.history else {}
        self.log({"event": "final", "epoch": self.epoch, "val_top1_error_10crop": ten["top1_error"],
                  "val_top5_error_10crop": ten["top5_error"], "val_top1_error": centre.get("val_top1_error"),
                  "val_top5_error": centre.get("val_top5_error")})
        self.print(f"final validation error, 10 crops: top-1 {100 * ten['top1_error']:.1f}%, "
                   f"top-5 {100 * ten['top5_error']:.1f}% ({ten['count']} images, chance top-1 "
                   f"{100 * (1 - 1 / self.data.num_classes):.1f}%)")
        ckpt = self.run.checkpoint
        self.print(f"checkpoint: {ckpt}\nlog:        {self.run.log_path}")
        self.print(f"evaluate:   python -m pyconvnet.evaluate {ckpt} --data {self.data.root}")
        self.print(f"continue:   python -m pyconvnet.train --resume {self.run_dir} --epochs N")
        return {"ten_crop": ten, "history": self.history}

