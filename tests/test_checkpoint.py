"""The checkpoint boundary: a damaged or foreign checkpoint is one "error: ..." line (exit 2) from
every command that reads it, naming the file and what is wrong, and nothing is trained from it.
Also the write side: atomic, and never of a diverged model."""
import json
import shutil

import numpy as np
import pytest

from pyconvnet import checkpoint, evaluate, show, train
from pyconvnet.rundir import CHECKPOINT_NAME
from tinyrun import TINY, make_tiny_data, run_train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run directory after one epoch."""
    root = tmp_path_factory.mktemp("ckpt")
    data = make_tiny_data(root)
    run_train(["--data", data, "--epochs", "1", "--out", str(root / "run"), *TINY])
    return root / "run"


@pytest.fixture
def run_copy(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def one_line_error(main, argv, capsys, *words):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), captured
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def _rewrite(path, edit_meta=None, edit_arrays=None):
    arrays, meta = checkpoint.load(path)
    if edit_meta:
        edit_meta(meta)
    if edit_arrays:
        edit_arrays(arrays)
    checkpoint.save(path, arrays, meta)


def _set(key, value):
    def edit(meta):
        doc = meta
        *parents, last = key.split(".")
        for p in parents:
            doc = doc[p]
        doc[last] = value
    return edit


def _drop(key):
    def edit(meta):
        doc = meta
        *parents, last = key.split(".")
        for p in parents:
            doc = doc[p]
        del doc[last]
    return edit


# The JSON document: (edit, words of the error)
DOCUMENTS = {
    "no epoch": (_drop("epoch"), "has no 'epoch'"),
    "epoch as a string": (_set("epoch", "1"), "['epoch'] must be an integer"),
    "history null": (_set("history", None), "['history'] must be an array"),
    "history of numbers": (_set("history", [1, 2]), "history[0]"),
    "no learning rate": (_drop("train_config.lr"), "train_config has no 'lr'"),
    "batch size as a float": (_set("train_config.batch_size", 16.0), "train_config['batch_size'] must be an integer"),
    "schedule missing": (_drop("schedule"), "has no 'schedule'"),
    "schedule of the wrong type": (_set("schedule", [0.01]), "['schedule'] must be an object"),
    "running without its count": (_drop("running.seen"), "running has no 'seen'"),
    "negative step": (_set("step", -3), "step out of range"),
    "classes not names": (_set("classes", [0, 1]), "classes"),
    "width not a number": (_set("model_config.width", "wide"), "model_config['width'] must be a number"),
    "no classes in the model": (_set("model_config.num_classes", 0), "out of range"),
    "another architecture": (_set("model_config.arch", "vgg"), "out of range"),
    "drop_last not a boolean": (_set("train_config.drop_last", 1), "must be true or false"),
}


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_a_damaged_document_is_refused_before_training(run_copy, capsys, name):
    edit, words = DOCUMENTS[name]
    ckpt = run_copy / CHECKPOINT_NAME
    _rewrite(ckpt, edit_meta=edit)
    before = ckpt.read_bytes()
    one_line_error(train.main, ["--resume", run_copy, "--epochs", "2"], capsys, str(ckpt), words)
    assert ckpt.read_bytes() == before  # nothing was trained or written


def _pop(name):
    return lambda arrays: arrays.pop(name)


def _put(name, value):
    return lambda arrays: arrays.__setitem__(name, value)


def _nan(name):
    def edit(arrays):
        arrays[name] = arrays[name].copy()
        arrays[name].flat[0] = np.nan
    return edit


# The arrays: (edit, words of the error, whether evaluate reads them too)
ARRAYS = {
    "missing weight": (_pop("model/fc8.weight"), "missing model/fc8.weight", True),
    "missing momentum": (_pop("momentum/conv1.weight"), "missing momentum/conv1.weight", False),
    "extra array": (_put("model/fc9.weight", np.zeros(3, np.float32)), "unexpected model/fc9.weight", True),
    "misshapen": (_put("model/fc8.bias", np.zeros(11, np.float32)), "model/fc8.bias must be float32 of shape (10,)",
                  True),
    "float64": (lambda a: a.__setitem__("model/fc8.bias", a["model/fc8.bias"].astype(np.float64)),
                "got float64", True),
    "NaN weight": (_nan("model/conv2.weight"), "model/conv2.weight holds non-finite", True),
    "NaN momentum": (_nan("momentum/fc6.bias"), "momentum/fc6.bias holds non-finite", False),
}


@pytest.mark.parametrize("name", list(ARRAYS))
def test_damaged_arrays_are_refused(run_copy, capsys, name):
    edit, words, read_by_evaluate = ARRAYS[name]
    ckpt = run_copy / CHECKPOINT_NAME
    _rewrite(ckpt, edit_arrays=edit)
    before = ckpt.read_bytes()
    one_line_error(train.main, ["--resume", run_copy, "--epochs", "2"], capsys, str(ckpt), words)
    assert ckpt.read_bytes() == before
    if read_by_evaluate:
        one_line_error(evaluate.main, [ckpt, "--device", "cpu"], capsys, str(ckpt), words)
        one_line_error(show.main, ["filters", ckpt], capsys, str(ckpt), words)


@pytest.mark.parametrize("content", [b"", b"\x80\x04random bytes that look like a pickle", bytes(range(256)) * 4])
def test_random_bytes_are_refused_without_numpy_advice(run_copy, capsys, content):
    ckpt = run_copy / CHECKPOINT_NAME
    ckpt.write_bytes(content)
    line = one_line_error(train.main, ["--resume", run_copy], capsys, str(ckpt), "unreadable or corrupt")
    assert "allow_pickle" not in line
    line = one_line_error(evaluate.main, [ckpt], capsys, str(ckpt), "unreadable or corrupt")
    assert "allow_pickle" not in line


def test_an_archive_that_is_not_a_checkpoint(tmp_path, capsys):
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    one_line_error(evaluate.main, [tmp_path / "other.npz"], capsys, "not a pyconvnet checkpoint")
    np.savez(tmp_path / "list.npz", __meta__=np.frombuffer(json.dumps([1]).encode(), np.uint8))
    one_line_error(evaluate.main, [tmp_path / "list.npz"], capsys, "not a pyconvnet checkpoint")
