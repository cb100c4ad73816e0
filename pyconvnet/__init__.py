"""pyconvnet: a from-scratch CUDA convolution engine that trains the two-column AlexNet.

Tensors live on the CPU or a CUDA device::

    import numpy as np, pyconvnet
    x = pyconvnet.tensor(np.ones((2, 3), np.float32), device="cpu")
    y = pyconvnet.ops.relu(x)
    y.numpy()

The engine itself is the compiled extension ``pyconvnet._C``; this package is a thin layer over it.
"""
from ._engine import load_engine

_C = load_engine()
from ._C import CudaError, OutOfMemoryError, Tensor
from .tensor import as_tensor, empty, tensor, zeros
from . import cuda, ops, reference

__version__ = "0.1.0"


def cpu_info():
    """The CPU engine's configuration: ``isa``, the instruction-set path its kernels run
    ("avx512", "avx2" or "baseline": the best this CPU supports, or the one PYCONVNET_CPU_ISA
    or set_cpu_isa chose); ``supported``, the paths this CPU can run, best first; ``threads``,
    the threads its kernels use (OMP_NUM_THREADS); ``streaming_threshold``, the bytes (input and
    output together) above which the ReLU forward writes its output past the caches with
    non-temporal stores (the last-level cache's size; on AVX2 and AVX-512)."""
    return {"isa": _C.cpu_isa(), "supported": list(_C.cpu_isas()), "threads": _C.cpu_threads(),
            "streaming_threshold": _C.streaming_threshold()}


def measure_cpu_peak(seconds=0.05):
    """The CPU's FP32 arithmetic peak as measured on the active instruction-set path: every
    kernel thread runs 12 independent multiply-add chains (fused on AVX2 and AVX-512) at once for
    about `seconds`; each thread's rate is its fastest 0.1 ms block. Returns ``flops`` (FLOP/s,
    the threads' sum), ``per_thread``, ``isa`` and ``flops_per_step``. This is the rate at the
    clock the cores really run at with all of them busy, which the nominal clock does not give;
    on a loaded machine it reads low."""
    return dict(_C.measure_cpu_peak(seconds))


def set_cpu_isa(name):
    """Runs the CPU kernels on the instruction-set path `name` (one of cpu_info()["supported"])
    from now on and returns the previous one's name; ValueError for a path this CPU cannot run.
    Call it between ops, not while another thread runs one. PYCONVNET_CPU_ISA=name does the
    same at import."""
    return _C.set_cpu_isa(name)


def cpu_memory_stats():
    """The CPU allocator's cache: ``cached``, the bytes of freed blocks of 1 MiB and more that it
    holds for the next tensors of their sizes (at most 1 GiB; empty_cpu_cache returns them)."""
    return {"cached": _C.cpu_cached_bytes()}


def empty_cpu_cache():
    """Returns the CPU allocator's cached blocks (cpu_memory_stats()["cached"] bytes) to the C
    library, which may give them back to the operating system. Tensors still alive keep theirs."""
    _C.cpu_empty_cache()


__all__ = [
    "Tensor", "tensor", "as_tensor", "zeros", "empty", "cuda", "ops", "reference",
    "CudaError", "OutOfMemoryError", "cpu_info", "measure_cpu_peak", "set_cpu_isa", "cpu_memory_stats",
    "empty_cpu_cache", "__version__",
]
