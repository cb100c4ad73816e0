"""Data-parallel training over several processes (ranks) started by an MPI launcher:

    mpirun -n 4 python -m pyconvnet.train ...

Every rank holds the whole model and computes its share of every batch (a contiguous run of the
batch's rows, `share`, taken by the loader); `GradientReducer.reduce` then sums the shares'
gradients, each weighted by its share of the batch (rows / batch size), so that every rank holds
the gradient of the batch's mean loss and applies the same update: the weights stay identical on
all ranks.
The reducer is one interface with two engines:

- `MpiReducer`: the gradients go through host memory (for CPU ranks, and for CUDA ranks on the
  simulator): one flat float32 buffer, one MPI_Allreduce (mpi4py);
- `NcclReducer`: for ranks on CUDA devices, ncclAllReduce on the device buffers, in the engine's
  op stream, with each rank's weight applied by NCCL (ncclRedOpCreatePreMulSum). The NCCL library
  is loaded at run time (the nvidia-nccl-cu13 wheel, `pip install "pyconvnet[nccl]"`, or the
  system's libnccl.so.2; PYCONVNET_NCCL_LIBRARY names a file); nothing is needed to build.

Small host values (the step's loss and hits, a stop request, evaluation counts) are summed with
`Group.sum`. Failures: where all ranks reach the same point (setting up, writing a checkpoint)
an error on any rank is raised on every rank (`Group.agree`, `Group.on_root`), as a SharedError
that rank 0 prints; anything else a rank raises is printed with the rank's number and ends the
whole job (`Group.abort`, MPI_Abort), so that no rank waits forever for a dead one.

Without a launcher (or with one process) `init()` returns `SINGLE`, whose collectives do
nothing; mpi4py is imported only when a launcher started several processes.
"""
from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import sys
import time
import traceback

import numpy as np

from . import _C, cuda
from .errors import UserError

# What launchers set in each process: the number of processes of the job.
_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")
INSTALL_HINT = 'pip install "pyconvnet[mpi]" (mpi4py and MPICH)'
ABORT_DELAY = 1.0  # seconds between a failing rank's last message and MPI_Abort


class SharedError(UserError):
    """An error every rank raised at the same point of the run: rank 0 prints it, once."""


def launched_size(env=None) -> int:
    """The number of processes the MPI launcher started, from its environment variables (1 when
    none is set)."""
    env = os.environ if env is None else env
    for name in _SIZE_VARIABLES:
        value = env.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def share(rows: int, rank: int, size: int) -> tuple[int, int]:
    """[start, stop): the rows of a batch of `rows` that rank `rank` of `size` computes: contiguous
    parts in rank order, sizes differing by at most one."""
    return rows * rank // size, rows * (rank + 1) // size


class Group:
    """The ranks of a run. This base class is one process: every collective is the identity."""

    rank, size, local_rank = 0, 1, 0

    def sum(self, values) -> np.ndarray:
        """float64 values summed over the ranks, on every rank."""
        return np.array(values, dtype=np.float64)

    def broadcast(self, obj):
        """Rank 0's `obj`, on every rank."""
        return obj

    def agree(self, error: BaseException | None) -> None:
        """A collective check: if any rank passes an error, every rank raises a SharedError with
        the message of the lowest such rank."""
        if error is not None:
            raise error

    def on_root(self, fn):
        """fn() run on rank 0 alone while the others wait; its result on every rank (its error
        raised on every rank)."""
        return fn()

    @contextlib.contextmanager
    def together(self):
        """A block that every rank runs, holding no collective: an exception in it on any rank is
        raised on every rank at its end (agree). One process: the exception as it is."""
        if self.size == 1:
            yield
            return
        error = None
        try:
            yield
        except Exception as e:  # raised on every rank by agree
            error = e
        self.agree(error)

    def device(self, device: str) -> str:
        """The device of this rank for a run on `device` ("cpu" or a CUDA device): with several
        ranks on CUDA, rank r takes device (local rank of r) mod (devices visible)."""
        if self.size == 1 or not device.startswith("cuda"):
            return device
        return f"cuda:{self.local_rank % cuda.device_count()}"

    def reducer(self, device: str) -> "GradientReducer":
        return GradientReducer()

    def reducer_name(self, device: str) -> str:
        """What reduces the gradients of ranks on `device`."""
        return "none"


SINGLE = Group()


