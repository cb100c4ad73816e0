"""Running a trained network: load it from a checkpoint, predict class probabilities of images
(centre crop, or the ten crops averaged), and its fc7 features (the nearest training images of a
query in feature space).

    model, meta, path = load_model("runs/DATE", device="cuda")     # a run directory or a checkpoint
    data = open_data(None, meta, model)                           # the dataset it was trained on
    probs = predict(model, data, "val", np.arange(8), "cuda", ten_crop=True)
"""
from __future__ import annotations

import pathlib
import sys
import time

import numpy as np

from . import checkpoint, ops
from .console import Progress, format_duration
from .data import prepared_path
from .dataset import PreparedDataset
from .errors import UserError
from .loader import Loader
from .models import Sequential, from_config
from .preprocess import Preprocessing
from .rundir import checkpoint_path

FEATURE_LAYER = "relu7"  # fc7 after its ReLU; drop7 that follows is the identity at test time


def load_model(arg, device: str = "cpu") -> tuple[Sequential, dict, pathlib.Path]:
    """(model on `device`, checkpoint meta, checkpoint path) from a checkpoint file or a run
    directory holding one; a CheckpointError (a UserError) when it is not a usable checkpoint."""
    path = checkpoint_path(arg)
    arrays, meta = checkpoint.load(path)
    checkpoint.check_model_meta(path, meta)
    try:
        model = from_config(meta["model_config"])
    except (ValueError, TypeError) as e:
        raise checkpoint.CheckpointError(f"checkpoint {path}: not a model checkpoint of this pyconvnet ({e})") from None
    weights = {k: v for k, v in arrays.items() if k.startswith("model/")}
    checkpoint.check_arrays(path, weights, model.param_shapes())
    model.to(device).load_state_dict(model_state(arrays))
    return model, meta, path


def model_state(arrays: dict) -> dict:
    """The model's weights among a checkpoint's arrays (stored as "model/<layer>.<param>")."""
    return {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}


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


def pick(count: int, n: int, seed: int) -> np.ndarray:
    """n distinct indices of [0, count), drawn with `seed`, ascending."""
    if count == 0:
        raise UserError("the dataset has no validation images")
    return np.sort(np.random.default_rng(seed).choice(count, size=min(n, count), replace=False))


def center_crops(dataset: PreparedDataset, split: str, indices, crop: int) -> np.ndarray:
    """uint8 (n, crop, crop, 3): the central crops the network sees (augment.center_params)."""
    o = (dataset.size - crop) // 2
    return np.ascontiguousarray(dataset.images(split)[np.asarray(indices)][:, o:o + crop, o:o + crop])


def network_input(dataset: PreparedDataset, split: str, indices, crop: int, device: str, ten_crop: bool = False):
    """The network input of images `indices`, made on `device` as the Loader makes it: the centre
    crop of each image, or its ten crops (augment.ten_crop_params, ten consecutive rows each)."""
    return Preprocessing.of(dataset, crop).crops(dataset.images(split)[np.asarray(indices)], device, ten_crop)


def fc7_features(model, x):
    """The network's fc7 activations (after ReLU) for input x: float32 (N, fc7 width), on x's device."""
    if getattr(model, "columns", None) is not None:
        raise ValueError(f"{model.name}: fc7 features come from a network on one device; it is in two columns "
                         f"on {' and '.join(model.columns.devices)} (model.to(device) joins them)")
    for layer in model.layers:
        x = layer.forward(x, train=False)
        if layer.name == FEATURE_LAYER:
            return x
    raise ValueError(f"{model.name} has no layer {FEATURE_LAYER!r}")


def probabilities(model, x, repeats: int = 1) -> np.ndarray:
    """float64 (n, classes): the softmax of the network's output for input x (n * repeats crops,
    the crops of each image consecutive), averaged over each image's `repeats` crops."""
    probs = ops.softmax(model.forward(x, train=False)).numpy().astype(np.float64)
    return probs.reshape(-1, repeats, probs.shape[1]).mean(axis=1)


def predict(model, dataset, split, indices, device, batch_size=64, ten_crop: bool = False) -> np.ndarray:
    """float64 (n, classes): class probabilities of images `indices` of `split`: the softmax of the
    centre crop, or averaged over the ten crops (ten_crop) as in the paper's test procedure."""
    pre = Preprocessing.of(dataset, model.config["input_size"])
    return predict_images(model, pre, dataset.images(split)[np.asarray(indices)], device, ten_crop, batch_size)


def predict_images(model, pre: Preprocessing, images, device: str, ten_crop: bool = False,
                   batch_size: int = 64) -> np.ndarray:
    """float64 (n, classes): class probabilities of uint8 images (n, S, S, 3) as prepared (an
    image file: pre.load), cut by `pre` into the centre crop or the ten crops, batch_size crops
    per forward pass on `device`."""
    repeats = 10 if ten_crop else 1
    per_batch = max(1, batch_size // repeats)
    out = [probabilities(model, pre.crops(images[i:i + per_batch], device, ten_crop), repeats)
           for i in range(0, len(images), per_batch)]
    return np.concatenate(out) if out else np.empty((0, model.config["num_classes"]))


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
