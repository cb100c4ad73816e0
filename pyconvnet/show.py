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
import json
import math
import pathlib
import sys
import time

import numpy as np
from PIL import Image

from . import augment, checkpoint, ops
from . import draw as d
from .data import prepared_path
from .dataset import PreparedDataset
from .console import HelpFormatter, Progress, UserError, format_duration, positive_int, resolve_device, run_command
from .loader import Loader
from .tensor import tensor
from .trainer import CHECKPOINT_NAME, LOG_NAME, load_model

STEP_BLUE = (160, 195, 225)  # the per-step training losses: the training colour, lighter
EPOCH_FIELDS = ("epoch", "lr", "train_loss", "val_loss") + tuple(
    f"{split}_top{k}_error" for split in ("train", "val") for k in (1, 5))
FEATURE_LAYER = "relu7"  # fc7 after its ReLU; drop7 that follows is the identity at test time


# ----------------------------------------------------------------------------- inputs

def checkpoint_path(arg) -> pathlib.Path:
    """CKPT as given: a checkpoint file, or a run directory holding checkpoint.npz."""
    path = pathlib.Path(arg)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def open_checkpoint(arg, device: str = "cpu"):
    """(model on `device`, checkpoint meta, checkpoint path); UserError if it cannot be used."""
    path = checkpoint_path(arg)
    try:
        model, meta = load_model(path, device)
    except checkpoint.CheckpointError:
        raise  # already a one-line UserError
    except (KeyError, ValueError, TypeError) as e:
        raise UserError(f"checkpoint {path}: not a model checkpoint of this pyconvnet "
                        f"({type(e).__name__}: {e})") from None
    return model, meta, path


def open_data(data, meta: dict, model) -> PreparedDataset:
    """The prepared dataset to draw images from: --data (a prepared directory, or an image tree,
    prepared once), else the one the checkpoint was trained on. It must have the checkpoint's
    classes and images at least as large as the network's input."""
    train_config = meta.get("train_config", {})
    if data is None:
        data = train_config.get("data_root")
        if data is None:
            raise UserError("the checkpoint does not say which dataset it was trained on: pass --data DIR")
        if not pathlib.Path(data).is_dir():
            raise UserError(f"the checkpoint's dataset {data} is gone: pass --data DIR")
    root = prepared_path(data, train_config.get("image_size", 256), out=sys.stderr)
    try:
        dataset = PreparedDataset(root)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    classes = meta.get("classes")
    if dataset.num_classes != model.config["num_classes"] or (classes and classes != dataset.class_names()):
        raise UserError(f"--data {data}: its {dataset.num_classes} classes are not the "
                        f"{model.config['num_classes']} the checkpoint was trained on")
    crop = model.config["input_size"]
    if dataset.size < crop:
        raise UserError(f"--data {data}: its {dataset.size}x{dataset.size} images are smaller than the "
                        f"network's {crop}x{crop} input")
    return dataset


def class_labels(dataset: PreparedDataset) -> list:
    """A short display name per class: the first of a synset's comma-separated names ("tench,
    Tinca tinca" -> "tench"), else the synset (the class folder's name)."""
    out = []
    for i, c in enumerate(dataset.classes):
        name = (c.get("name") or c.get("synset") or f"class {i}").split(",")[0].strip()
        out.append(d.plain(name))
    return out


def pick(count: int, n: int, seed: int) -> np.ndarray:
    """n distinct indices of [0, count), drawn with `seed`, ascending."""
    if count == 0:
        raise UserError("the dataset has no validation images")
    return np.sort(np.random.default_rng(seed).choice(count, size=min(n, count), replace=False))


def center_crops(dataset: PreparedDataset, split: str, indices, crop: int) -> np.ndarray:
    """uint8 (n, crop, crop, 3): the central crops the network sees (augment.center_params)."""
    o = (dataset.size - crop) // 2
    return np.ascontiguousarray(dataset.images(split)[np.asarray(indices)][:, o:o + crop, o:o + crop])


def network_input(dataset: PreparedDataset, split: str, indices, crop: int, device: str):
    """The centre-crop input of images `indices`, made on `device` as the Loader makes it."""
    images = tensor(np.ascontiguousarray(dataset.images(split)[np.asarray(indices)]), device)
    params = augment.center_params(len(indices), dataset.size, dataset.size, crop)
    return augment.apply(images, tensor(dataset.mean, device), params, crop)


