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

__all__ = [
    "Tensor", "tensor", "as_tensor", "zeros", "empty", "cuda", "ops", "reference",
    "CudaError", "OutOfMemoryError", "__version__",
]
