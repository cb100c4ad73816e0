"""The two columns on two devices: cross-device copies, concat and split (csrc/transfer.h), the
column plan (pyconvnet/columns.py) against one device, and `train --devices`."""
import numpy as np
import pytest

import pyconvnet
from pyconvnet import _C, columns, distributed
from pyconvnet.errors import UserError
from pyconvnet.inference import fc7_features
from pyconvnet.models import alexnet, loss_and_grad
from pyconvnet.trainer import Trainer
from tinyrun import TINY, make_tiny_data, run_train

needs_two = pytest.mark.skipif(
    pyconvnet.cuda.device_count() < 2,
    reason=f"needs 2 CUDA devices; {pyconvnet.cuda.device_count()} visible "
           f"({pyconvnet.cuda.unavailable_reason() or 'one device'})")
COLUMNS = ["cuda:0", "cuda:1"]


@pytest.fixture(params=[True, False], ids=["peer", "staged"])
def peer_copies(request):
    """Cross-device copies peer to peer where the devices allow it, then staged through host memory."""
    previous = pyconvnet.cuda.peer_copies()
    pyconvnet.cuda.set_peer_copies(request.param)
    yield request.param
    pyconvnet.cuda.set_peer_copies(previous)


# ---------------------------------------------------------------------------- concat and split

def test_concat_and_split_along_axis_1_on_the_cpu(rng):
    a = rng.standard_normal((3, 2, 4, 5)).astype(np.float32)
    b = rng.standard_normal((3, 5, 4, 5)).astype(np.float32)
    joined = _C.concat([pyconvnet.tensor(a), pyconvnet.tensor(b)], "cpu")
    assert np.array_equal(joined.numpy(), np.concatenate([a, b], axis=1))
    parts = _C.split(joined, [2, 5], ["cpu", "cpu"])
    assert np.array_equal(parts[0].numpy(), a) and np.array_equal(parts[1].numpy(), b)


def test_concat_and_split_check_their_arguments():
    with pytest.raises(ValueError, match=r"concat: part 1 must match part 0 Tensor\(shape=\(2, 3\).*in dtype and "
                                         r"every axis but 1; got Tensor\(shape=\(3, 3\)"):
        _C.concat([pyconvnet.zeros((2, 3)), pyconvnet.zeros((3, 3))], "cpu")
    with pytest.raises(ValueError, match=r"split: the slice sizes must sum to axis 1 of .*; they sum to 4"):
        _C.split(pyconvnet.zeros((2, 3)), [2, 2], ["cpu", "cpu"])
    with pytest.raises(ValueError, match="split: needs one device per slice; got 2 sizes and 1 devices"):
        _C.split(pyconvnet.zeros((2, 3)), [2, 1], ["cpu"])


@pytest.mark.parametrize("devices, message", [
    (["cuda:0"], "the two columns need exactly 2 devices; got 1 (cuda:0)"),
    (["cuda:0", "cuda:1", "cuda:2"], "the two columns need exactly 2 devices; got 3"),
    (["cpu", "cuda:0"], "the columns run on CUDA devices ('cuda:N'); got 'cpu'"),
    (["cuda:1", "cuda:1"], "the two columns need two different devices; got cuda:1 twice"),
    (["cuda", "cuda:0"], "the two columns need two different devices; got cuda:0 twice"),
])
def test_to_columns_refuses_anything_but_two_distinct_cuda_devices(devices, message):
    model = alexnet(num_classes=4, input_size=63, width=0.0625)
    with pytest.raises(ValueError, match="to_columns: " + message.replace("(", r"\(").replace(")", r"\)")):
        model.to_columns(devices)


