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
    the threads its kernels use (OMP_NUM_THREADS)."""
    return {"isa": _C.cpu_isa(), "supported": list(_C.cpu_isas()), "threads": _C.cpu_threads()}


def set_cpu_isa(name):
    """Runs the CPU kernels on the instruction-set path `name` (one of cpu_info()["supported"])
    from now on and returns the previous one's name; ValueError for a path this CPU cannot run.
    Call it between ops, not while another thread runs one. PYCONVNET_CPU_ISA=name does the
    same at import."""
    return _C.set_cpu_isa(name)


__all__ = [
    "Tensor", "tensor", "as_tensor", "zeros", "empty", "cuda", "ops", "reference",
    "CudaError", "OutOfMemoryError", "cpu_info", "set_cpu_isa", "__version__",
]
