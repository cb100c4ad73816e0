"""What the trainer and the evaluator need from a dataset: train and evaluation batches on a
device, from a prepared directory (pyconvnet.prepare), an image tree (prepared first) or the
built-in dataset (generated first)."""
from __future__ import annotations

import hashlib
import pathlib
import sys

from .dataset import MANIFEST, PreparedDataset
from .distributed import SINGLE
from .errors import UserError
from .loader import Loader


class TrainingData:
    """A prepared dataset with the loaders one training run needs. With a group of several ranks
    (pyconvnet.distributed) every batch yields only this rank's part."""

    def __init__(self, root, crop_size: int, seed: int, device: str, group=SINGLE):
        try:
            self.dataset = PreparedDataset(root)
        except (FileNotFoundError, ValueError) as e:
            raise UserError(str(e)) from None
        self.root = pathlib.Path(self.dataset.path)
        self.crop = int(crop_size)
        if not 1 <= self.crop <= self.dataset.size:
            raise UserError(f"crop size {self.crop} does not fit the {self.dataset.size}x{self.dataset.size} "
                            f"images of {self.root}")
        self.seed, self.device, self.group = int(seed), device, group
        self.num_classes = self.dataset.num_classes
        self.class_names = self.dataset.class_names()
        for split in ("train", "val"):
            if self.dataset.count(split) == 0:
                raise UserError(f"{self.root}: the {split} split is empty (training needs both; prepare with a "
                                f"val/ folder or --val-fraction > 0)")
        self._loaders = {}
        self._open = []  # epoch iterators handed out, closed by close()

    def describe(self) -> str:
        d = self.dataset
        return (f"{d.num_classes} classes, {d.count('train'):,} train / {d.count('val'):,} val images "
                f"at {d.size}x{d.size}, {self.crop}x{self.crop} crops, from {self.root}")

    def _loader(self, split, batch_size, transform, drop_last=None):
        key = (split, batch_size, transform, drop_last)
        if key not in self._loaders:
            self._loaders[key] = Loader(self.dataset, split, batch_size, device=self.device, transform=transform,
                                        crop=self.crop, seed=self.seed, drop_last=drop_last,
                                        shard=(self.group.rank, self.group.size))
        return self._loaders[key]

    def steps_per_epoch(self, batch_size: int, drop_last: bool) -> int:
        n = len(self._loader("train", batch_size, "train", drop_last))
        if n == 0:
            raise UserError(f"batch size {batch_size} is larger than the {self.dataset.count('train')} training "
                            f"images and the last partial batch is dropped: use a smaller --batch-size or --no-drop-last")
        return n

    def train_rows(self, batch_size: int, drop_last: bool, step: int) -> tuple[int, int, int]:
        """(first, stop, rows): this rank's rows [first, stop) of the batch of `rows` of `step`."""
        return self._loader("train", batch_size, "train", drop_last).rows(step)

    def _batches(self, loader, epoch, start_step=0):
        """loader.epoch(...), remembered so that close() can end it if its consumer stopped early
        (an exception in the training step, Ctrl-C)."""
        it = loader.epoch(epoch, start_step)
        self._open.append(it)
        return it

    def train_batches(self, batch_size: int, epoch: int, start_step: int, drop_last: bool):
        """(inputs, labels, host labels) of steps start_step.. of `epoch`, augmented on the device."""
        for b in self._batches(self._loader("train", batch_size, "train", drop_last), epoch, start_step):
            yield b.inputs, b.labels, b.labels_host

    def eval_batches(self, split: str, batch_size: int, ten_crop: bool = False):
        """(inputs, host labels, crops per image): the centre crop, or the ten crops of each image
        (4 corners + centre and their reflections), grouped per image."""
        if self.dataset.count(split) == 0:
            return
        repeats = 10 if ten_crop else 1
        bs = max(1, batch_size // repeats)
        for b in self._batches(self._loader(split, bs, "ten" if ten_crop else "center"), 0):
            if len(b.labels_host):  # a rank's part of a batch may be empty
                yield b.inputs, b.labels_host, repeats

    def close(self):
        for it in self._open:
            it.close()  # a generator that already finished ignores this
        self._open = []
        for loader in self._loaders.values():
            loader.close()
        self._loaders = {}


def prepared_path(data: str | None, image_size: int, out=sys.stdout) -> str:
    """The prepared directory for --data: the built-in dataset when None, a prepared directory as
    is, an image tree prepared (once) into the cache."""
    from . import prepare, synthetic
    if data is None:
        try:
            return synthetic.ensure_dataset(size=image_size)
        except (prepare.PrepareError, OSError) as e:
            raise UserError(f"the built-in dataset could not be made: {e}") from None
    path = pathlib.Path(data).expanduser()
    if not path.exists():
        raise UserError(f"--data {data}: no such directory")
    if not path.is_dir():
        raise UserError(f"--data {data}: not a directory")
    if (path / MANIFEST).is_file():
        return str(path)
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    target = pathlib.Path(synthetic.cache_dir()) / "prepared" / f"{path.resolve().name}-{digest}-{image_size}"
    print(f"{data} is an image tree: preparing it once into {target}", file=out)
    try:
        prepare.prepare(str(path), str(target), size=image_size)
    except (prepare.PrepareError, OSError) as e:
        raise UserError(f"--data {data}: {e}") from None
    return str(target)


def open_dataset(data, config: dict, out=sys.stdout, group=SINGLE) -> TrainingData:
    """The training data of a run; the data is prepared (or generated) by rank 0 alone while the
    other ranks wait."""
    root = group.on_root(lambda: prepared_path(data, config["image_size"], out))
    return TrainingData(root, config["crop_size"], config["seed"], config["device"], group)