class MpiGroup(Group):
    """The ranks of MPI_COMM_WORLD (mpi4py)."""

    def __init__(self, comm, MPI):
        self.comm, self.MPI = comm, MPI
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank = self.local.Get_rank()

    def sum(self, values) -> np.ndarray:
        buf = np.array(values, dtype=np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        return buf

    def broadcast(self, obj):
        return self.comm.bcast(obj, root=0)

    def agree(self, error):
        failed = self.comm.allgather(None if error is None else _describe(error))
        for rank, what in enumerate(failed):
            if what is not None:
                raise SharedError(what if rank == 0 else f"rank {rank} of {self.size}: {what}") from error

    def on_root(self, fn):
        result, error = None, None
        if self.rank == 0:
            try:
                result = fn()
            except Exception as e:  # raised on every rank by agree
                error = e
        self.agree(error)
        return self.broadcast(result)

    def abort(self, code: int) -> None:
        """Ends every process of the job (MPI_Abort) with exit code `code`."""
        sys.stderr.flush()
        sys.stdout.flush()
        time.sleep(ABORT_DELAY)  # the launcher forwards the last lines of output before it ends the job
        self.comm.Abort(code)

    def reducer(self, device: str) -> "GradientReducer":
        if self.reducer_name(device) == "NCCL":
            return NcclReducer(self, int(device.partition(":")[2] or 0))
        return MpiReducer(self)

    def reducer_name(self, device: str) -> str:
        return "NCCL" if device.startswith("cuda") and not cuda.is_simulated() else "MPI through the host"


def _describe(error: BaseException) -> str:
    """A UserError's message; for anything else its type, message and where it was raised."""
    if isinstance(error, UserError):
        return str(error)
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


def init(env=None) -> Group:
    """The group of this process: SINGLE without a launcher, else MPI_COMM_WORLD. A UserError if a
    launcher started several processes and mpi4py is missing."""
    size = launched_size(env)
    if size == 1:
        return SINGLE
    try:
        from mpi4py import MPI
    except ImportError:
        raise UserError(f"this is one of {size} processes started by an MPI launcher, but mpi4py is not "
                        f"installed: {INSTALL_HINT}, or run one process without mpirun") from None
    group = MpiGroup(MPI.COMM_WORLD, MPI)
    if group.size != size:
        raise UserError(f"the launcher started {size} processes but MPI sees {group.size}: mpi4py was built "
                        f"for another MPI than the launcher's (use the mpirun that comes with {INSTALL_HINT})")
    return group


def run_ranks(group: MpiGroup, main, argv=None) -> int:
    """main(argv) (a command line's exit code) on every rank of a group of several: a SharedError
    is printed by rank 0 alone (exit code 2), and any other exception on a rank is printed with
    the rank's number and aborts the whole job."""
    try:
        return main(argv)
    except SharedError as e:
        if group.rank == 0:
            print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    except SystemExit:  # argparse: every rank parsed the same arguments
        raise
    except BaseException as e:  # noqa: BLE001 -- every failure of one rank ends the job
        what = f"error: rank {group.rank} of {group.size} failed"
        if isinstance(e, UserError):
            print(f"{what}: {e}", file=sys.stderr, flush=True)
        else:
            print(f"{what}:\n{''.join(traceback.format_exception(e)).rstrip()}", file=sys.stderr, flush=True)
        print(f"error: ending all {group.size} ranks", file=sys.stderr, flush=True)
        code = 2 if isinstance(e, UserError) else 1
        group.abort(code)
        os._exit(code)  # should the launcher not have ended this process yet


# ---------------------------------------------------------------------------------------------
# Gradient reduction
# ---------------------------------------------------------------------------------------------


class GradientReducer:
    """Sums gradients over the ranks in place: afterwards every rank's tensors hold
    sum over ranks r of weight_r * gradient_r. One process: nothing to do (weight 1)."""

    def reduce(self, tensors: list, weight: float) -> list:
        """The reduced tensors (the same objects where the engine works in place)."""
        return tensors

    def close(self) -> None:
        pass


class MpiReducer(GradientReducer):
    """Through the host: the gradients are copied into one float32 buffer, scaled by the weight,
    summed by one MPI_Allreduce and copied back to their device."""

    def __init__(self, group: MpiGroup):
        self.group = group
        self.buffer = np.zeros(0, np.float32)

    def reduce(self, tensors, weight):
        sizes = [t.size for t in tensors]
        total = sum(sizes)
        if self.buffer.size != total:
            self.buffer = np.empty(total, np.float32)
        offset = 0
        for t, n in zip(tensors, sizes):
            self.buffer[offset:offset + n] = t.numpy().reshape(-1)
            offset += n
        if weight != 1.0:
            self.buffer *= np.float32(weight)
        self.group.comm.Allreduce(self.group.MPI.IN_PLACE, self.buffer, op=self.group.MPI.SUM)
        out, offset = [], 0
        for t, n in zip(tensors, sizes):
            out.append(_C.tensor_from_numpy(self.buffer[offset:offset + n].reshape(t.shape), t.device))
            offset += n
        return out


# NCCL's C interface (nccl.h): the values and types used here.
_NCCL_FLOAT32 = 7
_NCCL_SCALAR_HOST_IMMEDIATE = 1


class _NcclUniqueId(ctypes.Structure):
    _fields_ = [("internal", ctypes.c_char * 128)]


def nccl_library_path() -> str | None:
    """The NCCL library to load: PYCONVNET_NCCL_LIBRARY, else the nvidia-nccl wheel's, else None
    (the system's libnccl.so.2)."""
    if os.environ.get("PYCONVNET_NCCL_LIBRARY"):
        return os.environ["PYCONVNET_NCCL_LIBRARY"]
    try:
        import nvidia
    except ImportError:
        return None
    for root in getattr(nvidia, "__path__", []):
        found = sorted(glob.glob(os.path.join(root, "**", "libnccl.so*"), recursive=True))
        if found:
            return found[0]
    return None


def load_nccl():
    """The NCCL library (ctypes), or a UserError saying how to get it."""
    path = nccl_library_path() or "libnccl.so.2"
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise UserError(f"ranks on CUDA devices reduce gradients with NCCL, which could not be loaded ({e}): "
                        f'pip install "pyconvnet[nccl]" (the nvidia-nccl-cu13 wheel), or set '
                        f"PYCONVNET_NCCL_LIBRARY to a libnccl.so.2") from None
    lib.ncclGetErrorString.restype = ctypes.c_char_p
    lib.ncclCommInitRank.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, _NcclUniqueId, ctypes.c_int]
    lib.ncclAllReduce.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                                  ctypes.c_void_p, ctypes.c_void_p]
    lib.ncclRedOpCreatePreMulSum.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_void_p, ctypes.c_int,
                                             ctypes.c_int, ctypes.c_void_p]
    lib.ncclRedOpDestroy.argtypes = [ctypes.c_int, ctypes.c_void_p]
    lib.ncclCommDestroy.argtypes = [ctypes.c_void_p]
    return lib


