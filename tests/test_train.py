"""The trainer end to end on a tiny dataset: learning, determinism, checkpoints, resumption after
Ctrl-C and after a kill, evaluation, and the one-line errors of the command-line tools."""
import io
import json
import os
import pathlib
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import pyconvnet
from pyconvnet import checkpoint, evaluate, train
from pyconvnet import data as datamod
from pyconvnet.inference import load_model
from pyconvnet.rundir import CHECKPOINT_NAME, LOG_NAME, RunDir
from pyconvnet.trainer import Trainer
from tinyrun import TINY, make_tiny_data, run_train

@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp("tiny"))


def weights(run_dir):
    arrays, meta = checkpoint.load(pathlib.Path(run_dir) / CHECKPOINT_NAME)
    return arrays, meta


HISTORY_FIELDS = ("epoch", "lr", "train_loss", "train_top1_error", "train_top5_error", "val_loss", "val_top1_error",
                  "val_top5_error", "lr_dropped")


def assert_same_history(meta_a, meta_b):
    """The logged history of two runs agrees (everything but the times)."""
    a = [{k: r[k] for k in HISTORY_FIELDS} for r in meta_a["history"]]
    b = [{k: r[k] for k in HISTORY_FIELDS} for r in meta_b["history"]]
    assert a == b


def log_records(run_dir):
    return [json.loads(line) for line in (pathlib.Path(run_dir) / LOG_NAME).read_text().splitlines()]


def assert_log_without_duplicates(run_dir, epochs):
    records = log_records(run_dir)
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == list(range(1, epochs + 1))
    steps = [(r["epoch"], r["step"]) for r in records if r["event"] == "step"]
    assert len(steps) == len(set(steps)) and steps == sorted(steps)
    finals = [r["epoch"] for r in records if r["event"] == "final"]  # one per time the run finished
    assert len(finals) == len(set(finals)) and records[-1]["event"] == "final" and finals[-1] == epochs


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


def test_resume_after_an_epoch_matches_an_uninterrupted_run(tiny_data, tmp_path, monkeypatch):
    keys = []
    real_dropout = pyconvnet.layers.ops.dropout
    monkeypatch.setattr(pyconvnet.layers.ops, "dropout",
                        lambda x, p, seed, **kw: keys.append(seed) or real_dropout(x, p, seed, **kw))
    run_train(["--data", tiny_data, "--epochs", "3", "--out", str(tmp_path / "full"), *TINY])
    monkeypatch.undo()
    # Every step of every epoch, in each of the two dropout layers, has a mask of its own.
    assert len(keys) == 2 * 3 * 5 and len(set(keys)) == len(keys)
    run_train(["--data", tiny_data, "--epochs", "1", "--out", str(tmp_path / "part"), *TINY])
    _, text = run_train(["--resume", str(tmp_path / "part"), "--epochs", "3"])
    assert "resuming" in text
    full, fmeta = weights(tmp_path / "full")
    part, pmeta = weights(tmp_path / "part")
    for k in full:
        assert np.array_equal(full[k], part[k]), k
    assert fmeta["epoch"] == pmeta["epoch"] == 3
    assert_same_history(fmeta, pmeta)
    assert_log_without_duplicates(tmp_path / "part", 3)


