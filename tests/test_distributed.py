"""Data-parallel training: `mpirun -n 2 python -m pyconvnet.train` on CPU ranks (and on simulated
devices, reducing through MPI) ends within 1e-4 of one process with the same global batch;
resuming works with another number of ranks; a failing rank ends the job with its number, never
a hang; without mpi4py a run under a launcher says what to install. The tests that start ranks
skip, with the reason, where mpi4py or mpirun is missing (a plain `pip install .`)."""
import ctypes
import importlib.util
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import types

import numpy as np
import pytest

import pyconvnet
from pyconvnet import checkpoint, distributed
from pyconvnet.errors import UserError
from pyconvnet.rundir import CHECKPOINT_NAME, LOG_NAME
from tinyrun import TINY, make_tiny_data, run_train

MPIRUN = shutil.which("mpirun", path=os.path.dirname(sys.executable)) or shutil.which("mpirun")
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
requires_mpi = pytest.mark.skipif(
    not (HAVE_MPI4PY and MPIRUN),
    reason=f"needs mpi4py and mpirun ({distributed.INSTALL_HINT}); "
           f"mpi4py {'found' if HAVE_MPI4PY else 'missing'}, mpirun {MPIRUN or 'missing'}")
TIMEOUT = 600  # seconds: a hung job fails the test instead of the suite
RTOL = 1e-4    # ranks sum gradients in another order than one process: weights agree to this


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp("tiny"))


def _env():
    return dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
                PYTHONPATH=str(pathlib.Path(pyconvnet.__file__).resolve().parents[1]))


def mpirun(ranks, args, cwd, script=None, timeout=TIMEOUT):
    """(exit code, stdout, stderr) of `ranks` processes of pyconvnet.train (or of `script`). A job
    still running after `timeout` seconds is killed, ranks included, and fails the test."""
    program = [script] if script else ["-m", "pyconvnet.train"]
    proc = subprocess.Popen([MPIRUN, "-n", str(ranks), sys.executable, *program, *args], cwd=cwd, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    out, err = _communicate(proc, timeout)
    return proc.returncode, out, err


def _communicate(proc, timeout):
    """proc.communicate(), but a job (started with start_new_session=True) still running after
    `timeout` seconds is killed, its ranks included, and fails the test."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"the job hung for {timeout} s:\n{out}\n{err or ''}") from None


def assert_weights_close(run_a, run_b, rtol=RTOL):
    a, _ = checkpoint.load(pathlib.Path(run_a) / CHECKPOINT_NAME)
    b, _ = checkpoint.load(pathlib.Path(run_b) / CHECKPOINT_NAME)
    assert a.keys() == b.keys()
    for k in a:
        if k.startswith(("model/", "momentum/")):
            scale = max(float(np.abs(b[k]).max()), 1e-30)
            assert float(np.abs(a[k] - b[k]).max()) <= rtol * scale, (k, float(np.abs(a[k] - b[k]).max()), scale)


# ------------------------------------------------------------------ without ranks


@pytest.mark.parametrize("rows,size", [(16, 2), (17, 2), (5, 3), (3, 4), (0, 2), (128, 7)])
def test_shares_cover_the_batch_in_order(rows, size):
    parts = [distributed.share(rows, r, size) for r in range(size)]
    assert parts[0][0] == 0 and parts[-1][1] == rows
    assert all(parts[r][1] == parts[r + 1][0] for r in range(size - 1))
    assert max(b - a for a, b in parts) - min(b - a for a, b in parts) <= 1


def test_launcher_size_comes_from_its_environment():
    assert distributed.launched_size({}) == 1
    assert distributed.launched_size({"PMI_SIZE": "4"}) == 4            # MPICH, Intel MPI
    assert distributed.launched_size({"OMPI_COMM_WORLD_SIZE": "3"}) == 3  # Open MPI
    assert distributed.init({}) is distributed.SINGLE


def test_the_parts_of_a_sharded_loader_are_the_batch(tiny_data):
    """Two shards yield the rows of one loader's batch, split in order, with the same inputs."""
    from pyconvnet.loader import Loader
    with Loader(tiny_data, "train", 16, crop=64, seed=4) as whole:
        batches = list(whole.epoch(1))
    for rank in (0, 1):
        with Loader(tiny_data, "train", 16, crop=64, seed=4, shard=(rank, 2)) as part:
            for b, p in zip(batches, part.epoch(1)):
                assert (p.first_row, p.batch_rows) == (8 * rank, 16)
                assert np.array_equal(p.indices, b.indices[8 * rank:8 * rank + 8])
                assert np.array_equal(p.inputs.numpy(), b.inputs.numpy()[8 * rank:8 * rank + 8])


def test_under_a_launcher_without_mpi4py_says_what_to_install(tiny_data, tmp_path):
    """PMI_SIZE=2 (as mpirun sets it) with mpi4py hidden: one error line naming the extra."""
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "from pyconvnet import train; sys.exit(train.main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "--data", tiny_data, "--out", str(tmp_path / "r"), *TINY],
                          env=dict(_env(), PMI_SIZE="2"), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: this is one of 2 processes started by an MPI launcher, but mpi4py is not installed: "
        'pip install "pyconvnet[mpi]" (mpi4py and MPICH), or run one process without mpirun']
    assert not (tmp_path / "r").exists()


