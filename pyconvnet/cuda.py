"""What CUDA this process can use. Every function works on machines with no GPU or driver."""
from . import _C


def is_built() -> bool:
    """True when this pyconvnet was compiled with its CUDA kernels."""
    return _C.built_with_cuda()


def is_simulated() -> bool:
    """True in the CUDA simulator build (PYCONVNET_CUDA=sim): "CUDA" runs on the CPU, checked."""
    return _C.cuda_is_simulated()


def is_available() -> bool:
    """True when at least one CUDA device can run pyconvnet's kernels."""
    return _C.cuda_device_count() > 0


def device_count() -> int:
    """Number of visible CUDA devices (0 without a GPU, a driver or a CUDA build)."""
    return _C.cuda_device_count()


def unavailable_reason() -> str:
    """Why CUDA cannot be used ("" when it can)."""
    return _C.cuda_unavailable_reason()


def device_name(index: int = 0) -> str:
    """The device's product name, e.g. "NVIDIA H100 80GB HBM3". RuntimeError if it does not exist."""
    return _C.cuda_device_name(index)


def synchronize(index: int = 0) -> None:
    """Wait until all work queued on device `index` has finished (errors from it surface here)."""
    _C.cuda_synchronize(index)


def memory_stats(index: int = 0) -> dict:
    """Caching allocator counters for device `index`: allocated, reserved, driver_allocs, peak_allocated (bytes)."""
    return _C.cuda_memory_stats(index)


def empty_cache(index: int = 0) -> None:
    """Return cached, unused device memory (and pinned host buffers) to the driver."""
    _C.cuda_empty_cache(index)


def can_access_peer(a: int, b: int) -> bool:
    """True when CUDA devices a and b can copy to each other directly (peer to peer)."""
    return _C.cuda_can_access_peer(a, b)


def set_peer_copies(enabled: bool) -> None:
    """Copies between devices (the two columns' crossings) are peer copies where the devices allow
    them (the default); False stages every one through pinned host memory instead."""
    _C.set_peer_copies(bool(enabled))


def peer_copies() -> bool:
    """Whether copies between devices may be peer copies (set_peer_copies)."""
    return _C.peer_copies()
