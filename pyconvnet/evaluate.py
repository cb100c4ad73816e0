"""python -m pyconvnet.evaluate CKPT [--data DIR]: top-1/top-5 error of a checkpoint's model on a
dataset's validation split, with the centre crop and with 10 crops (4 corners + centre and their
reflections, softmax averaged), as in the paper."""
from __future__ import annotations

import argparse
import sys
import time

from . import checkpoint
from ._C import OutOfMemoryError
from .console import HelpFormatter, UserError, resolve_device, run_command


def parser():
    p = argparse.ArgumentParser(prog="python -m pyconvnet.evaluate", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("checkpoint", metavar="CKPT", help="a checkpoint.npz written by pyconvnet.train, or its run directory")
    p.add_argument("--data", metavar="DIR", help="prepared dataset or image tree (default: the one the run trained on)")
    p.add_argument("--split", default="val", choices=["val", "train"], help="which split to evaluate")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=128, help="images per forward pass")
    return p


def run(argv=None, out=sys.stdout) -> dict:
    from .data import TrainingData, prepared_path
    from .inference import load_model
    from .metrics import evaluate

    args = parser().parse_args(argv)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1; got {args.batch_size}")
    device = resolve_device(args.device)
    model, meta, path = load_model(args.checkpoint, device)
    checkpoint.check_training_meta(path, meta)
    cfg = meta["train_config"]
    root = prepared_path(args.data, cfg["image_size"], out) if args.data else cfg["data_root"]
    data = TrainingData(root, cfg["crop_size"], cfg["seed"], device)
    if data.num_classes != model.config["num_classes"]:
        raise UserError(f"{args.checkpoint} predicts {model.config['num_classes']} classes but {root} has {data.num_classes}")
    done = f"after {meta['epoch']} epochs" + (f" and {meta['step']} steps" if meta["step"] else "")
    print(f"{model.name} from {args.checkpoint} ({done}) on {device}; {data.describe()}", file=out)
    results = {}
    try:
        for name, ten in (("centre crop", False), ("10 crops", True)):
            t0 = time.perf_counter()
            r = evaluate(model, data, args.split, args.batch_size, ten_crop=ten)
            results[name] = r
            print(f"{args.split} {name:<11}: top-1 error {100 * r['top1_error']:5.1f}%  top-5 error "
                  f"{100 * r['top5_error']:5.1f}%  loss {r['loss']:.4f}  ({r['count']} images, "
                  f"{time.perf_counter() - t0:.1f} s)", file=out)
    except OutOfMemoryError as e:
        raise UserError(f"out of GPU memory with --batch-size {args.batch_size} (10 crops run "
                        f"{max(1, args.batch_size // 10) * 10} images at once): try a smaller one ({e})") from None
    finally:
        data.close()
    return results


def main(argv=None) -> int:
    return run_command(run, argv)[0]


if __name__ == "__main__":
    sys.exit(main())