def test_nccl_missing_is_a_user_error(monkeypatch):
    monkeypatch.setenv("PYCONVNET_NCCL_LIBRARY", "/nonexistent/libnccl.so.2")
    with pytest.raises(UserError, match=r'reduce gradients with NCCL, which could not be loaded .*pyconvnet\[nccl\]'):
        distributed.load_nccl()


# ------------------------------------------------------------------ ranks


def _step_losses(run_dir):
    """(epoch, step) -> loss of every step record in RUN_DIR's log."""
    lines = (pathlib.Path(run_dir) / LOG_NAME).read_text().splitlines()
    return {(r["epoch"], r["step"]): r["loss"] for r in map(json.loads, lines) if "loss" in r and "step" in r}


@requires_mpi
@pytest.mark.slow
def test_two_cpu_ranks_match_one_process_and_resume_with_one(tiny_data, tmp_path):
    """Same global batch (16): after an epoch (5 steps) 2 ranks of 8 are within 1e-4 of 1
    process; rank 0 alone prints and writes; 1 process resumes a 2-rank checkpoint where the
    ranks would go on (the same first loss of the next epoch).

    Weights are compared after one epoch, not two: the ranks sum each gradient in another order
    than one process (differences of ~1e-7), and a later step can turn such a difference into a
    different ReLU or max-pool decision, after which the two runs follow nearby but different
    paths (seen at epoch 2, step 3 of this run: losses equal to 1e-8 until then, weights 1e-3
    apart after it)."""
    args = ["--data", tiny_data, "--seed", "3", *TINY]
    run_train([*args, "--epochs", "1", "--out", str(tmp_path / "one")])
    code, out, err = mpirun(2, [*args, "--epochs", "1", "--out", str(tmp_path / "cut")], tmp_path)
    assert code == 0, out + err
    assert "2 ranks (gradients reduced with MPI through the host)" in out
    assert_weights_close(tmp_path / "cut", tmp_path / "one")

    code, out, err = mpirun(2, [*args, "--epochs", "2", "--out", str(tmp_path / "two")], tmp_path)
    assert code == 0, out + err
    assert out.count("epoch 2/2: train loss") == 1 and out.count("final validation error") == 1, out
    _, meta = checkpoint.load(tmp_path / "two" / CHECKPOINT_NAME)
    assert meta["epoch"] == 2 and len(meta["history"]) == 2

    run_train(["--resume", str(tmp_path / "cut"), "--epochs", "2"])
    _, meta = checkpoint.load(tmp_path / "cut" / CHECKPOINT_NAME)
    assert meta["epoch"] == 2 and len(meta["history"]) == 2
    # Step 1 of epoch 2 starts from the same weights and batch in both runs.
    resumed, ranks = _step_losses(tmp_path / "cut")[(2, 1)], _step_losses(tmp_path / "two")[(2, 1)]
    assert abs(resumed - ranks) <= 1e-6 * abs(ranks), (resumed, ranks)