class NcclReducer(GradientReducer):
    """On the devices: one ncclAllReduce per gradient (grouped into one NCCL launch) in the op
    stream of the rank's device, each rank's weight applied by a PreMulSum reduction. Not yet
    run: it needs ranks on real GPUs."""

    def __init__(self, group: MpiGroup, device_index: int):
        with group.together():
            self.lib = lib = load_nccl()
        uid = _NcclUniqueId()
        error = None
        if group.rank == 0:
            error = self._error("ncclGetUniqueId", lib.ncclGetUniqueId(ctypes.byref(uid)))
        group.agree(error)
        uid = _NcclUniqueId.from_buffer_copy(group.broadcast(bytes(uid)))  # all 128 bytes, zeros included
        self.stream = ctypes.c_void_p(_C.cuda_current_stream(device_index))
        self.comm = ctypes.c_void_p()
        group.agree(self._error("ncclCommInitRank",
                                lib.ncclCommInitRank(ctypes.byref(self.comm), group.size, uid, group.rank)))

    def _error(self, call: str, result: int):
        if result == 0:
            return None
        return UserError(f"{call} failed: {self.lib.ncclGetErrorString(result).decode()} (NCCL error {result})")

    def _check(self, call: str, result: int):
        error = self._error(call, result)
        if error is not None:
            raise error

    def reduce(self, tensors, weight):
        op, scalar = ctypes.c_int(), ctypes.c_float(weight)
        self._check("ncclRedOpCreatePreMulSum", self.lib.ncclRedOpCreatePreMulSum(
            ctypes.byref(op), ctypes.byref(scalar), _NCCL_FLOAT32, _NCCL_SCALAR_HOST_IMMEDIATE, self.comm))
        try:
            self._check("ncclGroupStart", self.lib.ncclGroupStart())
            for t in tensors:
                self._check("ncclAllReduce", self.lib.ncclAllReduce(
                    t.data_ptr, t.data_ptr, t.size, _NCCL_FLOAT32, op.value, self.comm, self.stream))
            self._check("ncclGroupEnd", self.lib.ncclGroupEnd())
        finally:
            self.lib.ncclRedOpDestroy(op.value, self.comm)
        return tensors

    def close(self):
        if self.comm:
            self.lib.ncclCommDestroy(self.comm)
            self.comm = ctypes.c_void_p()
