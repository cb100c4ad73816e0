"""python -m pyconvnet.show: pictures of what a network learned, how it predicts and how its
training went, as PNG files.

    python -m pyconvnet.show filters CKPT                        conv1 kernels (the paper's Figure 3)
    python -m pyconvnet.show predictions CKPT [--data DIR] [--n 8]
                                  validation images and their top-5 labels (Figure 4, left)
    python -m pyconvnet.show neighbours CKPT [--data DIR] [--n 5]
                                  the training images nearest in fc7 space (Figure 4, right)
    python -m pyconvnet.show curves RUN_DIR                      loss and error per epoch

CKPT is a checkpoint file or the run directory holding it. --data defaults to the dataset the
checkpoint was trained on. Each command writes a PNG (by default next to the checkpoint, e.g.
RUN_DIR/filters.png; --out PATH to choose) and prints its path.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

from . import figures
from .console import HelpFormatter, Progress, UserError, positive_int, resolve_device, run_command
from .inference import load_model, open_data, pick


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pyconvnet.show", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help, target, target_help):
        c = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", formatter_class=HelpFormatter)
        c.add_argument(target, help=target_help)
        c.add_argument("--out", metavar="PATH", help=f"the PNG to write (default: {name}.png next to {target})")
        return c

    ckpt = "a checkpoint file, or the run directory holding checkpoint.npz"
    command("filters", "the conv1 kernels as RGB tiles, per column (the paper's Figure 3)", "CKPT", ckpt)
    for name, help, n in (
            ("predictions", "validation images with their five most probable labels (the paper's Figure 4, left)", 8),
            ("neighbours", "validation images and the six training images nearest in fc7 feature space "
                           "(the paper's Figure 4, right)", 5)):
        c = command(name, help, "CKPT", ckpt)
        c.add_argument("--data", metavar="DIR", help="a prepared dataset or an image tree (default: the "
                       "dataset the checkpoint was trained on)")
        c.add_argument("--n", type=positive_int, default=n, help="how many validation images")
        c.add_argument("--seed", type=int, default=0, help="which validation images: a random choice from this seed")
        c.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
        if name == "neighbours":
            c.add_argument("--batch-size", type=positive_int, default=128,
                           help="images per batch when computing the fc7 features of the training set")
    command("curves", "loss and top-1/top-5 error per epoch with the learning-rate drops marked, from a "
            "run's log (also while it is running)", "RUN_DIR", "a training run's directory")
    return p


def _out_path(args, default_dir: pathlib.Path) -> pathlib.Path:
    out = pathlib.Path(args.out) if args.out else default_dir / f"{args.command}.png"
    if out.suffix.lower() != ".png":
        raise UserError(f"--out {out}: the picture is a PNG; give a path ending in .png")
    return out


def run(argv=None) -> pathlib.Path:
    """Runs one command; returns the path of the PNG written."""
    args = parser().parse_args(argv)
    if args.command == "curves":
        run_dir = pathlib.Path(args.RUN_DIR)
        if run_dir.is_file():  # the log or the checkpoint inside the run directory
            run_dir = run_dir.parent
        if not run_dir.is_dir():
            raise UserError(f"{run_dir}: no such directory")
        out = _out_path(args, run_dir)
        image = figures.curves_image(run_dir)
    else:
        device = "cpu" if args.command == "filters" else resolve_device(args.device)
        model, meta, path = load_model(args.CKPT, device)
        out = _out_path(args, path.parent)
        if args.command == "filters":
            image = figures.filters_image(model, meta)
        else:
            dataset = open_data(args.data, meta, model)
            indices = pick(dataset.count("val"), args.n, args.seed)
            if args.command == "predictions":
                image = figures.predictions_image(model, meta, dataset, indices, device)
            else:
                image = figures.neighbours_image(model, meta, dataset, indices, device, batch_size=args.batch_size,
                                         progress=Progress(sys.stderr))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        image.save(out, format="PNG")
    except OSError as e:
        raise UserError(f"--out {out}: cannot write it ({e.strerror or e})") from None
    return out


def main(argv=None) -> int:
    code, out = run_command(run, argv)
    if code == 0:
        print(out)
    return code


if __name__ == "__main__":
    sys.exit(main())
