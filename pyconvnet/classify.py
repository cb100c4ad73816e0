"""python -m pyconvnet.classify CKPT IMAGE_OR_FOLDER...: the five most probable classes of each
image, with their probabilities.

    python -m pyconvnet.classify runs/DATE photo.jpg                 top-5 of one photo
    python -m pyconvnet.classify runs/DATE/checkpoint.npz photos/    every image under a folder
    python -m pyconvnet.classify runs/DATE photos/ --centre --json   one crop each, JSON lines

Each image is preprocessed exactly as the training pipeline does it: decoded and resized as
pyconvnet.prepare resized the training images (short side to the prepared size, the central
square), then the network's crops with the training set's mean image subtracted. The softmax is
averaged over the ten crops of the paper's test procedure (the four corners and the centre, and
their reflections), or taken of the centre crop alone with --centre. A folder stands for the
image files beneath it (Pillow's file extensions; hidden files skipped), in name order.

Output: a line per image, "FILE: CLASS P%, ..." (the most probable first; a class's first name);
with --json a JSON object per line, {"file", "top": [{"index", "name", "probability"}, ...]}. A
file that cannot be read is one line too ("FILE: skipped: REASON" on stderr, or {"file",
"error"} with --json) and the others are still classified; the exit status is then 1 (2 when
nothing could be classified).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

import numpy as np
from PIL import Image

from ._C import OutOfMemoryError
from .console import HelpFormatter, UserError, positive_int, resolve_device, run_command
from .inference import load_model, open_data, predict_images
from .preprocess import Preprocessing
from .prepare import skip_reason

TOP = 5


def image_files(paths) -> list:
    """The files to classify: each file as given, and for each folder the files beneath it with
    an image extension Pillow knows (hidden files and folders left out), sorted by path."""
    extensions = {e.lower() for e in Image.registered_extensions()}
    files = []
    for arg in paths:
        path = pathlib.Path(arg)
        if not path.is_dir():
            files.append(path)  # a missing or unreadable file becomes its own skip line
            continue
        found = []
        for root, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [pathlib.Path(root, n) for n in names
                      if not n.startswith(".") and pathlib.Path(n).suffix.lower() in extensions]
        if not found:
            raise UserError(f"{arg}: no image files in this folder (looked for {', '.join(sorted(extensions)[:6])}, ...)")
        files += sorted(found)
    return files


def classify(model, pre: Preprocessing, files, device: str, ten_crop: bool = True, batch_size: int = 128):
    """For each file, in order: (file, probabilities float64 (classes,)) or (file, skip reason)
    for a file that cannot be read. Files are decoded a forward pass's worth at a time."""
    step = max(1, batch_size // (10 if ten_crop else 1))
    for i in range(0, len(files), step):
        loaded, results = [], []
        for f in files[i:i + step]:
            try:
                loaded.append(pre.load(f))
                results.append((f, None))
            except Exception as e:  # every way a file can fail is one skip line (prepare's reasons)
                results.append((f, skip_reason(str(f), e)))
        probs = iter(predict_images(model, pre, np.stack(loaded), device, ten_crop, batch_size) if loaded else [])
        for f, reason in results:
            yield (f, reason) if reason is not None else (f, next(probs))


def top_classes(probs: np.ndarray, names: list, k: int = TOP) -> list:
    """[{"index", "name", "probability"}] of the k most probable classes, most probable first
    (ties to the lower index)."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"index": int(c), "name": names[c], "probability": float(probs[c])} for c in order]


# ----------------------------------------------------------------------------- command line

def _short(name: str) -> str:
    """The first of a class's comma-separated names ("tench, Tinca tinca" -> "tench")."""
    return name.split(",")[0].strip() or name

class _Formatter(HelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def parser() -> argparse.ArgumentParser:
    paragraphs = __doc__.split("\n\n")
    p = argparse.ArgumentParser(prog="python -m pyconvnet.classify", description="\n\n".join(paragraphs[:2]),
                                epilog="\n\n".join(paragraphs[2:]), formatter_class=_Formatter)
    p.add_argument("checkpoint", metavar="CKPT", help="a checkpoint file, or the run directory holding checkpoint.npz")
    p.add_argument("images", metavar="IMAGE_OR_FOLDER", nargs="+", help="image files, or folders of them")
    p.add_argument("--centre", "--center", action="store_true", help="the centre crop alone instead of 10 crops")
    p.add_argument("--json", action="store_true", help="a JSON object per image instead of text")
    p.add_argument("--data", metavar="DIR", help="the prepared dataset (or image tree) whose mean image and class "
                   "names to use (default: the one the checkpoint was trained on)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=positive_int, default=128, help="crops per forward pass")
    return p


def run(argv=None, out=None, err=None) -> int:
    """Classifies the images, printing to `out` and `err` (default: stdout and stderr); returns
    the exit status (0, or 1 if some file was skipped)."""
    out, err = out or sys.stdout, err or sys.stderr
    args = parser().parse_args(argv)
    files = image_files(args.images)
    device = resolve_device(args.device)
    model, meta, _ = load_model(args.checkpoint, device)
    dataset = open_data(args.data, meta, model)
    pre = Preprocessing.of(dataset, model.config["input_size"])
    names = dataset.class_names()
    skipped = 0
    try:
        for f, result in classify(model, pre, files, device, not args.centre, args.batch_size):
            if isinstance(result, str):
                skipped += 1
                if args.json:
                    print(json.dumps({"file": str(f), "error": result}), file=out, flush=True)
                else:
                    print(f"{f}: skipped: {result}", file=err, flush=True)
                continue
            top = top_classes(result, names)
            if args.json:
                print(json.dumps({"file": str(f), "top": top}), file=out, flush=True)
            else:
                print(f"{f}: " + ", ".join(f"{_short(t['name'])} {100 * t['probability']:.1f}%" for t in top),
                      file=out, flush=True)
    except OutOfMemoryError as e:
        raise UserError(f"out of GPU memory with --batch-size {args.batch_size}: try a smaller one ({e})") from None
    if skipped == len(files):
        raise UserError(f"none of the {len(files)} file(s) could be read as an image")
    return 1 if skipped else 0


def main(argv=None) -> int:
    code, status = run_command(run, argv)
    return status if code == 0 else code


if __name__ == "__main__":
    sys.exit(main())
