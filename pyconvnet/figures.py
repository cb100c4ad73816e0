"""The pictures of python -m pyconvnet.show, drawn with Pillow (pyconvnet.draw): conv1 filters
(the paper's Figure 3), top-5 predictions and fc7 nearest neighbours (Figure 4), training curves."""
from __future__ import annotations

import math
import pathlib

import numpy as np
from PIL import Image

from . import draw as d
from .console import Progress
from .dataset import PreparedDataset
from .errors import UserError
from .inference import center_crops, fc7_features, nearest_training_images, network_input, predict
from .rundir import LOG_NAME, read_config, read_log

STEP_BLUE = (160, 195, 225)  # the per-step training losses: the training colour, lighter


def class_labels(dataset: PreparedDataset) -> list:
    """A short display name per class: the first of a synset's comma-separated names ("tench,
    Tinca tinca" -> "tench"), else the synset (the class folder's name)."""
    out = []
    for i, c in enumerate(dataset.classes):
        name = (c.get("name") or c.get("synset") or f"class {i}").split(",")[0].strip()
        out.append(d.plain(name))
    return out


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
    cfg = read_config(run_dir)
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
