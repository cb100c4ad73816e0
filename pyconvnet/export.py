"""python -m pyconvnet.export CKPT --onnx FILE: a checkpoint's evaluation network as an ONNX model,
for onnxruntime or any other ONNX runtime.

    python -m pyconvnet.export runs/DATE --onnx alexnet.onnx
    python -m pyconvnet.export runs/DATE/checkpoint.npz --onnx alexnet.onnx --data ~/imagenet-256

The model (opset 17) takes float32 (N, 3, C, C) crops as the network sees them (RGB on the
0..255 scale minus the training set's mean image, channels first; C the crop size, N free) and
returns the class probabilities (N, classes): the grouped convolutions as Conv with group=2,
each column's LRN as its own LRN node, the overlapping 3x3/2 max-pools as MaxPool, the
fully-connected layers as Gemm, then Softmax; dropout is the identity at evaluation and left
out. Its metadata holds what a consumer needs to preprocess an image exactly as pyconvnet does:
the class names, the prepared size, the crop size, the resampling filter, the mean image and its
per-channel mean.

Needs the onnx package: pip install ".[onnx]" in the pyconvnet source tree (which also brings
onnxruntime), or pip install onnx.
"""
from __future__ import annotations

import argparse
import base64
import json
import pathlib
import sys

import numpy as np

from . import __version__
from .console import HelpFormatter, UserError, run_command
from .files import atomic_write
from .layers import LRN, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU
from .preprocess import Preprocessing

OPSET = 17
INPUT, OUTPUT = "input", "probabilities"


def _onnx():
    try:
        import onnx
    except ImportError:
        raise UserError('exporting to ONNX needs the onnx package: pip install ".[onnx]" in the pyconvnet '
                        "source tree (or pip install onnx)") from None
    return onnx


def metadata(pre: Preprocessing, class_names: list) -> dict:
    """The model's metadata_props: how to make its input from an image file, and what its
    outputs mean. Every value is a string (JSON for lists, base64 for the mean image)."""
    mean = np.ascontiguousarray(pre.mean, "<f4")
    return {
        "classes": json.dumps(list(class_names)),
        "image_size": str(pre.size),
        "crop_size": str(pre.crop),
        "resample": pre.resample,
        "mean_rgb": json.dumps([float(v) for v in mean.astype(np.float64).mean(axis=(0, 1))]),
        "mean_image": base64.b64encode(mean.tobytes()).decode("ascii"),
        "mean_image_shape": json.dumps(list(mean.shape)),
        "preprocessing": (
            "EXIF orientation applied; converted to 8-bit RGB; short side resized to image_size with "
            "Pillow's `resample` filter, the long side rounded half up; the central image_size square kept "
            "(offset (new - image_size) // 2); minus mean_image (float32 little-endian, height x width x RGB, "
            "base64); the central crop_size square (offset (image_size - crop_size) // 2), as channels x "
            "height x width. mean_rgb is the mean image's per-channel mean."),
    }


