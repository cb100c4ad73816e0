"""The trainer end to end on a tiny dataset: learning, determinism, checkpoints, resumption after
Ctrl-C and after a kill, evaluation, and the one-line errors of the command-line tools."""
import io
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import pyconvnet
from pyconvnet import checkpoint, evaluate, prepare, synthetic, train
from pyconvnet.trainer import CHECKPOINT_NAME, LOG_NAME

TINY = ["--device", "cpu", "--batch-size", "16", "--width", "0.125", "--init", "he", "--image-size", "72",
        "--crop-size", "64", "--lr", "0.01", "--log-every", "1"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    synthetic.generate(str(root / "src"), seed=3, train_per_class=8, val_per_class=2, workers=1)
    prepare.prepare(str(root / "src"), str(root / "prepared"), size=72, workers=1, progress=False)
    return str(root / "prepared")


def run_train(args, **kw):
    out = io.StringIO()
    result = train.run(args, out=out, **kw)
    return result, out.getvalue()


def weights(run_dir):
    arrays, meta = checkpoint.load(pathlib.Path(run_dir) / CHECKPOINT_NAME)
    return arrays, meta


def test_training_lowers_the_loss_and_reports_progress(tiny_data, tmp_path):
    result, text = run_train(["--data", tiny_data, "--epochs", "4", "--out", str(tmp_path / "r"), *TINY])
    hist = result["history"]
    assert len(hist) == 4
    assert hist[-1]["train_loss"] < hist[0]["train_loss"], [h["train_loss"] for h in hist]
    assert "epoch 4/4: train loss" in text and "val loss" in text and "(centre crop)" in text
    assert "img/s" in text and "ETA" in text
    assert "final validation error, 10 crops" in text
    assert f"python -m pyconvnet.evaluate {tmp_path / 'r' / CHECKPOINT_NAME}" in text
    records = [json.loads(l) for l in (tmp_path / "r" / LOG_NAME).read_text().splitlines()]
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == [1, 2, 3, 4]
    assert records[-1]["event"] == "final" and 0 <= records[-1]["val_top1_error_10crop"] <= 1
    assert any(r["event"] == "step" for r in records)


def test_same_seed_gives_identical_weights(tiny_data, tmp_path):
    for name in ("a", "b"):
        run_train(["--data", tiny_data, "--epochs", "2", "--seed", "5", "--out", str(tmp_path / name), *TINY])
    a, _ = weights(tmp_path / "a")
    b, _ = weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    run_train(["--data", tiny_data, "--epochs", "2", "--seed", "6", "--out", str(tmp_path / "c"), *TINY])
    c, _ = weights(tmp_path / "c")
    assert not np.array_equal(a["model/fc8.weight"], c["model/fc8.weight"])


def test_resume_after_an_epoch_matches_an_uninterrupted_run(tiny_data, tmp_path):
    run_train(["--data", tiny_data, "--epochs", "3", "--out", str(tmp_path / "full"), *TINY])
    run_train(["--data", tiny_data, "--epochs", "1", "--out", str(tmp_path / "part"), *TINY])
    _, text = run_train(["--resume", str(tmp_path / "part"), "--epochs", "3"])
    assert "resuming" in text
    full, fmeta = weights(tmp_path / "full")
    part, pmeta = weights(tmp_path / "part")
    for k in full:
        assert np.array_equal(full[k], part[k]), k
    assert fmeta["epoch"] == pmeta["epoch"] == 3


def _spawn(args, cwd):
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PYTHONPATH=str(pathlib.Path(pyconvnet.__file__).resolve().parents[1]))
    return subprocess.Popen([sys.executable, "-m", "pyconvnet.train", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(proc, needle, timeout=120):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    proc.kill()
    raise AssertionError(f"never saw {needle!r}; output:\n{''.join(seen)}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_resume_after_ctrl_c_or_kill_mid_epoch_matches_uninterrupted_run(tiny_data, tmp_path, sig):
    """Ctrl-C saves a checkpoint at the current step; a kill loses the epoch in progress and the
    run continues from the last epoch's checkpoint. Either way the final weights are identical."""
    args = ["--data", tiny_data, "--epochs", "3", *TINY]
    run_train([*args, "--out", str(tmp_path / "full")])
    proc = _spawn([*args, "--out", str(tmp_path / "cut")], cwd=tmp_path)
    _wait_for(proc, "epoch 2/3 step 2/")  # mid-epoch 2, after epoch 1's checkpoint
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=120)
    if sig == signal.SIGINT:
        assert proc.returncode == 130, rest
        assert "checkpoint saved" in rest and "--resume" in rest
        _, meta = weights(tmp_path / "cut")
        assert meta["epoch"] == 1 and meta["step"] >= 2
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not [p for p in (tmp_path / "cut").iterdir() if p.name.endswith(".tmp")] or sig == signal.SIGKILL
    run_train(["--resume", str(tmp_path / "cut")])
    full, _ = weights(tmp_path / "full")
    cut, meta = weights(tmp_path / "cut")
    assert meta["epoch"] == 3
    for k in full:
        assert np.array_equal(full[k], cut[k]), k


@pytest.mark.cuda
@pytest.mark.skipif(not pyconvnet.cuda.is_available(), reason="needs CUDA: trains on the GPU")
def test_cuda_training_resumes_after_a_kill_and_matches_an_uninterrupted_run(tiny_data, tmp_path):
    """`python -m pyconvnet.train --device cuda`, killed mid-epoch and resumed from the last
    epoch's checkpoint, ends with the weights of an uninterrupted run (bit-identical: the same
    kernels in the same order)."""
    args = ["--data", tiny_data, "--epochs", "2", *TINY, "--device", "cuda"]
    run_train([*args, "--out", str(tmp_path / "full")])
    proc = _spawn([*args, "--out", str(tmp_path / "cut")], cwd=tmp_path)
    _wait_for(proc, "epoch 2/2 step 2/", timeout=600)
    proc.kill()
    proc.communicate(timeout=120)
    _, meta = weights(tmp_path / "cut")
    assert meta["epoch"] == 1
    run_train(["--resume", str(tmp_path / "cut")])
    full, _ = weights(tmp_path / "full")
    cut, meta = weights(tmp_path / "cut")
    assert meta["epoch"] == 2
    for k in full:
        assert np.array_equal(full[k], cut[k]), k


def test_evaluate_reports_centre_and_ten_crop_errors(tiny_data, tmp_path):
    run_train(["--data", tiny_data, "--epochs", "1", "--out", str(tmp_path / "r"), *TINY])
    out = io.StringIO()
    results = evaluate.run([str(tmp_path / "r" / CHECKPOINT_NAME), "--data", tiny_data, "--device", "cpu"], out=out)
    text = out.getvalue()
    assert "val centre crop: top-1 error" in text and "val 10 crops" in text
    assert results["10 crops"]["count"] == results["centre crop"]["count"] == 20


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tiny_data, tmp_path):
    run_train(["--data", tiny_data, "--epochs", "1", "--out", str(tmp_path / "r"), *TINY])
    before, _ = weights(tmp_path / "r")
    with pytest.raises(pyconvnet.errors.UserError, match=r"the loss became (nan|inf).*last good checkpoint"):
        run_train(["--resume", str(tmp_path / "r"), "--epochs", "3", "--lr", "1e12"])
    after, _ = weights(tmp_path / "r")
    for k in before:
        assert np.array_equal(before[k], after[k])


@pytest.mark.parametrize("argv,message", [
    (["--data", "/nonexistent/dir"], "error: --data /nonexistent/dir: no such directory"),
    (["--device", "tpu"], "error: --device must be auto, cpu, cuda or cuda:N; got 'tpu'"),
    (["--epochs", "0"], "error: --epochs must be >= 1; got 0"),
    (["--lr", "-1"], "error: --lr must be > 0; got -1.0"),
    (["--resume", "/nonexistent/run"], "error: checkpoint /nonexistent/run/checkpoint.npz: no such file"),
    (["--crop-size", "40"], "error: --crop-size must be at least 63 for AlexNet's strides; got 40"),
    (["--width", "0"], "error: --width must be > 0; got 0.0"),
    (["--patience", "0"], "error: --patience must be >= 1; got 0"),
])
def test_bad_flags_are_one_line_errors(argv, message, capsys):
    assert train.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == message


def test_resume_refuses_changed_settings_and_finished_runs(tiny_data, tmp_path, capsys):
    run_train(["--data", tiny_data, "--epochs", "1", "--out", str(tmp_path / "r"), *TINY])
    assert train.main(["--resume", str(tmp_path / "r"), "--batch-size", "8"]) == 2
    assert "only --epochs, --lr and --device may change (got --batch-size)" in capsys.readouterr().err
    assert train.main(["--resume", str(tmp_path / "r")]) == 2
    assert "already finished its 1 epochs; pass --epochs N with N > 1" in capsys.readouterr().err


def test_corrupt_checkpoint_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / CHECKPOINT_NAME
    bad.write_bytes(b"not a zip file")
    assert evaluate.main([str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: checkpoint {bad}: unreadable or corrupt") and "\n" not in err


def test_checkpoint_roundtrip_is_atomic_and_pickle_free(tmp_path):
    path = tmp_path / "c.npz"
    checkpoint.save(path, {"w": np.arange(3, dtype=np.float32)}, {"epoch": 2})
    arrays, meta = checkpoint.load(path)
    assert np.array_equal(arrays["w"], np.arange(3, dtype=np.float32)) and meta["epoch"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary left behind
    with pytest.raises(ValueError, match="reserved"):
        checkpoint.save(path, {"__meta__": np.zeros(1)}, {})
