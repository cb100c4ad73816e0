"""Batches of a prepared dataset for a device, prefetched in the background.

    data = PreparedDataset("~/data/imagenet-prepared")
    with Loader(data, "train", batch_size=128, device="cuda", seed=1) as loader:
        for epoch in range(90):
            for batch in loader.epoch(epoch):      # loader.epoch(epoch, start_step) to resume
                logits = net(batch.inputs)        # float32 (128, 3, 224, 224) on the device
                loss = cross_entropy(logits, batch.labels)

What happens per batch, on a background thread, `prefetch` batches ahead of the training loop:
1. the batch's image indices: step s of epoch e takes positions [s*B, (s+1)*B) of the epoch's
   order (a Philox-keyed permutation of the split from (seed, e) when shuffling, else 0..N-1),
   sorted ascending so that reads go forward through the file;
2. the images are read with pread() (several threads) straight from the .npy file into a staging
   slot's host buffer: page-locked memory for a CUDA device, so that
3. the copy to the device runs asynchronously on a copy stream, overlapping the kernels of the
   training step in flight (csrc/staging.h); the augmentation parameters are drawn meanwhile;
4. when the training loop takes the batch, its op stream waits for the copy (on the GPU, not the
   host: the step in flight is never held up by the copy) and the augmentation kernel
   (pyconvnet.ops.augment) turns the uint8 batch into the float32 input on the device: random
   crop, reflection and PCA lighting for "train" (draws: pyconvnet.augment), the centre crop for
   "center", the ten crops for "ten" (10 outputs per image), or a uint8 copy for "none"; the
   labels are copied out of the slot the same way, and kept on the host too. (On the CPU the
   background thread does this step too.)
The training loop receives tensors of its own (never the slot's buffers), so a batch stays valid
for as long as it is kept. With shard=(rank, ranks) the loader yields only rank's part of each
batch (pyconvnet.distributed.share: a contiguous run of the sorted indices); the parts of all
ranks together are the batch of one loader, augmented alike (the draws depend on the image and
the epoch alone). Everything the batch contains is a function of (seed, epoch, step):
loader.epoch(e, start_step=s) yields exactly the batches s, s+1, ... of an uninterrupted epoch e.

`wait_seconds` counts the time the training loop spent waiting for a batch; with the data in the
page cache it stays near zero (benchmarks/bench_loader.py measures it).
"""
from __future__ import annotations

import concurrent.futures
import operator
import os
import queue
import threading
import time
from typing import NamedTuple

import numpy as np

from . import _C, augment
from .dataset import PreparedDataset
from .distributed import share
from .tensor import tensor

TRANSFORMS = ("train", "center", "ten", "none")


class Batch(NamedTuple):
    inputs: object       # Tensor: float32 (B * repeats, 3, crop, crop), or uint8 (B, S, S, 3) for "none"
    labels: object       # Tensor: int32 (B,), on the device
    indices: np.ndarray  # int64 (B,): the images' indices in the split
    epoch: int
    step: int
    labels_host: np.ndarray  # int32 (B,): the same labels, as read (no copy back from the device)
    first_row: int = 0   # the position of this part in the whole batch (0 unless sharded)
    batch_rows: int = 0  # the rows of the whole batch


class _Failure:
    def __init__(self, exc):
        self.exc = exc


class _Slot:
    """A staging slot of the ring and whether the loader may refill it: `free` is set once the
    consumer has released it (or it was never handed over)."""

    def __init__(self, slot):
        self.slot = slot
        self.free = threading.Event()
        self.free.set()


class _Uploaded(NamedTuple):
    """A batch whose copy to the device is in flight: what the consumer needs to finish it."""
    entry: _Slot
    indices: np.ndarray
    epoch: int
    step: int
    labels_host: np.ndarray
    params: object  # augment.Params, or None for "none"
    first_row: int
    batch_rows: int