def onnx_model(model, pre: Preprocessing, class_names: list):
    """The ONNX ModelProto of `model` (a pyconvnet Sequential) at evaluation: its input the
    crops `pre` makes, its output the softmax of the last layer, `pre` and the class names in its
    metadata."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    if pre.crop != model.input_shape[1]:
        raise ValueError(f"onnx_model: the preprocessing's crop {pre.crop} is not the network's input "
                         f"side {model.input_shape[1]}")
    nodes, weights = [], []

    def param(layer, name):
        weights.append(numpy_helper.from_array(layer.params[name].numpy(), f"{layer.name}.{name}"))
        return f"{layer.name}.{name}"

    x = INPUT
    for layer in model.layers:
        y = layer.name
        if isinstance(layer, Conv2d):
            (ph, pw) = layer.padding
            nodes.append(helper.make_node("Conv", [x, param(layer, "weight"), param(layer, "bias")], [y], y,
                                          kernel_shape=list(layer.kernel), strides=list(layer.stride),
                                          pads=[ph, pw, ph, pw], group=layer.groups))
        elif isinstance(layer, Linear):
            nodes.append(helper.make_node("Gemm", [x, param(layer, "weight"), param(layer, "bias")], [y], y, transB=1))
        elif isinstance(layer, ReLU):
            nodes.append(helper.make_node("Relu", [x], [y], y))
        elif isinstance(layer, LRN):
            # ONNX's LRN sums over channels c - floor((size-1)/2) .. c + ceil((size-1)/2) and
            # divides alpha by size: pyconvnet's window c - size//2 .. c + size//2, as its size is
            # always odd (ops.lrn requires it). A column normalises over its own channels.
            kw = layer.kw
            lrn = dict(size=kw["size"], alpha=kw["alpha"], beta=kw["beta"], bias=kw["k"])
            if kw["groups"] == 1:
                nodes.append(helper.make_node("LRN", [x], [y], y, **lrn))
            else:
                parts = [f"{y}.column{g + 1}" for g in range(kw["groups"])]
                nodes.append(helper.make_node("Split", [x], parts, f"{y}.split", axis=1))
                nodes += [helper.make_node("LRN", [p], [f"{p}.lrn"], f"{p}.lrn", **lrn) for p in parts]
                nodes.append(helper.make_node("Concat", [f"{p}.lrn" for p in parts], [y], y, axis=1))
        elif isinstance(layer, MaxPool2d):
            nodes.append(helper.make_node("MaxPool", [x], [y], y, kernel_shape=[layer.kernel] * 2,
                                          strides=[layer.stride] * 2))
        elif isinstance(layer, Flatten):
            nodes.append(helper.make_node("Flatten", [x], [y], y, axis=1))
        elif isinstance(layer, Dropout):
            continue  # the identity at evaluation
        else:
            raise ValueError(f"onnx_model: no ONNX form for layer {layer.name} ({type(layer).__name__})")
        x = y
    nodes.append(helper.make_node("Softmax", [x], [OUTPUT], "softmax", axis=1))
    classes = model.config["num_classes"]
    graph = helper.make_graph(
        nodes, model.name, [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", *model.input_shape])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", classes])], weights,
        doc_string=f"{model.name}: float32 (N, {', '.join(map(str, model.input_shape))}) mean-subtracted crops "
                   f"-> probabilities (N, {classes})")
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="pyconvnet", producer_version=__version__,
                              doc_string=f"{model.name} exported by pyconvnet {__version__}")
    helper.set_model_props(proto, metadata(pre, class_names))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def write(proto, path) -> pathlib.Path:
    """Writes the model to `path` whole (files.atomic_write)."""
    path = pathlib.Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, lambda f: f.write(proto.SerializeToString()))
    except OSError as e:
        raise UserError(f"--onnx {path}: cannot write it ({e.strerror or e})") from None


# ----------------------------------------------------------------------------- command line

def parser() -> argparse.ArgumentParser:
    paragraphs = __doc__.split("\n\n")
    p = argparse.ArgumentParser(prog="python -m pyconvnet.export", description="\n\n".join(paragraphs[:2]),
                                epilog="\n\n".join(paragraphs[2:]), formatter_class=_Formatter)
    p.add_argument("checkpoint", metavar="CKPT", help="a checkpoint file, or the run directory holding checkpoint.npz")
    p.add_argument("--onnx", metavar="FILE", required=True, help="the ONNX file to write")
    p.add_argument("--data", metavar="DIR", help="the prepared dataset (or image tree) whose mean image and "
                   "classes go into the metadata (default: the one the checkpoint was trained on)")
    return p


class _Formatter(HelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def run(argv=None, out=None) -> pathlib.Path:
    """Exports one checkpoint, reports it on `out` (default: stdout); returns the file's path."""
    from .inference import load_model, open_data

    args = parser().parse_args(argv)
    _onnx()  # before loading anything: say at once what is missing
    model, meta, _ = load_model(args.checkpoint)
    dataset = open_data(args.data, meta, model)
    pre = Preprocessing.of(dataset, model.config["input_size"])
    path = write(onnx_model(model, pre, dataset.class_names()), args.onnx)
    size = path.stat().st_size / 2 ** 20
    print(f"{path}: {model.name}, ONNX opset {OPSET}; input float32 (N, 3, {pre.crop}, {pre.crop}), output "
          f"probabilities of {model.config['num_classes']} classes; {size:.1f} MiB", file=out or sys.stdout)
    return path


def main(argv=None) -> int:
    return run_command(run, argv)[0]


if __name__ == "__main__":
    sys.exit(main())
