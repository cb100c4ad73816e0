"""python -m pyconvnet.export --onnx: run under onnxruntime, the exported network gives pyconvnet's
evaluation probabilities within 1e-5 on random inputs and on real images, its metadata is enough
to preprocess an image as pyconvnet does (the README's example is run), and bad input (onnx
missing included) is a one-line error.

The ONNX tests need the optional extra: pip install ".[onnx]" (onnx and onnxruntime)."""
import base64
import contextlib
import io
import json
import pathlib
import re
import shutil
import sys

import numpy as np
import pytest

from pyconvnet import export, ops
from pyconvnet.dataset import PreparedDataset
from pyconvnet.layers import LRN, Conv2d, Flatten, Linear, MaxPool2d, ReLU
from pyconvnet.loader import Loader
from pyconvnet.models import Sequential
from pyconvnet.preprocess import Preprocessing
from pyconvnet.inference import load_model

from helpers import assert_close

try:
    import onnx
    import onnxruntime
except ImportError:
    onnx = onnxruntime = None
needs_onnx = pytest.mark.skipif(onnxruntime is None, reason='onnx or onnxruntime not installed: pip install ".[onnx]"')

REPO = pathlib.Path(__file__).resolve().parents[1]
ATOL = 1e-5  # probabilities: ONNX Runtime against pyconvnet, absolute


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """(model, dataset, path of the exported ONNX file) of the tiny trained run."""
    if onnxruntime is None:
        pytest.skip('onnx or onnxruntime not installed: pip install ".[onnx]"')
    path = tmp_path_factory.mktemp("export") / "alexnet.onnx"
    assert export.main([str(tiny_run), "--onnx", str(path)]) == 0
    model, _, _ = load_model(tiny_run / "checkpoint.npz")
    return model, PreparedDataset(tiny_run.parent / "data"), path


def pyconvnet_probabilities(model, x):
    return ops.softmax(model.forward(np.ascontiguousarray(x, np.float32), train=False)).numpy()


def onnx_probabilities(path, x):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": np.ascontiguousarray(x, np.float32)})[0]


@needs_onnx
def test_random_inputs_give_pyconvnets_probabilities(exported, rng):
    model, _, path = exported
    for n in (1, 3, 17):  # the batch size is free
        x = rng.uniform(-128, 128, (n, 3, 64, 64)).astype(np.float32)
        got = onnx_probabilities(path, x)
        assert got.shape == (n, 10)
        assert_close(got, pyconvnet_probabilities(model, x), rtol=0, atol=ATOL, what=f"probabilities, batch {n}")


@needs_onnx
def test_real_images_give_pyconvnets_evaluation_probabilities(exported):
    """The evaluation's own batches of the validation images (centre crop and ten crops, made by
    the Loader as pyconvnet.evaluate makes them), through both networks."""
    model, dataset, path = exported
    for transform in ("center", "ten"):
        with Loader(dataset, "val", 8, transform=transform, crop=64) as loader:
            for batch in loader.epoch(0):
                x = batch.inputs.numpy()
                assert_close(onnx_probabilities(path, x), pyconvnet_probabilities(model, x), rtol=0, atol=ATOL,
                             what=f"{transform} crops of validation images {batch.indices.tolist()}")


@needs_onnx
def test_metadata_describes_the_preprocessing(exported, tiny_run):
    model, dataset, path = exported
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["classes"]) == dataset.class_names() == load_model(tiny_run / "checkpoint.npz")[1]["classes"]
    assert (meta["image_size"], meta["crop_size"], meta["resample"]) == ("72", "64", "bilinear")
    assert json.loads(meta["mean_image_shape"]) == [72, 72, 3]
    mean = np.frombuffer(base64.b64decode(meta["mean_image"]), "<f4").reshape(72, 72, 3)
    assert np.array_equal(mean, dataset.mean)
    assert_close(json.loads(meta["mean_rgb"]), dataset.mean.astype(np.float64).mean(axis=(0, 1)), rtol=1e-12, atol=0)
    assert "image_size" in meta["preprocessing"]