@pytest.mark.parametrize("flag, message", [
    ("cuda:0", "--devices: the two columns need exactly 2 devices; got 1 (cuda:0)"),
    ("cuda:0,cuda:0", "--devices: the two columns need two different devices; got cuda:0 twice"),
    ("cpu,cuda:0", "--devices: the columns run on CUDA devices ('cuda:N'); got 'cpu'"),
    ("cuda:0,cuda:1,cuda:2", "--devices: the two columns need exactly 2 devices; got 3 (cuda:0, cuda:1, cuda:2)"),
])
def test_train_devices_errors_are_one_line(flag, message, capsys):
    from pyconvnet import train

    assert train.main(["--devices", flag, "--out", "/nonexistent/never-made"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"


@pytest.mark.skipif(pyconvnet.cuda.device_count() >= 2, reason="checks the message of a missing second device")
def test_train_devices_names_a_missing_device(capsys):
    from pyconvnet import train

    assert train.main(["--devices", "cuda:0,cuda:1", "--out", "/nonexistent/never-made"]) == 2
    assert "error: --devices: device cuda:0 does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------------------- on two devices

@pytest.mark.cuda
@needs_two
@pytest.mark.parametrize("shape, sizes", [((3, 6, 5, 5), [4, 2]), ((2, 10), [5, 5]), ((0, 4), [1, 3])])
def test_split_and_concat_across_devices(rng, peer_copies, shape, sizes):
    x = rng.standard_normal(shape).astype(np.float32)
    parts = _C.split(pyconvnet.tensor(x, "cuda:0"), sizes, COLUMNS)
    assert [p.device for p in parts] == COLUMNS
    cuts = np.split(x, np.cumsum(sizes)[:-1], axis=1)
    for p, want in zip(parts, cuts):
        assert np.array_equal(p.numpy(), want)
    for where in COLUMNS:
        joined = _C.concat(parts, where)
        assert joined.device == where and np.array_equal(joined.numpy(), x)
    moved = _C.transfer(parts[1], "cuda:0")
    assert moved.device == "cuda:0" and np.array_equal(moved.numpy(), cuts[1])


def _grads(model):
    return model.merge({key: layer.grads[p].numpy() for key, layer, p in model.parameters()})


def _assert_relative(actual, expected, what, rtol=1e-5):
    """|actual - expected| <= rtol * max|expected|, elementwise: agreement relative to the array's scale."""
    scale = float(np.abs(expected).max()) or 1.0
    worst = float(np.abs(actual.astype(np.float64) - expected).max())
    assert worst <= rtol * scale, f"{what}: off by {worst:.3g}, {worst / scale:.3g} of its largest value {scale:.3g}"


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, needs_two])])
def layout(request, monkeypatch):
    """The two columns' devices: cuda:0 and cuda:1; or both on the CPU, which checks the plan's
    arithmetic on any machine (to_columns itself accepts only two distinct CUDA devices)."""
    if request.param == "cpu":
        monkeypatch.setattr(columns, "check_devices", lambda devices, who="": ["cpu", "cpu"])
        return ["cpu", "cpu"]
    return COLUMNS


@pytest.mark.parametrize("num_classes, first_row", [(6, 0), (5, 0), (6, 7)])
def test_two_columns_match_one_device_loss_and_every_gradient(rng, layout, num_classes, first_row):
    """loss_and_grad of the two-column layout agrees with the same network on one device within
    1e-5 (relative to each array's largest value): forward through every crossing, dropout with
    the one-device masks (also for a part of a batch that starts at row first_row), backward
    with the gradient sums where both columns read one input; on CUDA with peer copies and with
    copies staged through host memory."""
    where = layout[0]
    # The smallest input AlexNet's strides allow, a sixteenth of the channels: fc6-fc8 256 wide.
    one = alexnet(num_classes=num_classes, input_size=63, width=0.0625, seed=3, init="he").to(where)
    two = alexnet(num_classes=num_classes, input_size=63, width=0.0625, seed=3, init="he").to_columns(layout)
    state = one.state_dict()
    assert {k: v.shape for k, v in two.state_dict().items()} == {k: v.shape for k, v in state.items()}
    assert all(np.array_equal(two.state_dict()[k], state[k]) for k in state)
    assert [layer.params[p].device for _, layer, p in two.parameters()][:4] == [layout[0]] * 2 + [layout[1]] * 2
    assert two.num_parameters() == one.num_parameters()
    x = rng.standard_normal((3, 3, 63, 63)).astype(np.float32) * 50
    labels = rng.integers(0, num_classes, 3).astype(np.int32)

    def run(model):
        model.set_dropout_seed(11, 5, first_row)
        loss, logits = loss_and_grad(model, pyconvnet.tensor(x, where), pyconvnet.tensor(labels, where))
        assert logits.device == where
        return loss, logits.numpy(), _grads(model)

    loss1, logits1, grads1 = run(one)
    previous = pyconvnet.cuda.peer_copies()
    try:
        for peer in ([True, False] if where.startswith("cuda") else [True]):
            pyconvnet.cuda.set_peer_copies(peer)
            loss2, logits2, grads2 = run(two)
            assert abs(loss2 - loss1) <= 1e-5 * abs(loss1)
            _assert_relative(logits2, logits1, "logits")
            assert grads2.keys() == grads1.keys() == state.keys()
            for key in grads1:
                _assert_relative(grads2[key], grads1[key], f"gradient of {key} (peer copies {peer})")
    finally:
        pyconvnet.cuda.set_peer_copies(previous)


