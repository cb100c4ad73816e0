"""The built-in dataset: classes, determinism, the cached tree prepared through pyconvnet.prepare,
and the linear baseline."""
import os

import numpy as np
import pytest

from pyconvnet import synthetic
from pyconvnet.dataset import PreparedDataset


def test_every_class_renders_varied_images():
    for c, cls in enumerate(synthetic.CLASSES):
        images = [synthetic.render(cls, synthetic._image_rng(0, "train", c, i)) for i in range(4)]
        for a in images:
            assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3
            assert 64 <= a.shape[0] <= 96 and 64 <= a.shape[1] <= 96
        assert len({a.tobytes() for a in images}) == 4
    assert len(synthetic.CLASSES) >= 10
    again = synthetic.render("star", synthetic._image_rng(0, "train", 7, 2))
    assert np.array_equal(again, synthetic.render("star", synthetic._image_rng(0, "train", 7, 2)))


def test_colour_does_not_give_the_class_away():
    # The mean colour of an image is drawn independently of its class: per-class averages of it
    # differ by far less than it varies from image to image.
    means = np.array([[synthetic.render(cls, synthetic._image_rng(5, "train", c, i)).reshape(-1, 3).mean(0)
                       for i in range(40)] for c, cls in enumerate(synthetic.CLASSES)])
    spread_within = means.std(axis=1).mean()
    spread_between = means.mean(axis=1).std(axis=0).mean()
    assert spread_between < 0.35 * spread_within


def test_generation_is_deterministic(tmp_path):
    for d in ("a", "b"):
        synthetic.generate(str(tmp_path / d), seed=3, train_per_class=1, val_per_class=1, workers=0)
    files = sorted(os.path.relpath(os.path.join(r, f), tmp_path / "a") for r, _, fs in os.walk(tmp_path / "a") for f in fs)
    assert len(files) == 2 * len(synthetic.CLASSES)
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_ensure_dataset_generates_prepares_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("PYCONVNET_CACHE", str(tmp_path))
    out = synthetic.ensure_dataset(train_per_class=6, val_per_class=2, workers=0, progress=False)
    assert out.startswith(str(tmp_path))
    data = PreparedDataset(out)
    assert data.num_classes == len(synthetic.CLASSES) and data.size == 64
    assert data.count("train") == 60 and data.count("val") == 20
    assert data.manifest["skipped"] == []
    assert [c["synset"] for c in data.classes] == sorted(synthetic.CLASSES)
    mtime = os.path.getmtime(os.path.join(out, "manifest.json"))
    monkeypatch.setattr(synthetic, "generate", lambda *a, **k: pytest.fail("generated again"))
    assert synthetic.ensure_dataset(train_per_class=6, val_per_class=2, workers=0, progress=False) == out
    assert os.path.getmtime(os.path.join(out, "manifest.json")) == mtime
    r = synthetic.linear_probe(out)
    assert 0.0 <= r["val_accuracy"] <= 1.0 and r["chance"] == 0.1 and r["ridge"] in (1e-2, 1e-1, 1.0, 10.0, 100.0)


def test_a_failed_generation_leaves_nothing_that_blocks_a_retry(tmp_path, monkeypatch):
    root = tmp_path / "shapes-v1-seed0-1x1"
    root.mkdir()
    (root / "src.4194303.tmp" / "train").mkdir(parents=True)  # the half-made tree of a killed generation
    real = synthetic.generate

    def fail(tree, *a, **k):
        os.makedirs(os.path.join(tree, "train", "disc"))
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(synthetic, "generate", fail)
    with pytest.raises(OSError, match="No space left"):
        synthetic.ensure_dataset(cache=str(tmp_path), train_per_class=1, val_per_class=1, workers=0, progress=False)
    assert sorted(os.listdir(root)) == ["lock"]  # the stale tree and the failed one are gone
    monkeypatch.setattr(synthetic, "generate", real)
    out = synthetic.ensure_dataset(cache=str(tmp_path), train_per_class=1, val_per_class=1, workers=0, progress=False,
                                   size=16)
    assert PreparedDataset(out).count("train") == 10
