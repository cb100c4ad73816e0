"""The prepared-dataset boundary: a damaged prepared directory is refused when it is opened, with
one message that names the file, what is wrong and what to do, never used silently, and never a
traceback an epoch later."""
import json
import shutil

import numpy as np
import pytest

from pyconvnet import prepare, train
from pyconvnet.dataset import DatasetError, PreparedDataset
from imagetree import write_tree

S = 64  # the prepared size: the smallest AlexNet input (63) fits


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    write_tree(root / "src" / "train", np.random.default_rng(0), per_class=4)
    write_tree(root / "src" / "val", np.random.default_rng(1), per_class=2)
    prepare.prepare(str(root / "src"), str(root / "prepared"), size=S, workers=0, progress=False)
    return root / "prepared"


@pytest.fixture
def damaged(prepared, tmp_path):
    """A fresh copy of the prepared directory, to damage."""
    shutil.copytree(prepared, tmp_path / "copy")
    return tmp_path / "copy"


def _edit_json(path, edit):
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def _set_label(path, value):
    labels = np.load(path)
    labels[-1] = value
    np.save(path, labels)


# (what is done to the directory, the file the error must name, words it must contain)
DAMAGE = {
    "images of another shape": (lambda d: np.save(d / "train_images.npy", np.zeros((12, 9, 9, 3), np.uint8)),
                                "train_images.npy", f"shape (12, {S}, {S}, 3)"),
    "images of another dtype": (lambda d: np.save(d / "train_images.npy", np.zeros((12, S, S, 3), np.float32)),
                                "train_images.npy", "must hold uint8"),
    "count lowered in the manifest": (lambda d: _edit_json(d / "manifest.json",
                                                           lambda m: m["splits"]["train"].update(count=11)),
                                      "train_images.npy", f"shape (11, {S}, {S}, 3)"),
    "truncated images": (lambda d: (d / "train_images.npy").write_bytes((d / "train_images.npy").read_bytes()[:-5]),
                         "train_images.npy", "truncated"),
    "deleted images": (lambda d: (d / "val_images.npy").unlink(), "val_images.npy", "missing"),
    "deleted labels": (lambda d: (d / "train_labels.npy").unlink(), "train_labels.npy", "missing"),
    "labels of another dtype": (lambda d: np.save(d / "val_labels.npy", np.zeros(6, np.int64)),
                                "val_labels.npy", "must hold int32"),
    "validation label out of range": (lambda d: _set_label(d / "val_labels.npy", 3), "val_labels.npy",
                                      "label 3 outside [0, 3)"),
    "negative label": (lambda d: _set_label(d / "train_labels.npy", -1), "train_labels.npy", "label -1"),
    "one-value PCA": (lambda d: _edit_json(d / "pca.json", lambda p: p.update(eigvals=[1.0])), "pca.json",
                      "eigvals must have 3 values"),
    "PCA without eigenvectors": (lambda d: _edit_json(d / "pca.json", lambda p: p.pop("eigvecs")), "pca.json",
                                 "needs eigvals"),
    "NaN in the PCA": (lambda d: _edit_json(d / "pca.json", lambda p: p["eigvecs"][0].__setitem__(0, float("nan"))),
                       "pca.json", "non-finite"),
    "NaN in the mean": (lambda d: np.save(d / "mean.npy", np.full((S, S, 3), np.nan, np.float32)), "mean.npy",
                        "non-finite"),
    "mean of another shape": (lambda d: np.save(d / "mean.npy", np.zeros((S, S), np.float32)), "mean.npy",
                              f"shape ({S}, {S}, 3)"),
    "manifest not JSON": (lambda d: (d / "manifest.json").write_text("{not json"), "manifest.json", "not valid JSON"),
    "manifest not an object": (lambda d: (d / "manifest.json").write_text("[1, 2]"), "manifest.json",
                               "expected a JSON object"),
    "manifest without splits": (lambda d: _edit_json(d / "manifest.json", lambda m: m.pop("splits")),
                                "manifest.json", "splits must give a count"),
    "classes not a list": (lambda d: (d / "classes.json").write_text('{"a": 1}'), "classes.json",
                           "expected a JSON array"),
    "fewer classes than the manifest": (lambda d: _edit_json(d / "classes.json", lambda c: c.pop()),
                                        "classes.json", "lists 2 classes"),
}


@pytest.mark.parametrize("name", list(DAMAGE))
def test_a_damaged_dataset_is_refused_when_opened(damaged, name):
    damage, culprit, words = DAMAGE[name]
    damage(damaged)
    with pytest.raises(DatasetError) as info:
        PreparedDataset(damaged)
    message = str(info.value)
    assert str(damaged / culprit) in message and words in message and "prepare the dataset again" in message, message


def test_the_intact_dataset_opens(prepared):
    data = PreparedDataset(prepared)
    assert data.count("train") == 12 and data.count("val") == 6 and data.num_classes == 3


def test_train_reports_a_damaged_dataset_in_one_line_before_training(damaged, capsys, tmp_path):
    _set_label(damaged / "val_labels.npy", 7)
    code = train.main(["--data", str(damaged), "--device", "cpu", "--out", str(tmp_path / "run"), "--width", "0.125",
                       "--crop-size", "63", "--image-size", str(S)])
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "val_labels.npy" in lines[0], captured.err
    assert not (tmp_path / "run").exists()  # refused before anything was written