@needs_onnx
def test_graph_is_the_evaluation_network(exported):
    _, _, path = exported
    proto = onnx.load(str(path))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,), (out,) = proto.graph.input, proto.graph.output
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["N", 3, 64, 64] and [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["N", 10]
    ops_used = [n.op_type for n in proto.graph.node]
    attrs = [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in proto.graph.node]
    assert [a["group"] for n, a in zip(ops_used, attrs) if n == "Conv"] == [1, 2, 1, 2, 2]
    lrn = [a for n, a in zip(ops_used, attrs) if n == "LRN"]
    assert len(lrn) == 4 and ops_used.count("Split") == 2 and ops_used.count("Concat") == 2  # 2 per LRN layer
    assert all(a == {"size": 5, "alpha": pytest.approx(1e-4), "beta": 0.75, "bias": 2.0} for a in lrn)
    pools = [a for n, a in zip(ops_used, attrs) if n == "MaxPool"]
    assert pools == [{"kernel_shape": [3, 3], "strides": [2, 2]}] * 3
    assert [a for n, a in zip(ops_used, attrs) if n == "Gemm"] == [{"transB": 1}] * 3
    assert ops_used[-1] == "Softmax" and "Dropout" not in ops_used


@needs_onnx
def test_every_layer_form_on_a_network_where_lrn_matters(rng):
    """A small network with a strong LRN (alpha 0.5, size 3) and odd shapes: the exported layers
    compute what pyconvnet's do, not only what a nearly linear LRN hides."""
    layers = [Conv2d("conv", 3, 8, 3, stride=2, padding=1, std=0.5, rng=rng), ReLU("relu"),
              LRN("lrn", size=3, alpha=0.5, beta=0.75, k=1.0, groups=2), MaxPool2d("pool", 3, 2),
              Conv2d("conv2", 8, 6, 3, padding=1, groups=2, std=0.5, bias=0.1, rng=rng), LRN("lrn2", size=5, alpha=0.3),
              Flatten("flatten"), Linear("fc", 6 * 4 * 4, 7, std=0.1, bias=0.2, rng=rng)]
    model = Sequential("small", layers, (3, 19, 19), {"num_classes": 7})
    pre = Preprocessing(24, 19, "bilinear", np.zeros((24, 24, 3), np.float32))
    proto = export.onnx_model(model, pre, [f"c{i}" for i in range(7)])
    x = rng.normal(0, 2, (5, 3, 19, 19)).astype(np.float32)
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x})[0]
    assert_close(got, pyconvnet_probabilities(model, x), rtol=0, atol=ATOL, what="probabilities")


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "onnxruntime.InferenceSession" in b]
    assert len(blocks) == 1, "the README has one onnxruntime example"
    return blocks[0]


@needs_onnx
def test_the_readme_example_classifies_as_pyconvnet_does(exported, tiny_run):
    model, _, path = exported
    photo = sorted((tiny_run.parent / "src" / "val" / "star").iterdir())[0]
    code = readme_example()
    assert '"alexnet.onnx"' in code and '"photo.jpg"' in code and len(code.splitlines()) <= 14
    scope = {}
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(code.replace('"alexnet.onnx"', repr(str(path))).replace('"photo.jpg"', repr(str(photo))), scope)
    dataset = PreparedDataset(tiny_run.parent / "data")
    pre = Preprocessing.of(dataset, 64)
    expected = pyconvnet_probabilities(model, pre.crops(pre.load(photo)[None]).numpy())[0]
    assert_close(scope["probs"], expected, rtol=0, atol=ATOL, what="the README's probabilities")
    lines = printed.getvalue().splitlines()
    names = dataset.class_names()
    assert lines == [f"{expected[c]:.1%} {names[c]}" for c in np.argsort(-expected, kind="stable")[:5]]


def one_line_error(argv, capsys, words):
    assert export.main([str(a) for a in argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert captured.out == "" and len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], captured.err


def test_without_onnx_export_says_how_to_get_it(tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    one_line_error([tiny_run, "--onnx", tmp_path / "m.onnx"], capsys, 'pip install ".[onnx]"')
    assert not (tmp_path / "m.onnx").exists()


@needs_onnx
def test_the_command_reports_the_file_and_bad_input_is_a_one_line_error(tiny_run, tmp_path, capsys):
    assert export.main([str(tiny_run / "checkpoint.npz"), "--onnx", str(tmp_path / "new" / "m.onnx")]) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"{tmp_path / 'new' / 'm.onnx'}: AlexNet") and "ONNX opset 17" in line
    shutil.rmtree(tmp_path / "new")
    one_line_error([tmp_path / "none.npz", "--onnx", tmp_path / "m.onnx"], capsys, "no such file")
    (tmp_path / "taken").mkdir()
    one_line_error([tiny_run, "--onnx", tmp_path / "taken"], capsys, "cannot write it")
    assert list(tmp_path.iterdir()) == [tmp_path / "taken"]  # no temporary file left behind
    one_line_error([tiny_run, "--onnx", tmp_path / "m.onnx", "--data", tmp_path / "missing"], capsys,
                   "no such directory")


def test_help_shows_examples(capsys):
    with pytest.raises(SystemExit) as e:
        export.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "python -m pyconvnet.export runs/DATE --onnx alexnet.onnx" in text and 'pip install ".[onnx]"' in text
