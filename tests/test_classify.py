"""python -m pyconvnet.classify: an image file is preprocessed bit for bit as the training
pipeline preprocesses it, the probabilities are the evaluation's (10 crops or the centre crop),
folders and unreadable files are handled, and bad input is a one-line error."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pyconvnet import classify, ops
from pyconvnet.dataset import PreparedDataset
from pyconvnet.loader import Loader
from pyconvnet.preprocess import Preprocessing
from pyconvnet.inference import load_model, predict_images

from conftest import requires_cuda
from helpers import assert_close

REPO = pathlib.Path(__file__).resolve().parents[1]


def val_files(run) -> list:
    """The source files of the prepared validation split, in its order (classes, then files, by name)."""
    src = run.parent / "src" / "val"
    return [f for c in sorted(os.listdir(src)) for f in sorted((src / c).iterdir())]


@pytest.fixture(scope="module")
def setup(tiny_run):
    model, _, _ = load_model(tiny_run / "checkpoint.npz")
    dataset = PreparedDataset(tiny_run.parent / "data")
    return model, dataset, Preprocessing.of(dataset, 64)


def loader_probabilities(model, dataset, transform, device="cpu"):
    """The evaluation's probabilities of every validation image: the Loader's batches (transform
    "center" or "ten"), softmax, averaged over each image's crops."""
    repeats = 10 if transform == "ten" else 1
    with Loader(dataset, "val", 7, device=device, transform=transform, crop=64) as loader:
        probs = [ops.softmax(model.forward(b.inputs)).numpy().astype(np.float64) for b in loader.epoch(0)]
    probs = np.concatenate(probs)
    return probs.reshape(-1, repeats, probs.shape[1]).mean(axis=1)


def on_cpu(argv) -> list:
    """The command line as strings, on the CPU unless it names a device (auto would pick CUDA
    where there is one, whose float32 sums may differ from the CPU reference's)."""
    argv = [str(a) for a in argv]
    return argv if "--device" in argv else argv + ["--device", "cpu"]


def classify_json(argv, capsys) -> list:
    status = classify.main(on_cpu(argv) + ["--json"])
    captured = capsys.readouterr()
    return status, [json.loads(line) for line in captured.out.splitlines()], captured.err


def test_an_image_file_is_preprocessed_exactly_as_prepare_and_the_loader_do(tiny_run, setup):
    model, dataset, pre = setup
    files = val_files(tiny_run)
    images = np.stack([pre.load(f) for f in files])
    assert images.dtype == np.uint8 and np.array_equal(images, dataset.images("val"))
    assert pre.size == 72 and pre.crop == 64 and pre.resample == "bilinear"
    for transform, ten in (("center", False), ("ten", True)):
        with Loader(dataset, "val", len(files), transform=transform, crop=64) as loader:
            expected = next(iter(loader.epoch(0))).inputs.numpy()
        assert np.array_equal(pre.crops(images, "cpu", ten).numpy(), expected), transform


@pytest.mark.parametrize("centre", [False, True])
def test_probabilities_are_the_evaluations(tiny_run, setup, capsys, centre):
    model, dataset, _ = setup
    files = val_files(tiny_run)
    status, results, err = classify_json([tiny_run, *files, "--batch-size", "30"] + ["--centre"] * centre, capsys)
    assert status == 0 and err == ""
    expected = loader_probabilities(model, dataset, "center" if centre else "ten")
    assert [r["file"] for r in results] == [str(f) for f in files]
    for r, p in zip(results, expected):
        order = np.argsort(-p, kind="stable")[:5]
        assert [t["index"] for t in r["top"]] == order.tolist()
        assert [t["name"] for t in r["top"]] == [dataset.class_names()[c] for c in order]
        # the same float32 crops through the same network: the same probabilities
        assert_close([t["probability"] for t in r["top"]], p[order], rtol=1e-6, atol=1e-7, what=r["file"])


def test_batch_size_does_not_change_the_results(tiny_run, capsys):
    files = val_files(tiny_run)[:5]
    one = classify_json([tiny_run, *files, "--batch-size", "1"], capsys)
    many = classify_json([tiny_run, *files, "--batch-size", "1000"], capsys)
    assert one == many


