"""python -m pyconvnet.show: every picture rendered from a tiny trained checkpoint, the numbers
behind them (predictions, fc7 nearest neighbours) checked, and one-line errors for bad input."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pyconvnet import draw, figures, inference, rundir, show
from pyconvnet.inference import load_model

from helpers import assert_close

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run  # conftest.py: a tiny trained run, its lr divided after epoch 1, a log record every step


def render(argv, capsys, stderr=None) -> Image.Image:
    """Runs the command line; it must succeed and print the PNG's path and nothing else on stdout
    (what it printed on stderr is appended to the list `stderr`)."""
    assert show.main([str(a) for a in argv]) == 0
    captured = capsys.readouterr()
    path = captured.out.strip()
    assert "\n" not in path and path.endswith(".png")
    if stderr is not None:
        stderr.append(captured.err)
    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")


def assert_not_blank(im: Image.Image, min_colours: int = 200) -> None:
    a = np.asarray(im)
    background = (a == 255).all(axis=2)
    assert 0.05 < 1 - background.mean() < 0.95, f"{1 - background.mean():.0%} of the picture is drawn on"
    assert len(np.unique(a.reshape(-1, 3), axis=0)) >= min_colours


def test_filters(run, capsys):
    im = render(["filters", run], capsys)
    assert (run / "filters.png").is_file()
    # 12 kernels, 6 per column as 3 x 2 tiles of 44 x 44 pixels, in two blocks.
    assert 3 * 44 + 2 * 2 + 32 <= im.width <= 700 and 2 * (2 * 44 + 2) + 60 <= im.height <= 500
    assert_not_blank(im)
    model, _, _ = load_model(run / "checkpoint.npz")
    tiles = figures.kernel_tiles(model.layers[0].params["weight"].numpy())
    a = np.asarray(im)
    for tile in tiles:  # every kernel is there, enlarged 4x, exactly
        big = np.asarray(Image.fromarray(tile).resize((44, 44), Image.NEAREST))
        ys, xs = np.nonzero((a[:-43, :-43] == big[0, 0]).all(axis=2))
        assert any((a[y:y + 44, x:x + 44] == big).all() for y, x in zip(ys, xs))


def test_kernel_tiles_are_contrast_normalised_each():
    w = np.zeros((3, 3, 2, 2), np.float32)
    w[0, 0, 0, 0] = 2.0              # one bright red pixel in a flat kernel
    w[1] = 0.001 * np.arange(12).reshape(3, 2, 2)  # tiny weights still span the full range
    tiles = figures.kernel_tiles(w)     # w[2] is all zero
    assert tiles.shape == (3, 2, 2, 3)
    assert tiles[0, 0, 0, 0] == 255 and tiles[1].min() == 0 and tiles[1].max() == 255
    assert (tiles[2] == 128).all()
    # the kernel's mean is mid-grey: kernel 0's other pixels sit just below it
    assert (tiles[0].reshape(-1)[1:] == round(255 * (0.5 - 0.5 * (2 / 12) / (2 - 2 / 12)))).all()


def test_grid_columns():
    assert figures._grid_columns(48) == 12  # the paper's Figure 3: 12 x 4 per column
    assert figures._grid_columns(6) == 3 and figures._grid_columns(12) == 6 and figures._grid_columns(7) == 7


def test_predictions(run, capsys):
    im = render(["predictions", run, "--n", "3", "--out", run / "p3.png"], capsys)
    assert im.width == 2 * 16 + 3 * 190 + 2 * 24  # one row of three cells
    assert_not_blank(im)
    im8 = render(["predictions", run], capsys)     # default: 8 images, 4 per row
    assert im8.width == 2 * 16 + 4 * 190 + 3 * 24 and im8.height > im.height + 190
    assert_not_blank(im8)
    # The true label's bar is red exactly where the true label is among the top five.
    model, meta, _ = load_model(run / "checkpoint.npz")
    data = inference.open_data(None, meta, model)
    indices = inference.pick(data.count("val"), 8, 0)
    probs = inference.predict(model, data, "val", indices, "cpu")
    in_top5 = [lab in np.argsort(-p)[:5] for p, lab in zip(probs, data.labels("val")[indices])]
    assert (np.asarray(im8) == (240, 150, 140)).all(axis=2).any() == any(in_top5)


def test_predict_is_the_softmax_of_the_centre_crop(run):
    model, meta, _ = load_model(run / "checkpoint.npz")
    data = inference.open_data(None, meta, model)
    idx = np.array([0, 5, 19])
    probs = inference.predict(model, data, "val", idx, "cpu", batch_size=2)
    crops = inference.center_crops(data, "val", idx, 64).astype(np.float32)
    x = (crops - data.mean[4:68, 4:68]).transpose(0, 3, 1, 2)
    logits = model.forward(np.ascontiguousarray(x, np.float32), train=False).numpy().astype(np.float64)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    # float32 network and softmax, compared in probability units
    assert_close(probs, expected / expected.sum(1, keepdims=True), rtol=1e-4, atol=1e-6, what="probabilities")


def test_neighbours(run, capsys):
    err = []
    im = render(["neighbours", run, "--n", "2", "--batch-size", "7"], capsys, err)
    # two rows: the query and six neighbours, each 128 pixels wide (64x64 crops enlarged 2x)
    assert im.width == 2 * 16 + 128 + 28 + 6 * 128 + 5 * 8 and 2 * 128 < im.height < 600
    assert_not_blank(im)
    assert "fc7 features of 60 training images" in err[0]  # progress goes to stderr


def test_nearest_training_images_match_brute_force(run, device):
    model, meta, _ = load_model(run / "checkpoint.npz", device)
    data = inference.open_data(None, meta, model)
    queries = inference.fc7_features(model, inference.network_input(data, "val", np.array([1, 8, 13]), 64, device)).numpy()
    near, dist = inference.nearest_training_images(model, data, queries, 6, device, batch_size=7)
    everything = inference.fc7_features(model, inference.network_input(data, "train", np.arange(60), 64, device)).numpy()
    ref = np.sqrt(((queries[:, None, :].astype(np.float64) - everything[None]) ** 2).sum(-1))
    order = np.argsort(ref, axis=1, kind="stable")[:, :6]
    # Features of a batch of 7 and of 60 may differ in the last float32 bits; the distances may not.
    assert_close(dist, np.take_along_axis(ref, order, 1), rtol=1e-4, atol=1e-5, what="distances")
    assert_close(np.take_along_axis(ref, near, 1), np.take_along_axis(ref, order, 1), rtol=1e-4, atol=1e-5,
                 what="reference distances of the chosen neighbours")
    assert (np.diff(dist, axis=1) >= 0).all()


def test_curves(run, capsys):
    im = render(["curves", run], capsys)
    assert im.size == (1100, 470)
    assert_not_blank(im, min_colours=50)
    a = np.asarray(im)
    for colour in (draw.BLUE, draw.ORANGE):  # training and validation lines
        assert (np.abs(a.astype(int) - colour).sum(axis=2) < 30).sum() > 200


def test_curves_while_running(run, tmp_path, capsys):
    """A log still being written: no final record, a half-written last line, an epoch logged twice
    around a crash; and before the first epoch ends, only per-step losses."""
    lines = (run / "log.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    first_epoch = next(i for i, r in enumerate(records) if r["event"] == "epoch")
    (tmp_path / "config.json").write_text((run / "config.json").read_text())
    partial = lines[:first_epoch + 1] + [lines[first_epoch]] + lines[first_epoch + 1:first_epoch + 2]
    partial.append('{"event": "epoch", "epoch": 7, "note": "not written by this trainer"}')
    (tmp_path / "log.jsonl").write_text("\n".join(partial) + '\n{"event": "ep')
    log = rundir.read_log(tmp_path)
    assert [r["epoch"] for r in log["epochs"]] == [1] and log["final"] is None
    assert_not_blank(render(["curves", tmp_path], capsys), min_colours=50)
    (tmp_path / "log.jsonl").write_text("\n".join(lines[:first_epoch]) + "\n")
    assert_not_blank(render(["curves", tmp_path / "log.jsonl", "--out", tmp_path / "c.png"], capsys), min_colours=50)
    (tmp_path / "log.jsonl").write_text("")
    assert show.main(["curves", str(tmp_path)]) == 2
    assert "no epoch has finished yet" in capsys.readouterr().err


def one_line_error(argv, capsys, words):
    assert show.main([str(a) for a in argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], captured.err


def test_bad_input_gives_one_line_errors(run, tmp_path, capsys):
    one_line_error(["filters", tmp_path / "none.npz"], capsys, "no such file")
    one_line_error(["filters", tmp_path], capsys, "no such file")  # a directory without a checkpoint
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    one_line_error(["predictions", tmp_path / "junk.npz"], capsys, "unreadable or corrupt")
    np.savez(tmp_path / "other.npz", __meta__=np.frombuffer(b'{"format": "pyconvnet-checkpoint-1"}', np.uint8))
    one_line_error(["filters", tmp_path / "other.npz"], capsys, "not a model checkpoint")
    one_line_error(["predictions", run, "--data", tmp_path / "missing"], capsys, "no such directory")
    data = pathlib.Path(json.loads((run / "config.json").read_text())["train"]["data_root"])
    shutil.copytree(data, tmp_path / "renamed")
    classes = json.loads((data / "classes.json").read_text())
    classes[0]["name"] = "something else"
    (tmp_path / "renamed" / "classes.json").write_text(json.dumps(classes))
    one_line_error(["neighbours", run, "--data", tmp_path / "renamed"], capsys, "classes are not the 10")
    (tmp_path / "renamed" / "manifest.json").write_text('{"format": "other"}')
    one_line_error(["neighbours", run, "--data", tmp_path / "renamed"], capsys, "prepare the dataset again")
    one_line_error(["filters", run, "--out", tmp_path / "f.jpg"], capsys, "ending in .png")
    one_line_error(["curves", tmp_path / "nowhere"], capsys, "no such directory")
    one_line_error(["curves", tmp_path], capsys, "no log.jsonl")
    one_line_error(["predictions", run, "--device", "cuda:99"], capsys, "--device cuda:99")


def test_class_labels_and_plain_text():
    class Fake:
        classes = [{"synset": "n01440764", "name": "tench, Tinca tinca"}, {"synset": "n2", "name": ""},
                   {"synset": "n3", "name": "cr\u00e8me br\u00fbl\u00e9e"}]
    assert figures.class_labels(Fake) == ["tench", "n2", "creme brulee"]
    assert draw.fit("a long class name", draw.font(12), 40).endswith("...")
    assert draw.fit("short", draw.font(12), 400) == "short"


def test_nice_ticks():
    assert list(draw.nice_ticks(0, 6.9)) == [0, 2, 4, 6, 8]
    assert list(draw.nice_ticks(0, 100)) == [0, 20, 40, 60, 80, 100]
    assert np.allclose(draw.nice_ticks(0, 0.37), [0, 0.1, 0.2, 0.3, 0.4])
    assert draw.tick_label(0.30000000000000004, [0, 0.1]) == "0.3"


def test_module_entry_point(run, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "pyconvnet.show", "filters", str(run), "--out", str(tmp_path / "f.png")],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(tmp_path / "f.png") and (tmp_path / "f.png").is_file()