def _spawn(args, cwd):
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PYTHONPATH=str(pathlib.Path(pyconvnet.__file__).resolve().parents[1]))
    return subprocess.Popen([sys.executable, "-m", "pyconvnet.train", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_weights_do_not_depend_on_the_thread_count(tiny_data, tmp_path):
    """Every CPU kernel splits its work into the same pieces and sums in the same order whatever
    the number of threads: one thread and two give bit-identical weights."""
    runs = {}
    for threads in ("1", "2"):
        out = tmp_path / f"t{threads}"
        env = dict(os.environ, OMP_NUM_THREADS=threads,
                   PYTHONPATH=str(pathlib.Path(pyconvnet.__file__).resolve().parents[1]))
        r = subprocess.run([sys.executable, "-m", "pyconvnet.train", "--data", tiny_data, "--epochs", "1",
                            "--seed", "4", "--out", str(out), *TINY], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        runs[threads], _ = weights(out)
    for k in runs["1"]:
        assert np.array_equal(runs["1"][k], runs["2"][k]), k


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


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_resume_after_ctrl_c_or_kill_mid_epoch_matches_uninterrupted_run(tiny_data, tmp_path, sig):
    """Ctrl-C (or SIGTERM) saves a checkpoint at the current step; a kill loses the epoch in
    progress and the run continues from the last epoch's checkpoint. Either way the final weights
    and the logged history are identical, and the log holds no record twice."""
    args = ["--data", tiny_data, "--epochs", "3", *TINY]
    run_train([*args, "--out", str(tmp_path / "full")])
    proc = _spawn([*args, "--out", str(tmp_path / "cut")], cwd=tmp_path)
    _wait_for(proc, "epoch 2/3 step 2/")  # mid-epoch 2, after epoch 1's checkpoint
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=120)
    if sig in (signal.SIGINT, signal.SIGTERM):
        assert proc.returncode == 128 + sig, rest
        assert "checkpoint saved" in rest and "--resume" in rest
        _, meta = weights(tmp_path / "cut")
        assert meta["epoch"] == 1 and meta["step"] >= 2
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not [p for p in (tmp_path / "cut").iterdir() if p.name.endswith(".tmp")] or sig == signal.SIGKILL
    run_train(["--resume", str(tmp_path / "cut")])
    full, fmeta = weights(tmp_path / "full")
    cut, meta = weights(tmp_path / "cut")
    assert meta["epoch"] == 3
    for k in full:
        assert np.array_equal(full[k], cut[k]), k
    assert_same_history(fmeta, meta)
    assert_log_without_duplicates(tmp_path / "cut", 3)


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
    (["--precision", "fp16"], "error: --precision must be fp32 or tf32; got 'fp16'"),
    (["--device", "cpu", "--precision", "tf32"], "error: --precision tf32: cpu has no TF32 kernels for conv2d and "
     "linear (they run on CUDA tensor cores); use --precision fp32 or a CUDA device"),
    (["--epochs", "0"], "error: --epochs must be >= 1; got 0"),
    (["--lr", "-1"], "error: --lr must be > 0; got -1.0"),
    (["--resume", "/nonexistent/run"], "error: checkpoint /nonexistent/run/checkpoint.npz: no such file"),
    (["--crop-size", "40"], "error: --crop-size must be at least 63 for AlexNet's strides; got 40"),
    (["--width", "0"], "error: --width must be > 0; got 0.0"),
    (["--patience", "0"], "error: --patience must be >= 1; got 0"),
    (["--lr", "inf"], "error: --lr must be a finite number; got inf"),
    (["--lr", "nan"], "error: --lr must be > 0; got nan"),
    (["--weight-decay", "nan"], "error: --weight-decay must be >= 0; got nan"),
    (["--weight-decay", "inf"], "error: --weight-decay must be a finite number; got inf"),
    (["--width", "nan"], "error: --width must be > 0; got nan"),
    (["--width", "inf"], "error: --width must be at most 16 (16 times the paper's channels); got inf"),
    (["--seed", "-1"], "error: --seed must be in [0, 2^64); got -1"),
    (["--seed", str(2 ** 64)], f"error: --seed must be in [0, 2^64); got {2 ** 64}"),
    (["--epochs", str(2 ** 40)], f"error: --epochs must be at most {2 ** 29 - 1}; got {2 ** 40}"),
    (["--lr-drop-epochs", "0,5"], "error: --lr-drop-epochs must be epochs >= 1; got '0,5'"),
    (["--resume", "/nonexistent/run", "--lr", "inf"], "error: --lr must be a finite number; got inf"),
])
def test_bad_flags_are_one_line_errors(argv, message, capsys):
    assert train.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == message


