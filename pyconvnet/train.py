"""python -m pyconvnet.train: train the two-column AlexNet with the paper's recipe.

With no arguments it trains on the built-in dataset: the full network on a GPU, a scaled-down
AlexNet of the same structure on the CPU (so that it finishes in minutes on two cores).
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import pathlib
import sys

from . import checkpoint, cuda, distributed
from ._C import OutOfMemoryError
from .console import HelpFormatter, UserError, resolve_device, resolve_precision, run_command
from .models import MIN_INPUT_SIZE
from .rundir import CHECKPOINT_NAME, RunDir, check_usable

# The paper's recipe (docs/alexnet.md) for real data.
PAPER = dict(batch_size=128, lr=0.01, momentum=0.9, weight_decay=0.0005, epochs=90, width=1.0, init="paper",
             image_size=256, crop_size=224, lr_drop_epochs=[])
# The built-in dataset on the CPU: a scaled-down AlexNet (same layers, a quarter of the
# channels, 64x64 crops) with He initialisation, so that it learns within a few epochs.
BUILTIN_CPU = dict(batch_size=64, lr=0.01, momentum=0.9, weight_decay=0.0005, epochs=15, width=0.25, init="he",
                   image_size=72, crop_size=64, lr_drop_epochs=[10, 13])
# The built-in dataset on a GPU: the full network at 224x224 with the same initialisation.
BUILTIN_GPU = dict(batch_size=128, lr=0.01, momentum=0.9, weight_decay=0.0005, epochs=30, width=1.0, init="he",
                   image_size=256, crop_size=224, lr_drop_epochs=[20, 26])


def _defaults(key: str) -> str:
    """'(--data: A; built-in: B on the CPU, C on a GPU)' for a setting that depends on the run."""
    show = lambda v: ",".join(map(str, v)) if isinstance(v, list) else str(v)  # noqa: E731
    data = PAPER[key] if PAPER[key] != [] else "when validation error stalls"
    return (f"(--data: {show(data)}; built-in dataset: {show(BUILTIN_CPU[key])} on the CPU, "
            f"{show(BUILTIN_GPU[key])} on a GPU)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pyconvnet.train",
        description="Train the two-column AlexNet (Krizhevsky et al. 2012) with SGD. Without --data, "
                    "trains on pyconvnet's built-in dataset (a scaled-down AlexNet on the CPU, the full "
                    "one on a GPU). With --data the defaults are the paper's.",
        formatter_class=HelpFormatter)
    p.add_argument("--data", metavar="DIR", help="a prepared dataset (python -m pyconvnet.prepare) or an "
                   "ImageNet-style image tree, which is prepared first (default: the built-in dataset)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (auto: cuda if available); under "
                   "mpirun with several ranks on CUDA, each rank takes device (local rank mod devices visible)")
    p.add_argument("--devices", metavar="DEV0,DEV1", help="the paper's two columns on two GPUs, e.g. "
                   "cuda:0,cuda:1: column 1's half of every layer on the first, column 2's on the second "
                   "(instead of --device; one process: not under mpirun with several ranks)")
    p.add_argument("--precision", help="fp32 (default: FP32-accurate kernels) or tf32 (the convolutions and "
                   "fully-connected layers on TF32 tensor cores, operands rounded to 10-bit mantissas; CUDA only)")
    p.add_argument("--out", metavar="RUN_DIR", help="where the checkpoint and logs go (default: runs/<date-time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint, with "
                   "its settings (--epochs, --lr, --device, --devices and --precision may be changed)")
    p.add_argument("--seed", type=int, help="seed of initialisation, shuffling, augmentation, dropout (default: 0)")
    p.add_argument("--epochs", type=int, help="epochs to train " + _defaults("epochs"))
    p.add_argument("--batch-size", type=int, help="images per step " + _defaults("batch_size"))
    p.add_argument("--lr", type=float, help="initial learning rate " + _defaults("lr"))
    p.add_argument("--momentum", type=float, help="SGD momentum " + _defaults("momentum"))
    p.add_argument("--weight-decay", type=float, help="weight decay " + _defaults("weight_decay"))
    p.add_argument("--lr-drop-epochs", type=str, help="comma-separated epochs after which lr is divided by 10; "
                   "'' to divide when the validation error stops improving " + _defaults("lr_drop_epochs"))
    p.add_argument("--patience", type=int, default=3, help="epochs without validation improvement before lr /= 10")
    p.add_argument("--max-drops", type=int, default=3, help="at most this many plateau divisions")
    p.add_argument("--width", type=float, help="channel multiplier, 1 = the paper's network " + _defaults("width"))
    p.add_argument("--init", choices=["paper", "caffe", "he"], help="initialisation: paper N(0, 0.01) with biases "
                   "1, caffe the same with biases 0.1, he N(0, sqrt(2/fan_in)) " + _defaults("init"))
    p.add_argument("--crop-size", type=int, help="network input size " + _defaults("crop_size"))
    p.add_argument("--image-size", type=int, help="size images are prepared at " + _defaults("image_size"))
    p.add_argument("--drop-last", action=argparse.BooleanOptionalAction, default=True,
                   help="drop the last partial batch of each epoch")
    p.add_argument("--log-every", type=int, default=50, help="write a JSON log record every N steps")
    return p


MAX_EPOCHS = (1 << 29) - 1  # the random streams count epochs below 2^29 (pyconvnet.augment)
MAX_WIDTH = checkpoint.MAX_WIDTH
MAX_IMAGE_SIZE = checkpoint.MAX_INPUT


def _check_epochs(epochs: int) -> int:
    if epochs < 1:
        raise UserError(f"--epochs must be >= 1; got {epochs}")
    if epochs > MAX_EPOCHS:
        raise UserError(f"--epochs must be at most {MAX_EPOCHS}; got {epochs}")
    return epochs


def _check_lr(lr: float) -> float:
    if not lr > 0:
        raise UserError(f"--lr must be > 0; got {lr}")
    if not math.isfinite(lr):
        raise UserError(f"--lr must be a finite number; got {lr}")
    return lr


def _config(args, device: str) -> dict:
    """The run's settings: the defaults for its data and device, overridden by the flags, each
    checked (finite, in range) before any work starts."""
    base = dict(PAPER) if args.data else dict(BUILTIN_GPU if device != "cpu" else BUILTIN_CPU)
    for key in ("epochs", "batch_size", "lr", "momentum", "weight_decay", "width", "init", "crop_size", "image_size"):
        v = getattr(args, key)
        if v is not None:
            base[key] = v
    if args.lr_drop_epochs is not None:
        try:
            base["lr_drop_epochs"] = [int(e) for e in args.lr_drop_epochs.split(",") if e.strip()]
        except ValueError:
            raise UserError(f"--lr-drop-epochs must be comma-separated integers; got {args.lr_drop_epochs!r}") from None
        if any(e < 1 for e in base["lr_drop_epochs"]):
            raise UserError(f"--lr-drop-epochs must be epochs >= 1; got {args.lr_drop_epochs!r}")
    _check_epochs(base["epochs"])
    if base["batch_size"] < 1:
        raise UserError(f"--batch-size must be >= 1; got {base['batch_size']}")
    _check_lr(base["lr"])
    if not 0 <= base["momentum"] < 1:
        raise UserError(f"--momentum must be in [0, 1); got {base['momentum']}")
    if not base["weight_decay"] >= 0:
        raise UserError(f"--weight-decay must be >= 0; got {base['weight_decay']}")
    if not math.isfinite(base["weight_decay"]):
        raise UserError(f"--weight-decay must be a finite number; got {base['weight_decay']}")
    if not base["width"] > 0:
        raise UserError(f"--width must be > 0; got {base['width']}")
    if not base["width"] <= MAX_WIDTH:
        raise UserError(f"--width must be at most {MAX_WIDTH:g} ({MAX_WIDTH:g} times the paper's channels); "
                        f"got {base['width']}")
    if base["crop_size"] < MIN_INPUT_SIZE:
        raise UserError(f"--crop-size must be at least {MIN_INPUT_SIZE} for AlexNet's strides; got {base['crop_size']}")
    if base["image_size"] > MAX_IMAGE_SIZE:
        raise UserError(f"--image-size must be at most {MAX_IMAGE_SIZE}; got {base['image_size']}")
    for flag, value, low in (("--patience", args.patience, 1), ("--max-drops", args.max_drops, 0),
                             ("--log-every", args.log_every, 0)):
        if value < low:
            raise UserError(f"{flag} must be >= {low}; got {value}")
    if base["crop_size"] > base["image_size"]:
        raise UserError(f"--crop-size {base['crop_size']} is larger than --image-size {base['image_size']}")
    seed = 0 if args.seed is None else args.seed
    if not 0 <= seed < 2 ** 64:
        raise UserError(f"--seed must be in [0, 2^64); got {seed}")
    base.update(seed=seed, device=device, precision=args.precision or "fp32", patience=args.patience,
                max_drops=args.max_drops, drop_last=args.drop_last, log_every=args.log_every)
    return base


def _columns(value: str) -> list:
    """The two devices of --devices, checked (two distinct CUDA devices that exist)."""
    from .columns import check_devices

    try:
        return check_devices(value, who="--devices")
    except ValueError as e:
        raise UserError(str(e)) from None


def _placement(args, run_config: dict | None = None, group=distributed.SINGLE) -> tuple[str, list | None]:
    """(the device the data goes to, the two column devices or None) from --device / --devices, or
    for a resumed run without them, the run's own. The two columns run in one process: with
    several ranks they are an error."""
    wanted = args.devices
    if wanted is None and args.device == "auto" and run_config is not None and run_config.get("devices"):
        wanted = ",".join(run_config["devices"])
    if wanted is not None and group.size > 1:
        what = f"--devices {args.devices}" if args.devices is not None else f"the run's two columns ({wanted})"
        raise UserError(f"{what}: the two columns train in one process, and this job has {group.size} ranks; "
                        f"run without mpirun for two columns, or give the ranks --device")
    if args.devices is not None and args.device != "auto":
        raise UserError(f"--device {args.device} and --devices {args.devices}: give one of them")
    if wanted is not None:
        devices = _columns(wanted)
        return devices[0], devices
    if args.device == "auto" and run_config is not None:
        return group.device(resolve_device(run_config["device"])), None
    return group.device(resolve_device(args.device)), None


def _where(device: str, devices: list | None) -> str:
    return f"{devices[0]} and {devices[1]} (two columns)" if devices else device


def _place(model, device: str, devices: list | None):
    return model.to_columns(devices) if devices else model.to(device)


def _check_batch_size(config: dict, dataset, ranks: int = 1) -> None:
    count, bs = dataset.dataset.count("train"), config["batch_size"]
    if bs > count:
        raise UserError(f"--batch-size {bs} is larger than the {count:,} training images of "
                        f"{dataset.root}; use at most --batch-size {count}")
    last = count % bs
    if bs < ranks or (not config["drop_last"] and 0 < last < ranks):
        what = f"--batch-size {bs}" if bs < ranks else f"the last batch of each epoch ({last} images, --no-drop-last)"
        raise UserError(f"{what} cannot be shared out over {ranks} ranks (each needs at least one image); "
                        f"use a batch of at least {ranks} images, or fewer ranks")


def _resume(args, out, group):
    """(run directory (locked by rank 0), trainer, its dataset) of a run continued from its checkpoint."""
    from . import data as datamod
    from .models import from_config
    from .trainer import Trainer

    with group.together():
        ignored = [f for f in ("data", "out", "seed", "batch_size", "momentum", "weight_decay", "lr_drop_epochs",
                               "width", "init", "crop_size", "image_size") if getattr(args, f) is not None]
        if ignored:
            raise UserError(f"--resume continues a run with its own settings; only --epochs, --lr, --device, "
                            f"--devices and --precision may change (got {', '.join('--' + f.replace('_', '-') for f in ignored)})")
        if args.epochs is not None:
            _check_epochs(args.epochs)
        if args.lr is not None:
            _check_lr(args.lr)
        run_dir = pathlib.Path(args.resume)
        if not (run_dir / CHECKPOINT_NAME).is_file():
            raise UserError(f"checkpoint {run_dir / CHECKPOINT_NAME}: no such file")
        run = RunDir(run_dir).open() if group.rank == 0 else RunDir(run_dir)
    try:
        with group.together():
            arrays, meta = checkpoint.load(run.checkpoint)
            checkpoint.check_training_meta(run.checkpoint, meta)
            config = dict(meta["train_config"])
            # A resumed run stays on its device(s) unless told otherwise (weights are bit-identical
            # to an uninterrupted run only on the same layout and with as many ranks).
            device, devices = _placement(args, config, group)
            was = _where(config["device"], config.get("devices"))
            if _where(device, devices) != was:
                print(f"note: resuming on {_where(device, devices)} (the run started on {was})", file=out)
            config["device"], config["devices"] = device, devices
            precision = args.precision or config.get("precision", "fp32")
            versions = resolve_precision(precision, device)
            if precision != config.get("precision", "fp32"):
                print(f"note: resuming at --precision {precision} (the run started at "
                      f"{config.get('precision', 'fp32')})", file=out)
            config["precision"] = precision
            if args.epochs is not None:
                config["epochs"] = args.epochs
            final_only = meta["epoch"] >= config["epochs"]
            if final_only and run.final_logged(meta["epoch"]):
                raise UserError(f"{run_dir} already finished its {config['epochs']} epochs; pass --epochs N with "
                                f"N > {meta['epoch']} to train on")
            try:
                model = from_config(meta["model_config"])
                model.set_versions(versions)  # before _place: the columns copy the layers
            except (ValueError, TypeError) as e:
                raise checkpoint.CheckpointError(f"checkpoint {run.checkpoint}: not a model checkpoint of this "
                                                 f"pyconvnet ({e})") from None
            model = _place(model, device, devices)
        dataset = datamod.open_dataset(config["data_root"], config, out=out, group=group)
        try:
            with group.together():
                _check_batch_size(config, dataset, group.size)
                trainer = Trainer(model, dataset, config, run, out=out, group=group)
                trainer.restore(arrays, meta)
                if group.rank == 0:
                    run.truncate_log(trainer.epoch, trainer.step)
        except BaseException:
            dataset.close()
            raise
    except BaseException:
        run.close()
        raise
    if args.lr is not None:
        print(f"note: learning rate set to {args.lr:g} (was {trainer.schedule.lr:g})", file=out)
        trainer.schedule.lr = args.lr
    if final_only:
        print(f"resuming {run_dir} for its final evaluation (its {trainer.epoch} epochs are done)", file=out)
    else:
        print(f"resuming {run_dir} at epoch {trainer.epoch + 1}, step {trainer.step} (lr {trainer.schedule.lr:g})",
              file=out)
    return run, trainer, dataset


def _start(args, out, group):
    """(run directory (locked by rank 0), trainer, its dataset) of a new run."""
    from . import data as datamod
    from .models import alexnet
    from .trainer import Trainer

    out_dir = args.out or group.broadcast(f"runs/{datetime.datetime.now():%Y%m%d-%H%M%S}")
    with group.together():
        device, devices = _placement(args, group=group)
        config = _config(args, device)
        versions = resolve_precision(config["precision"], device)
        config["devices"] = devices
        run_dir = check_usable(out_dir)
        if (run_dir / CHECKPOINT_NAME).exists():
            if group.rank == 0:
                RunDir(run_dir).open().close()  # a trainer still running there is named first
            raise UserError(f"--out {run_dir} already holds a run; use --resume {run_dir} to continue it, or "
                            "another --out")
    dataset = datamod.open_dataset(args.data, config, out=out, group=group)
    try:
        with group.together():
            _check_batch_size(config, dataset, group.size)
            config["data_root"] = str(dataset.root)
            run = RunDir(run_dir).open(create=True) if group.rank == 0 else RunDir(run_dir)
    except BaseException:
        dataset.close()
        raise
    try:
        with group.together():
            if group.rank == 0 and run.checkpoint.exists():  # written by another trainer since the check above
                raise UserError(f"--out {run_dir} already holds a run; use --resume {run_dir} to continue it, "
                                "or another --out")
            model = alexnet(num_classes=dataset.num_classes, input_size=config["crop_size"], width=config["width"],
                            seed=config["seed"], init=config["init"])
            model.set_versions(versions)  # before _place: the columns copy the layers
            model = _place(model, device, devices)
            if group.rank == 0:
                run.write_config({"train": config, "model": model.config})
                run.log_path.unlink(missing_ok=True)  # a log without a checkpoint is from a run that never saved
            trainer = Trainer(model, dataset, config, run, out=out, group=group)
    except BaseException:
        run.close()
        dataset.close()
        raise
    ranks = f", {group.size} ranks (gradients reduced with {trainer.reducer_name})" if group.size > 1 else ""
    print(f"{model.name} on {_where(device, devices)}"
          f"{' (' + cuda.device_name(int(device[5:]) if ':' in device else 0) + ')' if device != 'cpu' and not devices else ''}"
          f"{', TF32 tensor cores' if config['precision'] == 'tf32' else ''}"
          f"{ranks}: {model.num_parameters():,} parameters, {dataset.describe()}", file=out)
    print(f"batch {config['batch_size']}, lr {config['lr']:g}, momentum {config['momentum']}, weight decay "
          f"{config['weight_decay']}, {config['epochs']} epochs, lr /10 "
          + (f"after epochs {config['lr_drop_epochs']}" if config["lr_drop_epochs"]
             else f"when val error stalls {config['patience']} epochs") + f"; run dir {run_dir}", file=out)
    return run, trainer, dataset


def run(argv=None, out=sys.stdout, group=distributed.SINGLE) -> dict:
    """Trains as the command line says. With a group of several ranks (pyconvnet.distributed)
    this is one rank's part; only rank 0 writes to `out`."""
    args = parser().parse_args(argv)
    if group.rank != 0:
        out = open(os.devnull, "w")
    run_dir, trainer, dataset = _resume(args, out, group) if args.resume else _start(args, out, group)
    config = trainer.config
    try:
        return trainer.fit()
    except OutOfMemoryError as e:
        raise UserError(f"out of GPU memory with --batch-size {config['batch_size']} on {config['device']}: try a "
                        f"smaller batch, e.g. --batch-size {max(1, config['batch_size'] // 2)} ({e})") from None
    finally:
        dataset.close()
        run_dir.close()


def main(argv=None) -> int:
    """The command line, in one process or as one rank of an MPI job (mpirun -n N python -m
    pyconvnet.train ...)."""
    code, group = run_command(lambda _: distributed.init(), None)
    if code:
        return code
    if group.size == 1:
        code, result = run_command(run, argv)
        return 128 + result["interrupted"] if code == 0 and result.get("interrupted") else code

    def one_rank(args):  # errors: distributed.run_ranks
        result = run(args, group=group)
        return 128 + result["interrupted"] if result.get("interrupted") else 0
    return distributed.run_ranks(group, one_rank, argv)


if __name__ == "__main__":
    sys.exit(main())