def test_a_trainer_of_two_columns_refuses_several_ranks(monkeypatch, tmp_path):
    """The columns train in one process: a Trainer given a model in columns and a group of two
    ranks raises a UserError that says so before it touches anything."""
    monkeypatch.setattr(columns, "check_devices", lambda devices, who="": ["cpu", "cpu"])
    model = alexnet(num_classes=4, input_size=63, width=0.0625, seed=3).to_columns(["cpu", "cpu"])

    class TwoRanks(distributed.Group):
        size = 2

    with pytest.raises(UserError, match=r"a model in two columns \(on cpu and cpu\) trains in one process; "
                                        r"this run has 2 ranks"):
        Trainer(model, None, {}, tmp_path / "run", group=TwoRanks())
    assert not (tmp_path / "run").exists()


def test_columns_move_to_one_device_and_back(rng, layout):
    model = alexnet(num_classes=4, input_size=63, width=0.0625, seed=1).to_columns(layout)
    state = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert all(np.array_equal(model.state_dict()[k], state[k]) for k in state)
    assert f"two columns on {layout[0]} and {layout[1]}" in model.summary().splitlines()[0]
    with pytest.raises(ValueError, match="fc7 features come from a network on one device"):
        fc7_features(model, pyconvnet.zeros((1, 3, 63, 63), device=layout[0]))
    model.to(layout[1])
    assert model.columns is None and {layer.params[p].device for _, layer, p in model.parameters()} == {layout[1]}
    assert all(np.array_equal(model.state_dict()[k], state[k]) for k in state)
    model.to_columns(layout)
    assert all(np.array_equal(model.state_dict()[k], state[k]) for k in state)
    with pytest.raises(ValueError, match=r"load_state_dict: 'fc8.bias' must have shape \(4,\); got \(5,\)"):
        model.load_state_dict(dict(state, **{"fc8.bias": np.zeros(5, np.float32)}))


@pytest.mark.cuda
@needs_two
def test_the_input_must_be_on_the_first_device():
    model = alexnet(num_classes=4, input_size=63, width=0.0625, seed=1).to_columns(COLUMNS)
    with pytest.raises(ValueError, match="the input must be a Tensor on cuda:0; got cuda:1"):
        model.forward(pyconvnet.zeros((1, 3, 63, 63), device="cuda:1"))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp("tiny"))


def test_train_on_two_columns_resumes_across_layouts(tiny_data, tmp_path, layout):
    """`train --devices cuda:0,cuda:1` trains an epoch; its checkpoint holds the one-device arrays
    (within float rounding of a one-device run's); the run resumes on one device, then on two
    columns again."""
    from pyconvnet import checkpoint
    from pyconvnet.rundir import CHECKPOINT_NAME

    where, both = layout[0], ",".join(layout)
    base = ["--data", tiny_data, *TINY[2:], "--epochs", "1"]
    _, printed = run_train([*base, "--devices", both, "--out", str(tmp_path / "two")])
    assert f"on {layout[0]} and {layout[1]} (two columns)" in printed
    run_train([*base, "--device", where, "--out", str(tmp_path / "one")])
    two, meta = checkpoint.load(tmp_path / "two" / CHECKPOINT_NAME)
    one, _ = checkpoint.load(tmp_path / "one" / CHECKPOINT_NAME)
    assert meta["train_config"]["devices"] == layout and two.keys() == one.keys()
    for key in one:  # five SGD steps from the same start: float rounding only
        _assert_relative(two[key], one[key], key, rtol=1e-3)
    _, printed = run_train(["--resume", str(tmp_path / "two"), "--epochs", "2", "--device", where])
    assert f"note: resuming on {where} (the run started on {layout[0]} and {layout[1]} (two columns))" in printed
    _, printed = run_train(["--resume", str(tmp_path / "two"), "--epochs", "3", "--devices", both])
    assert f"note: resuming on {layout[0]} and {layout[1]} (two columns) (the run started on {where})" in printed
    arrays, meta = checkpoint.load(tmp_path / "two" / CHECKPOINT_NAME)
    assert meta["epoch"] == 3 and arrays.keys() == one.keys() and meta["train_config"]["devices"] == layout