def test_resume_refuses_changed_settings_and_finished_runs(tiny_data, tmp_path, capsys):
    run_train(["--data", tiny_data, "--epochs", "1", "--out", str(tmp_path / "r"), *TINY])
    assert train.main(["--resume", str(tmp_path / "r"), "--batch-size", "8"]) == 2
    assert "only --epochs, --lr, --device, --devices and --precision may change (got --batch-size)" in capsys.readouterr().err
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


def test_unusable_out_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked").chmod(0o500)
    cases = [(tmp_path / "file", "exists and is not a directory"),
             (tmp_path / "file" / "run", "is a file, so nothing can be created inside it")]
    if os.geteuid() != 0:  # root writes anywhere
        cases.append((tmp_path / "locked" / "run", "is not writable"))
    for out, words in cases:
        assert train.main(["--out", str(out), "--device", "cpu", "--data", str(tmp_path / "no-data")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --out {out}: ") and words in err and err.count("\n") == 1, err


def test_batch_larger_than_the_training_set_is_refused(tiny_data, tmp_path, capsys):
    args = ["--data", tiny_data, "--out", str(tmp_path / "r"), *TINY, "--batch-size", "1000000000"]
    assert train.main(args) == 2
    assert "--batch-size 1000000000 is larger than the 80 training images" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_divergence_at_an_epochs_last_step_keeps_the_last_good_checkpoint(tiny_data, tmp_path, capsys):
    """One step per epoch: the loss before the update is finite, the weights after it are not. The
    run stops at the validation (its loss is NaN); no diverged model is ever checkpointed."""
    one_step = ["--data", tiny_data, *TINY, "--batch-size", "80"]
    assert train.main([*one_step, "--epochs", "2", "--lr", "1e30", "--out", str(tmp_path / "new")]) == 2
    err = capsys.readouterr().err
    assert "the validation loss became nan after epoch 1" in err and "no checkpoint was written yet" in err, err
    assert not (tmp_path / "new" / CHECKPOINT_NAME).exists()
    run_train([*one_step, "--epochs", "1", "--out", str(tmp_path / "r")])
    before = (tmp_path / "r" / CHECKPOINT_NAME).read_bytes()
    assert train.main(["--resume", str(tmp_path / "r"), "--epochs", "3", "--lr", "1e30"]) == 2
    err = capsys.readouterr().err
    assert "after epoch 2" in err and f"the last good checkpoint {tmp_path / 'r' / CHECKPOINT_NAME} is kept" in err
    assert (tmp_path / "r" / CHECKPOINT_NAME).read_bytes() == before
    _, meta = weights(tmp_path / "r")
    assert meta["epoch"] == 1


def test_a_diverged_model_is_never_saved(tiny_data, tmp_path):
    run_train(["--data", tiny_data, "--epochs", "1", "--out", str(tmp_path / "r"), *TINY])
    before = (tmp_path / "r" / CHECKPOINT_NAME).read_bytes()
    arrays, _ = checkpoint.load(tmp_path / "r" / CHECKPOINT_NAME)
    model, meta, _ = load_model(tmp_path / "r")
    dataset = datamod.open_dataset(tiny_data, meta["train_config"])
    try:
        trainer = Trainer(model, dataset, meta["train_config"], tmp_path / "r", out=io.StringIO())
        trainer.restore(arrays, meta)
        layer = next(l for l in model.layers if l.name == "fc7")
        w = layer.params["weight"].numpy()
        w[0, 0] = np.inf
        layer.params["weight"] = pyconvnet.tensor(w)
        with pytest.raises(pyconvnet.errors.UserError, match="model/fc7.weight became non-finite.*last good checkpoint"):
            trainer.save()
    finally:
        dataset.close()
    assert (tmp_path / "r" / CHECKPOINT_NAME).read_bytes() == before


def test_a_run_directory_has_one_owner(tiny_data, tmp_path, capsys):
    run_train(["--data", tiny_data, "--epochs", "1", "--out", str(tmp_path / "r"), *TINY])
    with RunDir(tmp_path / "r").open():  # another trainer holds it
        assert train.main(["--resume", str(tmp_path / "r"), "--epochs", "2"]) == 2
        err = capsys.readouterr().err
        assert f"{tmp_path / 'r'} is in use by another trainer (process {os.getpid()})" in err, err
        (tmp_path / "new").mkdir()
        with RunDir(tmp_path / "new").open():
            assert train.main(["--data", tiny_data, "--epochs", "1", "--out", str(tmp_path / "new"), *TINY]) == 2
            assert "is in use by another trainer" in capsys.readouterr().err
            assert not (tmp_path / "new" / CHECKPOINT_NAME).exists()
        # A new run on a held directory that already has a checkpoint names the owner too.
        assert train.main(["--data", tiny_data, "--epochs", "1", "--out", str(tmp_path / "r"), *TINY]) == 2
        assert "is in use by another trainer" in capsys.readouterr().err
    _, meta = weights(tmp_path / "r")
    assert meta["epoch"] == 1
    run_train(["--resume", str(tmp_path / "r"), "--epochs", "2"])  # released: the next owner goes on


def test_two_trainers_on_one_out_the_second_exits_at_once(tiny_data, tmp_path):
    # The first is killed below; enough epochs that it is still training whenever the second starts
    # (it may already have saved a checkpoint: the lock is still named first).
    args = ["--data", tiny_data, "--epochs", "1000", "--out", str(tmp_path / "r"), *TINY]
    first = _spawn(args, cwd=tmp_path)
    try:
        _wait_for(first, "epoch 1/1000 step 1/")
        second = _spawn(args, cwd=tmp_path)
        out, _ = second.communicate(timeout=120)
        assert second.returncode == 2 and "is in use by another trainer" in out, out
    finally:
        first.kill()
        first.communicate()


def test_a_run_killed_during_its_final_evaluation_redoes_it_on_resume(tiny_data, tmp_path, capsys):
    run_train(["--data", tiny_data, "--epochs", "1", "--out", str(tmp_path / "r"), *TINY])
    log = tmp_path / "r" / LOG_NAME
    full = log.read_text()
    log.write_text("".join(l + "\n" for l in full.splitlines() if '"final"' not in l))  # as if killed there
    before = (tmp_path / "r" / CHECKPOINT_NAME).read_bytes()
    result, text = run_train(["--resume", str(tmp_path / "r")])
    assert "final evaluation" in text and "final validation error, 10 crops" in text
    assert result["ten_crop"]["count"] == 20
    assert_log_without_duplicates(tmp_path / "r", 1)
    assert (tmp_path / "r" / CHECKPOINT_NAME).read_bytes() == before
    assert train.main(["--resume", str(tmp_path / "r")]) == 2
    assert "already finished its 1 epochs" in capsys.readouterr().err


def test_stale_temporaries_of_a_killed_run_are_removed_on_resume(tiny_data, tmp_path):
    run_train(["--data", tiny_data, "--epochs", "1", "--out", str(tmp_path / "r"), *TINY])
    stale = tmp_path / "r" / f"{CHECKPOINT_NAME}.99999999.tmp"
    stale.write_bytes(b"half a checkpoint")
    run_train(["--resume", str(tmp_path / "r"), "--epochs", "2"])
    assert not stale.exists()
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [CHECKPOINT_NAME, "config.json", "lock", LOG_NAME]


def _file_size_limit(limit):
    def set_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead
    return set_limit


def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_leaves_no_temporary(tiny_data, tmp_path):
    """The file-size limit makes every write past 200 kB fail, as a full disk would: the (2 MB)
    checkpoint cannot be written; the config and the log can."""
    env = dict(os.environ, PYTHONPATH=str(pathlib.Path(pyconvnet.__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-m", "pyconvnet.train", "--data", tiny_data, "--epochs", "1",
                           "--out", str(tmp_path / "r"), *TINY], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, preexec_fn=_file_size_limit(200_000))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write the checkpoint {tmp_path / 'r'}"), proc.stderr
    assert "File too large" in lines[0] or "No space left" in lines[0]
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["config.json", "lock", LOG_NAME]
