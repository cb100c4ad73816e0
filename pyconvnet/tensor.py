"""Creating tensors, and turning the arguments of ops into tensors."""
from __future__ import annotations

import numpy as np

from . import _C
from ._C import Tensor

_DTYPES = {np.dtype(np.float32): "float32", np.dtype(np.uint8): "uint8", np.dtype(np.int32): "int32"}


def _dtype_name(dtype, who: str) -> str:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{who}: dtype must be float32, uint8 or int32; got {dtype!r}") from None
    if dt not in _DTYPES:
        raise TypeError(f"{who}: dtype must be float32, uint8 or int32; got {dt}")
    return _DTYPES[dt]


def _device_name(device, who: str) -> str:
    if not isinstance(device, str):
        raise TypeError(f"{who}: device must be a string such as 'cpu', 'cuda' or 'cuda:0'; got {device!r}")
    return device


def tensor(data, device: str = "cpu") -> Tensor:
    """A new Tensor holding a copy of `data` (a NumPy array or a Tensor) on `device`.

    The array must be float32, uint8 or int32 (other dtypes raise TypeError: convert explicitly,
    pyconvnet never narrows float64 behind your back). Non-contiguous arrays are copied densely.
    """
    device = _device_name(device, "pyconvnet.tensor")
    if isinstance(data, Tensor):
        # Always a new tensor: .to() copies across devices; on the same device go through the host.
        return data.to(device) if data.device != device else _C.tensor_from_numpy(data.numpy(), device)
    if not isinstance(data, np.ndarray):
        raise TypeError(f"pyconvnet.tensor: data must be a numpy.ndarray or a Tensor; got {type(data).__name__}")
    return _C.tensor_from_numpy(np.ascontiguousarray(data), device)


def zeros(shape, dtype=np.float32, device: str = "cpu") -> Tensor:
    """A zero-filled Tensor."""
    return _C.zeros(shape, _dtype_name(dtype, "pyconvnet.zeros"), _device_name(device, "pyconvnet.zeros"))


def empty(shape, dtype=np.float32, device: str = "cpu") -> Tensor:
    """An uninitialised Tensor."""
    return _C.empty(shape, _dtype_name(dtype, "pyconvnet.empty"), _device_name(device, "pyconvnet.empty"))


def as_tensor(x, op: str, name: str, optional: bool = False):
    """The argument `name` of `op` as a Tensor: Tensors pass through, NumPy arrays become CPU tensors.

    Arrays are not converted silently: a float64 array raises TypeError and a non-contiguous one
    ValueError, naming the op, the argument and what was received.
    """
    if x is None:
        if optional:
            return None
        raise ValueError(f"{op}: argument '{name}' is required; got None")
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype not in _DTYPES:
            raise TypeError(f"{op}: argument '{name}' must have dtype float32, uint8 or int32; got {x.dtype} array of shape {x.shape}")
        if not x.flags.c_contiguous:
            raise ValueError(f"{op}: argument '{name}' must be C-contiguous; got an array of shape {x.shape} with strides {x.strides} (use np.ascontiguousarray)")
        return _C.tensor_from_numpy(x, "cpu")
    raise TypeError(f"{op}: argument '{name}' must be a pyconvnet.Tensor or numpy.ndarray; got {type(x).__name__}")
