"""pyconvnet.loader: what each step holds, determinism and resumption, partial batches, the
background thread's lifetime and errors, and the staging slots under it."""
import shutil
import threading
import time

import numpy as np
import pytest

from pyconvnet import _C, augment as aug, prepare, reference as ref
from pyconvnet.dataset import PreparedDataset
from pyconvnet.loader import Loader
from helpers import assert_close
from imagetree import write_tree

TOL = dict(rtol=0.0, atol=2.0 ** -14)  # as tests/test_augment.py: two float32 roundings below 512


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    write_tree(root / "src", np.random.default_rng(0), classes=("a", "b", "c", "d"), per_class=11,
               sizes=((20, 26), (23, 16)))
    prepare.prepare(root / "src", root / "out", size=16, val_fraction=0.25, workers=0, progress=False)
    return PreparedDataset(root / "out")  # 32 train, 12 val images


def _batches(loader, epoch, start=0):
    out = []
    for b in loader.epoch(epoch, start):
        assert b.labels_host.dtype == np.int32 and np.array_equal(b.labels_host, b.labels.numpy())
        out.append((b.inputs.numpy(), b.labels.numpy(), b.indices, b.step))
    return out


def test_steps_hold_what_the_documentation_says(data, device):
    images, labels = np.asarray(data.images("train")), data.labels("train")
    with Loader(data, "train", batch_size=5, device=device, seed=3) as loader:
        assert loader.crop == 14 and len(loader) == 6  # 32 // 5, the last 2 images dropped
        for x, y, idx, step in _batches(loader, 2):
            order = aug.shuffle(3, 2, 32)
            assert np.array_equal(idx, np.sort(order[5 * step:5 * step + 5]))
            assert np.array_equal(y, labels[idx])
            p = aug.train_params(3, 2, idx, 16, 16, 14, data.eigvals, data.eigvecs)
            assert_close(x, ref.augment(images[idx], data.mean, p.offsets, p.flips, p.lighting, 14), **TOL)


def test_an_epoch_presents_each_image_once_in_a_seeded_order(data):
    def order(seed, epoch):
        with Loader(data, batch_size=6, seed=seed, drop_last=False) as loader:
            return np.concatenate([idx for *_, idx, _ in _batches(loader, epoch)])

    first = order(1, 0)
    assert sorted(first.tolist()) == list(range(32))
    assert np.array_equal(order(1, 0), first)
    assert not np.array_equal(order(1, 1), first)
    assert not np.array_equal(order(2, 0), first)


def test_resuming_at_a_step_gives_the_uninterrupted_batches(data, device):
    with Loader(data, batch_size=4, device=device, seed=9) as loader:
        whole = _batches(loader, 5)
        for start in (0, 3, 7, 8):
            resumed = _batches(loader, 5, start)
            assert len(resumed) == len(whole) - start
            for a, b in zip(resumed, whole[start:]):
                assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[3] == b[3]
        with pytest.raises(ValueError, match=r"start_step must be in \[0, 8\]; got 9"):
            loader.epoch(0, 9)
        with pytest.raises(ValueError, match=r"epoch must be an integer in \[0, 2\^29\); got -1"):
            loader.epoch(-1)


def test_the_last_partial_batch_is_kept_or_dropped(data, device):
    with Loader(data, "val", batch_size=5, device=device) as loader:  # evaluation: kept by default
        got = _batches(loader, 0)
        assert [len(y) for _, y, _, _ in got] == [5, 5, 2] and len(loader) == 3
        assert np.array_equal(np.concatenate([i for *_, i, _ in got]), np.arange(12))
    with Loader(data, "val", batch_size=5, device=device, drop_last=True) as loader:
        assert [len(y) for _, y, _, _ in _batches(loader, 0)] == [5, 5]
    with Loader(data, "train", batch_size=5, device=device, drop_last=False) as loader:
        assert [len(y) for _, y, _, _ in _batches(loader, 0)] == [5] * 6 + [2]