def test_text_output_and_folders(tiny_run, tmp_path, capsys):
    folder = tmp_path / "photos"
    shutil.copytree(tiny_run.parent / "src" / "val" / "disc", folder / "a")
    shutil.copy(tiny_run.parent / "src" / "val" / "ring" / "ring_00000.jpg", folder / "b.JPG")
    (folder / "notes.txt").write_text("not an image, and not named like one: left out")
    (folder / ".hidden.jpg").write_bytes(b"left out")
    (folder / ".thumbs").mkdir()
    (folder / ".thumbs" / "x.jpg").write_bytes(b"left out")
    assert classify.main(on_cpu([tiny_run, folder])) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(folder / "a" / "disc_00000.jpg"),
                                                        str(folder / "a" / "disc_00001.jpg"), str(folder / "b.JPG")]
    for line in lines:
        top = line.split(": ", 1)[1].split(", ")
        assert len(top) == 5
        percents = [float(t.rsplit(" ", 1)[1].rstrip("%")) for t in top]
        assert percents == sorted(percents, reverse=True) and 0 <= sum(percents) <= 100.5
    assert captured.err == ""


def test_unreadable_files_are_one_line_each_and_the_rest_classify(tiny_run, tmp_path, capsys):
    good = val_files(tiny_run)[:2]
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    jpeg = good[0].read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(jpeg[:len(jpeg) // 3])
    bad = [tmp_path / "empty.jpg", tmp_path / "text.png", tmp_path / "truncated.jpg", tmp_path / "missing.jpg"]
    argv = [str(tiny_run), str(good[0]), *map(str, bad), str(good[1])]
    assert classify.main(on_cpu(argv)) == 1
    captured = capsys.readouterr()
    assert [line.split(": ")[0] for line in captured.out.splitlines()] == list(map(str, good))
    reasons = captured.err.splitlines()
    assert len(reasons) == 4
    for line, path, words in zip(reasons, bad, ("empty file", "not an image", "truncated", "No such file")):
        assert line.startswith(f"{path}: skipped: ") and words in line, line
    status, results, err = classify_json(argv[:1] + list(map(str, bad)) + [str(good[1])], capsys)
    assert status == 1 and err == ""
    assert [sorted(r) for r in results] == [["error", "file"]] * 4 + [["file", "top"]]


def one_line_error(argv, capsys, words):
    assert classify.main([str(a) for a in argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert captured.out == "" and lines[-1].startswith("error: ") and words in lines[-1], captured.err
    return lines


def test_bad_input_is_a_one_line_error(tiny_run, tmp_path, capsys):
    image = val_files(tiny_run)[0]
    one_line_error([tmp_path / "none.npz", image], capsys, "no such file")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    one_line_error([tmp_path / "junk.npz", image], capsys, "unreadable or corrupt")
    (tmp_path / "empty").mkdir()
    one_line_error([tiny_run, tmp_path / "empty"], capsys, "no image files")
    (tmp_path / "bad.jpg").write_bytes(b"")
    lines = one_line_error([tiny_run, tmp_path / "bad.jpg"], capsys, "none of the 1 file(s) could be read")
    assert lines[0].endswith("skipped: empty file: 0 bytes")
    with pytest.raises(SystemExit) as e:
        classify.main([str(tiny_run), str(image), "--batch-size", "0"])
    assert e.value.code == 2 and "--batch-size: must be a positive integer" in capsys.readouterr().err
    one_line_error([tiny_run, image, "--device", "cuda:99"], capsys, "--device cuda:99")
    one_line_error([tiny_run, image, "--data", tmp_path / "missing"], capsys, "no such directory")


def test_help_shows_examples(capsys):
    with pytest.raises(SystemExit) as e:
        classify.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "python -m pyconvnet.classify runs/DATE photo.jpg" in text and "--centre" in text and "--json" in text


@pytest.mark.cuda
@requires_cuda
@pytest.mark.parametrize("ten_crop", [False, True])
def test_cuda_gives_the_cpu_probabilities(tiny_run, setup, ten_crop):
    model, _, pre = setup
    images = np.stack([pre.load(f) for f in val_files(tiny_run)[::7]])
    on_cuda = predict_images(load_model(tiny_run / "checkpoint.npz", "cuda")[0], pre, images, "cuda", ten_crop)
    assert_close(on_cuda, predict_images(model, pre, images, "cpu", ten_crop), rtol=1e-4, atol=1e-6,
                 what="probabilities")


def test_module_entry_point(tiny_run, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    image = val_files(tiny_run)[0]
    out = subprocess.run([sys.executable, "-m", "pyconvnet.classify", str(tiny_run), str(image), "--centre",
                          "--device", "cpu"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{image}: ") and out.stdout.count("%") == 5