class Loader:
    """Iterates over the batches of one split of a prepared dataset (see the module docstring).

    transform: "train" (default for the train split), "center" (default otherwise), "ten", "none".
    crop: the input size (default 7/8 of the prepared size: 224 for 256). shuffle: default True
    for "train". drop_last: drop the last partial batch (default: when shuffling). lighting_std:
    the std of the PCA lighting alphas (0 switches lighting off). prefetch: batches prepared ahead.
    """

    def __init__(self, data, split="train", batch_size=128, *, device="cpu", transform=None,
                 crop=None, seed=0, shuffle=None, drop_last=None, lighting_std=augment.LIGHTING_STD,
                 prefetch=2, read_threads=4, shard=(0, 1)):
        self.data = data if isinstance(data, PreparedDataset) else PreparedDataset(data)
        self.split = split
        self.count = self.data.count(split)
        self.size = self.data.size
        self.transform = transform or ("train" if split == "train" else "center")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"Loader: transform must be one of {TRANSFORMS}; got {self.transform!r}")
        self.crop = self.size * 7 // 8 if crop is None else int(crop)
        if not 1 <= self.crop <= self.size:
            raise ValueError(f"Loader: crop must be in [1, {self.size}] (the prepared size); got {crop}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"Loader: batch_size must be a positive integer; got {batch_size!r}")
        if prefetch < 1:
            raise ValueError(f"Loader: prefetch must be >= 1; got {prefetch}")
        rank, ranks = shard
        if not 0 <= rank < ranks:
            raise ValueError(f"Loader: shard must be (rank, ranks) with 0 <= rank < ranks; got {shard!r}")
        self.batch_size = batch_size
        self.shard = (int(rank), int(ranks))
        self.device = device
        self._on_device = str(device).startswith("cuda")
        self.seed = int(seed)
        self.shuffle = self.transform == "train" if shuffle is None else bool(shuffle)
        self.drop_last = self.shuffle if drop_last is None else bool(drop_last)
        self.lighting_std = float(lighting_std)
        self.prefetch = int(prefetch)
        self.wait_seconds = 0.0  # time the consumer spent blocked waiting for batches
        self._labels = self.data.labels(split)
        images = self.data.images(split)
        self._file, self._offset = images.filename, images.offset
        self._image_bytes = self.size * self.size * 3
        del images
        self._fd = os.open(self._file, os.O_RDONLY)
        self._read_threads = int(read_threads)
        self._readers = concurrent.futures.ThreadPoolExecutor(read_threads) if read_threads > 1 else None
        self._mean = tensor(self.data.mean, device) if self.transform != "none" else None
        # batch size -> a ring of prefetch + 2 staging slots: `prefetch` queued, one being
        # filled, one whose batch the consumer is finishing
        self._slots = {}
        self._active = False

    # ------------------------------------------------------------------ what each step holds

    def __len__(self):
        """Steps per epoch."""
        n, b = self.count, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def order(self, epoch: int) -> np.ndarray:
        """The split's image indices in the order of `epoch`."""
        if self.shuffle:
            return augment.shuffle(self.seed, epoch, self.count)
        return np.arange(self.count, dtype=np.int64)

    def batch_indices(self, epoch: int, step: int, order=None) -> np.ndarray:
        """The (sorted) image indices of step `step` of `epoch` (this shard's part of them)."""
        order = self.order(epoch) if order is None else order
        b = self.batch_size
        first, stop, _ = self.rows(step)
        return np.sort(order[step * b:(step + 1) * b]).astype(np.int64)[first:stop]

    def rows(self, step: int) -> tuple[int, int, int]:
        """(first, stop, rows): this shard's rows [first, stop) of step `step`'s batch of `rows`."""
        rows = max(0, min(self.batch_size, self.count - step * self.batch_size))
        return (*share(rows, *self.shard), rows)

    def params(self, epoch: int, indices) -> augment.Params:
        """The augmentation parameters of the images `indices` in `epoch`."""
        s, c = self.size, self.crop
        if self.transform == "train":
            return augment.train_params(self.seed, epoch, indices, s, s, c, self.data.eigvals,
                                        self.data.eigvecs, self.lighting_std)
        if self.transform == "center":
            return augment.center_params(len(indices), s, s, c)
        return augment.ten_crop_params(len(indices), s, s, c)

    # ------------------------------------------------------------------ iteration

    def epoch(self, epoch: int, start_step: int = 0):
        """An iterator over the Batch of each step start_step, start_step + 1, ... of `epoch`.
        Prefetching starts with the first next()."""
        try:
            epoch, start_step = operator.index(epoch), operator.index(start_step)
        except TypeError:
            raise TypeError(f"Loader.epoch: epoch and start_step must be integers; got {epoch!r}, {start_step!r}") from None
        if not 0 <= epoch < 2 ** 29:
            raise ValueError(f"Loader.epoch: epoch must be an integer in [0, 2^29); got {epoch!r}")
        if not 0 <= start_step <= len(self):
            raise ValueError(f"Loader.epoch: start_step must be in [0, {len(self)}]; got {start_step!r}")
        if self._fd is None:
            raise ValueError("Loader.epoch: the loader is closed")
        return self._iterate(epoch, start_step)

    def _iterate(self, epoch, start_step):
        if self._active:
            raise RuntimeError("Loader.epoch: another epoch of this loader is still being iterated; "
                               "finish or close it first (one loader feeds one loop)")
        self._active = True
        out = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        thread = threading.Thread(target=self._produce, args=(epoch, start_step, out, stop),
                                  name=f"pyconvnet-loader-{self.split}", daemon=True)
        thread.start()
        try:
            for _ in range(start_step, len(self)):
                t0 = time.perf_counter()
                item = out.get()
                self.wait_seconds += time.perf_counter() - t0
                if isinstance(item, _Failure):
                    raise item.exc
                yield self._finish(item) if isinstance(item, _Uploaded) else item
        finally:
            stop.set()
            while thread.is_alive():
                try:
                    self._drop(out.get(timeout=0.05))  # unblocks a producer waiting to put
                except queue.Empty:
                    pass
            thread.join()
            while not out.empty():
                self._drop(out.get_nowait())
            self._active = False

    @staticmethod
    def _drop(item):
        """An uploaded batch nobody will take: its slot may be refilled (nothing read it)."""
        if isinstance(item, _Uploaded):
            item.entry.free.set()

    def _produce(self, epoch, start_step, out, stop):
        # On the CPU this thread augments batches while the training thread runs its kernels on
        # every core: its own kernels stay on it (an OpenMP team of its own would oversubscribe
        # the cores, and libgomp then puts waiting threads to sleep after every parallel region).
        _C.set_serial_thread(True)
        try:
            order = self.order(epoch)
            ring = None
            for step in range(start_step, len(self)):
                if stop.is_set():
                    return
                idx = self.batch_indices(epoch, step, order)
                first, _, rows = self.rows(step)
                if len(idx) == 0:  # a shard with no rows of a small last batch
                    batch = Batch(None, None, idx, epoch, step, self._labels[idx], first, rows)
                else:
                    ring = self._ring(len(idx))
                    entry = ring.pop(0)
                    ring.append(entry)
                    while not entry.free.wait(timeout=0.1):  # the consumer still finishes its batch
                        if stop.is_set():
                            return
                    entry.free.clear()
                    try:
                        batch = self._upload(entry, epoch, step, idx, first, rows)
                    except BaseException:
                        entry.free.set()
                        raise
                    if not self._on_device:
                        batch = self._finish(batch)  # the CPU: all the work on this thread
                while not stop.is_set():
                    try:
                        out.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        pass
                else:  # stopped before the consumer took it: nobody will
                    self._drop(batch)
        except BaseException as e:  # handed to the consumer, which raises it
            while not stop.is_set():
                try:
                    out.put(_Failure(e), timeout=0.1)
                    break
                except queue.Full:
                    pass

    def _ring(self, n):
        if n not in self._slots:
            spec = [((n, self.size, self.size, 3), "uint8"), ((n,), "int32")]
            self._slots[n] = [_Slot(_C.StagingSlot(spec, self.device)) for _ in range(self.prefetch + 2)]
        return self._slots[n]

    def _upload(self, entry, epoch, step, idx, first, rows):
        """The loader thread's part of a batch (rows [first, ...) of a batch of `rows`): read into
        the slot, start the copy, draw the augmentation parameters."""
        slot = entry.slot
        slot.wait_uploaded()  # the slot's previous copy no longer reads the host buffers
        self._read(idx, slot.host(0))
        labels_host = self._labels[idx]
        slot.host(1)[:] = labels_host
        slot.upload()
        params = None if self.transform == "none" else self.params(epoch, idx)
        return _Uploaded(entry, idx, epoch, step, labels_host, params, first, rows)

    def _finish(self, up):
        """The consumer's part (on the CPU, the loader thread's): the op stream waits for the
        copy, the batch is augmented (or copied) out of the slot, and the slot is released."""
        slot = up.entry.slot
        try:
            slot.acquire()
            if up.params is None:
                inputs = slot.clone(0)
            else:
                inputs = augment.apply(slot.device_buffer(0), self._mean, up.params, self.crop)
            labels = slot.clone(1)
        finally:
            slot.release()
            up.entry.free.set()
        return Batch(inputs, labels, up.indices, up.epoch, up.step, up.labels_host, up.first_row, up.batch_rows)

    def _read(self, idx, dest):
        """pread() each image of `idx` into the rows of `dest` (uint8 (n, S, S, 3))."""
        rows = list(enumerate(idx.tolist()))
        if self._readers is None or len(rows) < 8:
            self._read_rows(rows, dest)
            return
        k = -(-len(rows) // self._read_threads)
        chunks = [rows[i:i + k] for i in range(0, len(rows), k)]
        futures = [self._readers.submit(self._read_rows, c, dest) for c in chunks]
        concurrent.futures.wait(futures)  # all readers finish before an error is raised
        for f in futures:
            f.result()

    def _read_rows(self, rows, dest):
        nbytes = self._image_bytes
        for row, k in rows:
            view = memoryview(dest[row]).cast("B")
            got, offset = 0, self._offset + k * nbytes
            while got < nbytes:
                n = os.preadv(self._fd, [view[got:]], offset + got)
                if n == 0:
                    raise OSError(f"Loader: {self._file} ends inside image {k}: the file is truncated; "
                                  "prepare the dataset again")
                got += n

    # ------------------------------------------------------------------ lifetime

    def close(self):
        """Gives back the staging memory and the file. The loader is unusable afterwards."""
        if self._active:
            raise RuntimeError("Loader.close: an epoch is still being iterated; close it first")
        for ring in self._slots.values():
            for entry in ring:
                entry.slot.close()
        self._slots.clear()
        if self._readers is not None:
            self._readers.shutdown()
            self._readers = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_fd", None) is not None and not self._active:
            try:
                self.close()
            except Exception:  # at interpreter exit, the CUDA runtime may be gone already
                pass