def fc7_features(model, x):
    """The network's fc7 activations (after ReLU) for input x: float32 (N, fc7 width), on x's device."""
    for layer in model.layers:
        x = layer.forward(x, train=False)
        if layer.name == FEATURE_LAYER:
            return x
    raise ValueError(f"{model.name} has no layer {FEATURE_LAYER!r}")


def predict(model, dataset, split, indices, device, batch_size=64) -> np.ndarray:
    """float64 (n, classes): the softmax of each image's centre crop."""
    crop = model.config["input_size"]
    out = []
    for i in range(0, len(indices), batch_size):
        x = network_input(dataset, split, indices[i:i + batch_size], crop, device)
        out.append(ops.softmax(model.forward(x, train=False)).numpy().astype(np.float64))
    return np.concatenate(out)


def nearest_training_images(model, dataset, queries: np.ndarray, k: int, device: str, batch_size: int = 128,
                            progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For each row of `queries` (fc7 features, (n, D)), the k training images whose fc7 features
    are nearest in Euclidean distance: (indices (n, k), distances (n, k)), nearest first, ties
    to the lower index. The whole training split passes through the network in batches on
    `device`; only the k best per query are kept, so memory does not grow with the split."""
    q = queries.astype(np.float64)
    q_sq = (q * q).sum(axis=1)
    best_d = np.empty((len(q), 0))
    best_i = np.empty((len(q), 0), np.int64)
    total, done, t0 = dataset.count("train"), 0, time.perf_counter()
    with Loader(dataset, "train", batch_size, device=device, transform="center",
                crop=model.config["input_size"], shuffle=False, drop_last=False) as loader:
        for step, batch in enumerate(loader.epoch(0), 1):
            f = fc7_features(model, batch.inputs).numpy().astype(np.float64)
            # |f - q|^2 = |f|^2 - 2 f.q + |q|^2, in float64 (far more precision than the float32
            # features carry); clipped at 0 against rounding for (near-)identical vectors.
            d2 = np.maximum((f * f).sum(axis=1)[None, :] - 2.0 * q @ f.T + q_sq[:, None], 0.0)
            # The batches come in index order, so a stable sort keeps ties at the lower index.
            cand_d = np.concatenate([best_d, d2], axis=1)
            cand_i = np.concatenate([best_i, np.broadcast_to(batch.indices, d2.shape)], axis=1)
            keep = np.argsort(cand_d, axis=1, kind="stable")[:, :k]
            best_d, best_i = np.take_along_axis(cand_d, keep, 1), np.take_along_axis(cand_i, keep, 1)
            done += len(batch.indices)
            if progress is not None:
                elapsed = time.perf_counter() - t0
                progress.step(f"fc7 features: {done:,}/{total:,} training images, {done / elapsed:,.0f} img/s, "
                              f"ETA {format_duration(elapsed / done * (total - done))}", step, len(loader))
    if progress is not None:
        progress.line(f"fc7 features of {total:,} training images in {format_duration(time.perf_counter() - t0)}")
    return best_i, np.sqrt(best_d)


# ----------------------------------------------------------------------------- pictures

def _describe(model, meta: dict) -> str:
    epoch = meta.get("epoch")
    return model.name + (f", after {epoch} epoch{'s' if epoch != 1 else ''}" if epoch is not None else "")


def kernel_tiles(weight: np.ndarray) -> np.ndarray:
    """uint8 (K, R, S, 3) display tiles of conv1 weights (K, 3, R, S), each contrast-normalised on
    its own: its mean (over all three colours) shown mid-grey, its largest deviation from the
    mean full black or white. One scale for the three colours keeps a kernel's colour balance."""
    w = weight.astype(np.float64).transpose(0, 2, 3, 1)
    w = w - w.mean(axis=(1, 2, 3), keepdims=True)
    peak = np.abs(w).max(axis=(1, 2, 3), keepdims=True)
    w = 0.5 + 0.5 * w / np.where(peak > 0, peak, 1.0)
    return np.clip(np.round(w * 255), 0, 255).astype(np.uint8)


def _grid_columns(n: int) -> int:
    """Tiles per row for n kernels: a divisor of n (no ragged last row) nearest a 3:1 grid
    (48 -> 12 x 4, as the paper's Figure 3)."""
    return min((c for c in range(1, n + 1) if n % c == 0), key=lambda c: (abs(c - math.sqrt(3 * n)), -c))


def filters_image(model, meta: dict, scale: int = 4, gap: int = 2) -> Image.Image:
    """The conv1 kernels as tiles, the two columns' kernels in two blocks, one above the other,
    as in the paper's Figure 3 (the first half of conv1's outputs feed column 1, the second
    half column 2)."""
    conv1 = next(l for l in model.layers if l.name == "conv1")
    tiles = kernel_tiles(conv1.params["weight"].numpy())
    k, r, s, _ = tiles.shape
    per_column = k // 2
    cols = _grid_columns(per_column)
    rows = per_column // cols
    tw, th = s * scale, r * scale
    block_w, block_h = cols * (tw + gap) - gap, rows * (th + gap) - gap
    label, lh, between = d.font(13), d.line_height(d.font(13)), 14
    title = "conv1 kernels, contrast-normalised each"
    subtitle = f"{_describe(model, meta)}: {k} kernels {r}x{s}x3, {per_column} per column"
    width = 2 * d.MARGIN + max(block_w, d.text_width(title, d.font(17)), d.text_width(subtitle, d.font(12)))
    im, dr, y = d.canvas(width, 2 * (lh + 4 + block_h) + between, title, subtitle)
    x0 = (width - block_w) // 2
    for column in range(2):
        d.text(dr, (x0, y), f"column {column + 1}", label, d.MUTED)
        y += lh + 4
        for i in range(per_column):
            tile = Image.fromarray(tiles[column * per_column + i]).resize((tw, th), Image.NEAREST)
            im.paste(tile, (x0 + i % cols * (tw + gap), y + i // cols * (th + gap)))
        y += block_h + between
    return im


def predictions_image(model, meta: dict, dataset, indices, device: str, cols: int = 4) -> Image.Image:
    """Validation images, each with its true label and a bar chart of the network's five most
    probable labels, the true one's bar in red (the paper's Figure 4, left)."""
    names = class_labels(dataset)
    labels = dataset.labels("val")[indices]
    probs = predict(model, dataset, "val", indices, device)
    crops = center_crops(dataset, "val", indices, model.config["input_size"])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :min(5, probs.shape[1])]
    pics = [d.enlarge(c, 160) for c in crops]
    pic_h = pics[0].height
    cell_w = max(190, pics[0].width)
    f_true, f_bar = d.font(13), d.font(12)
    bar_h, bar_gap = d.line_height(f_bar) + 3, 3
    cell_h = pic_h + 6 + d.line_height(f_true) + 6 + top.shape[1] * (bar_h + bar_gap) - bar_gap
    cols = min(cols, len(indices))
    rows = -(-len(indices) // cols)
    gutter = 24
    width = 2 * d.MARGIN + cols * cell_w + (cols - 1) * gutter
    im, dr, y0 = d.canvas(width, rows * (cell_h + gutter) - gutter, "Top-5 predictions on validation images",
                          f"{_describe(model, meta)}; centre crops; the true label's bar in red")
    pct_w = d.text_width("100%", f_bar)
    for n, (pic, label, order, p) in enumerate(zip(pics, labels, top, probs)):
        x = d.MARGIN + n % cols * (cell_w + gutter)
        y = y0 + n // cols * (cell_h + gutter)
        im.paste(pic, (x + (cell_w - pic.width) // 2, y))
        y += pic_h + 6
        d.text(dr, (x + cell_w / 2, y), d.fit(names[label], f_true, cell_w), f_true, align="center")
        y += d.line_height(f_true) + 6
        for c in order:
            colour = (240, 150, 140) if c == label else (170, 198, 232)
            dr.rectangle((x, y, x + cell_w - 1, y + bar_h - 1), fill=(246, 246, 246))
            if p[c] * cell_w >= 1:
                dr.rectangle((x, y, x + round(p[c] * cell_w) - 1, y + bar_h - 1), fill=colour)
            d.text(dr, (x + 4, y + 1), d.fit(names[c], f_bar, cell_w - pct_w - 12), f_bar)
            d.text(dr, (x + cell_w - 4, y + 1), f"{100 * p[c]:.0f}%", f_bar, d.MUTED, align="right")
            y += bar_h + bar_gap
    return im


def neighbours_image(model, meta: dict, dataset, indices, device: str, k: int = 6, batch_size: int = 128,
                     progress: Progress | None = None) -> Image.Image:
    """Each query validation image, then the k training images whose fc7 feature vectors are
    nearest to its own (the paper's Figure 4, right). A neighbour's label is green where it is
    the query's class, red where not."""
    crop = model.config["input_size"]
    if dataset.count("train") == 0:
        raise UserError(f"{dataset.path}: the training split is empty: there are no neighbours to show")
    names = class_labels(dataset)
    query_labels = dataset.labels("val")[indices]
    train_labels = dataset.labels("train")
    queries = fc7_features(model, network_input(dataset, "val", indices, crop, device)).numpy()
    near, dist = nearest_training_images(model, dataset, queries, k, device, batch_size, progress)
    k = near.shape[1]  # fewer when the training split is smaller than k
    side = d.enlarge(np.zeros((crop, crop, 3), np.uint8), 128).height
    f_lab, f_dist = d.font(12), d.font(10)
    lh = d.line_height(f_lab)
    cell_w, gap, sep, row_gap = max(side, 96), 8, 28, 14
    row_h = side + 4 + lh + d.line_height(f_dist)
    width = 2 * d.MARGIN + cell_w + sep + k * cell_w + (k - 1) * gap
    body = lh + 6 + len(indices) * (row_h + row_gap) - row_gap
    im, dr, y = d.canvas(width, body, "Nearest training images in fc7 space",
                         f"{_describe(model, meta)}; Euclidean distances between the {queries.shape[1]}-d fc7 "
                         f"vectors of centre crops")
    x_near = d.MARGIN + cell_w + sep
    d.text(dr, (d.MARGIN + cell_w / 2, y), "query", f_lab, d.MUTED, align="center")
    d.text(dr, (x_near, y), f"its {k} nearest of {dataset.count('train'):,} training images, nearest first, "
           f"with their distances (green: the query's class)", f_lab, d.MUTED)
    y += lh + 6
    dr.line([(x_near - sep / 2, y), (x_near - sep / 2, y + len(indices) * (row_h + row_gap) - row_gap)],
            fill=d.GRID, width=2)
    query_crops = center_crops(dataset, "val", indices, crop)
    for q in range(len(indices)):
        cells = [(d.MARGIN, query_crops[q], names[query_labels[q]], d.INK, "")]
        train_crops = center_crops(dataset, "train", near[q], crop)
        for j in range(k):
            cls = train_labels[near[q, j]]
            cells.append((x_near + j * (cell_w + gap), train_crops[j], names[cls],
                          d.GREEN if cls == query_labels[q] else d.RED, f"{dist[q, j]:.4g}"))
        for x, image, name, colour, note in cells:
            pic = d.enlarge(image, 128)
            im.paste(pic, (x + (cell_w - pic.width) // 2, y))
            d.text(dr, (x + cell_w / 2, y + side + 4), d.fit(name, f_lab, cell_w), f_lab, colour, align="center")
            d.text(dr, (x + cell_w / 2, y + side + 4 + lh), note, f_dist, d.MUTED, align="center")
        y += row_h + row_gap
    return im


def read_log(run_dir) -> dict:
    """The records of RUN_DIR/log.jsonl: {"epochs": one per finished epoch (the last written,
    should an epoch have been logged twice around a crash), "steps": [...], "final": ... or None}.
    A line still being written by a running trainer, or a record without the numbers drawn, is
    skipped."""
    path = pathlib.Path(run_dir) / LOG_NAME
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise UserError(f"{run_dir}: no {LOG_NAME}, so not a training run directory") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e.strerror or e})") from None
    epochs, steps, final = {}, [], None
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(rec, dict):
            continue
        if rec.get("event") == "epoch":
            if all(isinstance(rec.get(key), (int, float)) for key in EPOCH_FIELDS):
                epochs[rec["epoch"]] = rec
        elif rec.get("event") == "step":
            if all(isinstance(rec.get(key), (int, float)) for key in ("epoch", "step", "loss")):
                steps.append(rec)
        elif rec.get("event") == "final":
            final = rec
    return {"epochs": [epochs[e] for e in sorted(epochs)], "steps": steps, "final": final}


def _run_config(run_dir) -> dict:
    try:
        return json.loads((pathlib.Path(run_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return {}


def _steps_per_epoch(train_config: dict):
    """Steps per epoch of a run, from its dataset; None when that cannot be read any more."""
    try:
        count = PreparedDataset(train_config["data_root"]).count("train")
        bs = int(train_config["batch_size"])
    except (KeyError, TypeError, ValueError, OSError):
        return None
    return count // bs if train_config.get("drop_last", True) else -(-count // bs)


def curves_image(run_dir, width: int = 1100, height: int = 470) -> Image.Image:
    """Training and validation loss and top-1/top-5 error per epoch, with the learning-rate
    drops marked, from a run's log (which may still be growing). Within and before the first
    epoch, the logged per-step training losses are drawn as a thin line."""
    log = read_log(run_dir)
    cfg = _run_config(run_dir)
    train_cfg = cfg.get("train", {})
    epochs, final = log["epochs"], log["final"]
    spe = _steps_per_epoch(train_cfg) if log["steps"] else None
    steps = [(r["epoch"] - 1 + r["step"] / spe, r["loss"]) for r in log["steps"] if spe and math.isfinite(r["loss"])]
    if not epochs and not steps:
        raise UserError(f"{pathlib.Path(run_dir) / LOG_NAME}: no epoch has finished yet; try again after the first")
    planned = train_cfg.get("epochs")
    done = epochs[-1]["epoch"] if epochs else 0
    title = (f"Training of {pathlib.Path(run_dir).resolve().name}: {done}" + (f" of {planned}" if planned else "")
             + f" epochs ({'finished' if final else 'in progress or stopped'})")
    bits = []
    if isinstance(train_cfg.get("lr"), (int, float)):
        bits.append(f"batch {train_cfg.get('batch_size')}, lr {train_cfg['lr']:g}")
    if final and final.get("val_top1_error_10crop") is not None:
        bits.append(f"final validation error, 10 crops: top-1 {100 * final['val_top1_error_10crop']:.1f}%, "
                    f"top-5 {100 * final['val_top5_error_10crop']:.1f}%")
    elif epochs:
        bits.append(f"last validation error: top-1 {100 * epochs[-1]['val_top1_error']:.1f}%, "
                    f"top-5 {100 * epochs[-1]['val_top5_error']:.1f}%")
    s = 2  # drawn at twice the size, then reduced: smooth lines
    small = d.font(12 * s)
    legend_h = d.line_height(small) + 16 * s
    im, dr, top = d.canvas(width * s, height * s - d.header_height(s) - d.MARGIN * s, title, "; ".join(bits), s)
    bottom = im.height - d.MARGIN * s - legend_h
    xs = [r["epoch"] for r in epochs]
    xmax = max([1.0] + xs + [x for x, _ in steps])
    split = width * s // 2
    losses = [v for r in epochs for v in (r["train_loss"], r["val_loss"])] + [v for _, v in steps]
    errors = [100 * r[f"{a}_{t}_error"] for r in epochs for a in ("train", "val") for t in ("top1", "top5")]
    loss = d.Panel(dr, (d.MARGIN * s, top, split - 20 * s, bottom), (0, xmax), (0, max(losses) * 1.05),
                   "loss (cross-entropy)", "epoch", s)
    err = d.Panel(dr, (split + 20 * s, top, width * s - d.MARGIN * s, bottom), (0, xmax),
                  (0, min(100.0, max(errors + [1.0]) * 1.05)), "error (%)", "epoch", s)
    for r in epochs:
        if r.get("lr_dropped"):
            for panel in (loss, err):
                panel.vline(r["epoch"], d.MUTED, f"lr {r['lr'] / 10:g}")
    if steps:
        loss.line([x for x, _ in steps], [v for _, v in steps], STEP_BLUE, width=1)
    dots = len(epochs) <= 30
    for key, colour in (("train", d.BLUE), ("val", d.ORANGE)):
        loss.line(xs, [r[f"{key}_loss"] for r in epochs], colour, dots=dots)
        err.line(xs, [100 * r[f"{key}_top1_error"] for r in epochs], colour, dots=dots)
        err.line(xs, [100 * r[f"{key}_top5_error"] for r in epochs], colour, dashed=True, dots=dots)
    entries = [("training", d.BLUE, "line")] + ([("training, per step", STEP_BLUE, "thin")] if steps else []) + [
        ("validation", d.ORANGE, "line"), ("top-1", d.MUTED, "line"), ("top-5", d.MUTED, "dashed")]
    if any(r.get("lr_dropped") for r in epochs):
        entries.append(("learning rate divided by 10", d.MUTED, "marker"))
    d.legend(dr, entries, im.width / 2, im.height - d.MARGIN * s - d.line_height(small), s)
    return im.resize((width, height), Image.LANCZOS)


# ----------------------------------------------------------------------------- command line

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
        image = curves_image(run_dir)
    else:
        device = "cpu" if args.command == "filters" else resolve_device(args.device)
        model, meta, path = open_checkpoint(args.CKPT, device)
        out = _out_path(args, path.parent)
        if args.command == "filters":
            image = filters_image(model, meta)
        else:
            dataset = open_data(args.data, meta, model)
            indices = pick(dataset.count("val"), args.n, args.seed)
            if args.command == "predictions":
                image = predictions_image(model, meta, dataset, indices, device)
            else:
                image = neighbours_image(model, meta, dataset, indices, device, batch_size=args.batch_size,
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