@requires_mpi
def test_a_setup_error_is_printed_once(tiny_data, tmp_path):
    code, out, err = mpirun(2, ["--data", tiny_data, "--out", str(tmp_path / "r"), *TINY, "--batch-size", "1"],
                            tmp_path)
    assert code == 2, out + err
    assert err.strip().splitlines() == [
        "error: --batch-size 1 cannot be shared out over 2 ranks (each needs at least one image); use a batch of "
        "at least 2 images, or fewer ranks"], err


@requires_mpi
def test_two_columns_under_several_ranks_are_a_clear_error(tiny_data, tmp_path):
    """The two columns train in one process: --devices under mpirun -n 2 says so, once."""
    code, out, err = mpirun(2, ["--data", tiny_data, "--out", str(tmp_path / "r"), *TINY, "--devices",
                                "cuda:0,cuda:1"], tmp_path)
    assert code == 2, out + err
    assert err.strip().splitlines() == [
        "error: --devices cuda:0,cuda:1: the two columns train in one process, and this job has 2 ranks; run "
        "without mpirun for two columns, or give the ranks --device"], err
    assert not (tmp_path / "r").exists()


@requires_mpi
def test_ctrl_c_on_mpirun_stops_every_rank_at_one_step_with_a_checkpoint(tiny_data, tmp_path):
    proc = subprocess.Popen([MPIRUN, "-n", "2", sys.executable, "-m", "pyconvnet.train", "--data", tiny_data,
                             "--epochs", "30", "--out", str(tmp_path / "r"), *TINY], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "epoch 2/30 step 2/" in line:
            break
    else:
        raise AssertionError("never reached epoch 2, step 2:\n" + "".join(seen))
    proc.send_signal(signal.SIGINT)
    rest, _ = _communicate(proc, TIMEOUT)
    assert proc.returncode == 128 + signal.SIGINT, rest
    assert rest.count("checkpoint saved to") == 1, rest
    _, meta = checkpoint.load(tmp_path / "r" / CHECKPOINT_NAME)
    assert (meta["epoch"], meta["step"]) >= (1, 2)


LATE_SIGNAL = """\
import os
import signal
import sys
from mpi4py import MPI
from pyconvnet import train, trainer
if MPI.COMM_WORLD.Get_rank() == 1:
    step = trainer.Trainer.train_step
    def late(self, *args, **kw):
        result = step(self, *args, **kw)
        if self.epoch == 0 and self.step == 1:
            os.kill(os.getpid(), signal.SIGINT)  # after the step's sum: the ranks agreed to go on
        return result
    trainer.Trainer.train_step = late
sys.exit(train.main(sys.argv[1:]))
"""


@requires_mpi
def test_a_signal_on_one_rank_after_the_steps_sum_stops_every_rank_at_the_next_step(tiny_data, tmp_path):
    """Ctrl-C reaches rank 1 alone, just after the ranks agreed that nobody stops at this step:
    rank 1 must not save on its own (it would wait in the checkpoint's collective while rank 0
    waits in the next step's sum), but stop with everyone after the next step."""
    script = tmp_path / "late.py"
    script.write_text(LATE_SIGNAL)
    code, out, err = mpirun(2, ["--data", tiny_data, "--epochs", "3", "--out", str(tmp_path / "r"), *TINY],
                            tmp_path, script=str(script), timeout=120)
    assert code != 0, out + err
    assert out.count("checkpoint saved to") == 1, out + err
    assert "interrupted at epoch 1, step 3/" in out, out
    _, meta = checkpoint.load(tmp_path / "r" / CHECKPOINT_NAME)
    assert (meta["epoch"], meta["step"]) == (0, 3)


FAILING_RANK = """\
import sys
import types
from mpi4py import MPI
from pyconvnet import train, trainer
if MPI.COMM_WORLD.Get_rank() == 1:
    step = trainer.Trainer.train_step
    def failing(self, *args, **kw):
        if self.step == 2:
            raise RuntimeError("a failure of this rank")
        return step(self, *args, **kw)
    trainer.Trainer.train_step = failing
sys.exit(train.main(sys.argv[1:]))
"""


@requires_mpi
def test_a_failing_rank_ends_the_job_naming_the_rank(tiny_data, tmp_path):
    """Rank 1 raises in its third step while rank 0 waits for its gradients: the job ends (no
    hang: the test's timeout) with the traceback of rank 1."""
    script = tmp_path / "failing.py"
    script.write_text(FAILING_RANK)
    code, out, err = mpirun(2, ["--data", tiny_data, "--out", str(tmp_path / "r"), *TINY, "--epochs", "3"],
                            tmp_path, script=str(script))
    assert code != 0, out + err
    assert "error: rank 1 of 2 failed:" in err and "RuntimeError: a failure of this rank" in err, err
    assert "error: ending all 2 ranks" in err
    assert not (tmp_path / "r" / CHECKPOINT_NAME).exists()


@requires_mpi
@pytest.mark.cuda
@pytest.mark.slow
@pytest.mark.skipif(not pyconvnet.cuda.is_simulated(), reason="needs the CUDA simulator build (2 simulated devices "
                    "per process; real GPUs reduce with NCCL, which this test does not cover)")
def test_two_ranks_on_simulated_devices_reduce_through_mpi(tiny_data, tmp_path):
    args = ["--data", tiny_data, "--epochs", "1", "--seed", "2", *TINY, "--device", "cuda"]
    run_train([*args, "--out", str(tmp_path / "one")])
    code, out, err = mpirun(2, [*args, "--out", str(tmp_path / "two")], tmp_path)
    assert code == 0, out + err
    assert "on cuda:0" in out and "2 ranks (gradients reduced with MPI through the host)" in out, out
    assert_weights_close(tmp_path / "two", tmp_path / "one")


class FakeNccl:
    """The NCCL calls NcclReducer makes, on host memory, for one rank: AllReduce applies the
    PreMulSum weight in place (the sum over one rank)."""

    def __init__(self):
        self.calls, self.scalars = [], {}

    def __getattr__(self, name):
        if not name.startswith("nccl"):
            raise AttributeError(name)

        def call(*args):
            self.calls.append(name)
            return getattr(self, "_" + name, lambda *a: 0)(*args)
        return call

    def _ncclGetUniqueId(self, uid):
        ctypes.memmove(ctypes.addressof(uid._obj), b"\x01\x00\x02", 3)  # a zero inside: all 128 bytes must travel
        return 0

    def _ncclCommInitRank(self, comm, size, uid, rank):
        assert (size, rank) == (1, 0) and bytes(uid)[:3] == b"\x01\x00\x02"
        comm._obj.value = 0xC0
        return 0

    def _ncclRedOpCreatePreMulSum(self, op, scalar, dtype, residence, comm):
        op._obj.value = 64 + len(self.scalars)
        self.scalars[op._obj.value] = (scalar._obj.value, dtype, residence)
        return 0

    def _ncclAllReduce(self, send, recv, count, dtype, op, comm, stream):
        assert send == recv and comm.value == 0xC0 and stream.value == 0x5EA and dtype == 7
        data = (ctypes.c_float * count).from_address(recv)
        for i in range(count):
            data[i] *= self.scalars[op][0]
        return 0


def test_the_nccl_reducer_calls_nccl_as_its_interface_says(monkeypatch):
    """Without a GPU: NcclReducer's calls (unique id, communicator, PreMulSum op, grouped
    in-place AllReduce on the tensors' memory in the engine's stream) against a stand-in library
    on host memory."""
    fake = FakeNccl()
    monkeypatch.setattr(distributed, "load_nccl", lambda: fake)
    monkeypatch.setattr(distributed, "_C", types.SimpleNamespace(cuda_current_stream=lambda index: 0x5EA))
    reducer = distributed.NcclReducer(distributed.Group(), 0)
    grads = [pyconvnet.tensor(np.arange(6, dtype=np.float32).reshape(2, 3)), pyconvnet.tensor(np.ones(5, np.float32))]
    out = reducer.reduce(grads, 0.25)
    assert out is grads
    assert np.array_equal(grads[0].numpy(), np.arange(6, dtype=np.float32).reshape(2, 3) * 0.25)
    assert np.array_equal(grads[1].numpy(), np.full(5, 0.25, np.float32))
    assert fake.scalars[64] == (0.25, 7, 1)  # float32, a host scalar
    reducer.close()
    assert fake.calls == ["ncclGetUniqueId", "ncclCommInitRank", "ncclRedOpCreatePreMulSum", "ncclGroupStart",
                          "ncclAllReduce", "ncclAllReduce", "ncclGroupEnd", "ncclRedOpDestroy", "ncclCommDestroy"]