def test_evaluation_transforms(data, device):
    images = np.asarray(data.images("val"))
    with Loader(data, "val", batch_size=4, device=device, transform="none") as loader:
        for x, y, idx, _ in _batches(loader, 0):
            assert x.dtype == np.uint8 and np.array_equal(x, images[idx])
    with Loader(data, "val", batch_size=4, device=device, crop=12) as loader:
        x, _, idx, _ = _batches(loader, 0)[1]
        assert_close(x, ref.augment(images[idx], data.mean, *aug.center_params(4, 16, 16, 12)[:3], 12), **TOL)
    with Loader(data, "val", batch_size=4, device=device, transform="ten") as loader:
        x, y, idx, _ = _batches(loader, 0)[2]
        p = aug.ten_crop_params(4, 16, 16, 14)
        assert x.shape == (40, 3, 14, 14) and y.shape == (4,)
        assert_close(x, ref.augment(images[idx], data.mean, p.offsets, p.flips, p.lighting, 14, repeats=10), **TOL)


def test_breaking_out_stops_the_thread_and_batches_stay_valid(data, device):
    with Loader(data, batch_size=2, device=device, prefetch=2) as loader:
        kept = []
        for b in loader.epoch(0):
            kept.append((b.inputs, b.inputs.numpy()))
            if len(kept) == 3:
                break
        for step, b in enumerate(loader.epoch(0)):  # a new epoch can start at once
            if step == 8:
                break
        for tensor, copy in kept:  # later batches did not overwrite earlier ones
            assert np.array_equal(tensor.numpy(), copy)
    time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name.startswith("pyconvnet-loader")]


def test_one_epoch_at_a_time(data):
    with Loader(data, batch_size=4) as loader:
        it = loader.epoch(0)
        next(it)
        with pytest.raises(RuntimeError, match="another epoch of this loader is still being iterated"):
            next(loader.epoch(1))
        it.close()
        next(loader.epoch(1))


def test_errors_in_the_background_reach_the_loop(data, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(data.path, copy)
    loader = Loader(copy, batch_size=4, shuffle=False)
    with open(copy / "train_images.npy", "r+b") as f:
        f.truncate(f.seek(0, 2) - 100)  # the last image loses its end
    got = []
    with pytest.raises(OSError, match=r"train_images.npy ends inside image 31: the file is truncated"):
        for b in loader.epoch(0):
            got.append(b.step)
    assert got == list(range(7))
    loader.close()


def test_arguments_are_checked(data):
    with pytest.raises(ValueError, match=r"transform must be one of .*; got 'random'"):
        Loader(data, transform="random")
    with pytest.raises(ValueError, match=r"crop must be in \[1, 16\] \(the prepared size\); got 17"):
        Loader(data, crop=17)
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer; got 0"):
        Loader(data, batch_size=0)
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'val'\]; got 'test'"):
        Loader(data, "test")
    with pytest.raises(FileNotFoundError, match="is not a prepared dataset"):
        Loader(data.path + "-missing")


def test_the_loop_does_not_wait_for_data_it_has_time_to_prepare(data):
    # A "training step" of 20 ms against batches that take about a millisecond to prepare: after
    # the first batch, the loop should find each batch ready.
    with Loader(data, batch_size=4, seed=1) as loader:
        for step, _ in enumerate(loader.epoch(0)):
            if step == 0:
                first = loader.wait_seconds
            time.sleep(0.02)
        assert loader.wait_seconds - first < 0.25 * 0.02 * (len(loader) - 1)


# ----------------------------------------------------------------------------- staging slots

def test_staging_slot_round_trip(device, rng):
    slot = _C.StagingSlot([((3, 4, 5), "uint8"), ((3,), "int32")], device)
    assert len(slot) == 2 and slot.device.startswith(device)
    for _ in range(3):  # reuse: refill after the previous upload
        a = rng.integers(0, 256, (3, 4, 5), dtype=np.uint8)
        slot.wait_uploaded()
        host = slot.host(0)
        assert host.shape == (3, 4, 5) and host.dtype == np.uint8 and host.flags.writeable
        host[:] = a
        slot.host(1)[:] = [7, 8, 9]
        slot.upload()
        slot.acquire()  # the op stream waits for the copy before the clones read the buffers
        copy = slot.clone(0)
        labels = slot.clone(1)
        slot.release()
        assert np.array_equal(copy.numpy(), a) and labels.numpy().tolist() == [7, 8, 9]
        assert copy.device == slot.device_buffer(0).device
    slot.close()
    with pytest.raises(ValueError, match="StagingSlot.host: the slot is closed"):
        slot.host(0)
    with pytest.raises(ValueError, match=r"buffer index 2 out of range; the slot has 2 buffers"):
        _C.StagingSlot([((1,), "uint8"), ((1,), "uint8")], "cpu").host(2)
