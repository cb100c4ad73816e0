import numpy as np
import pytest

import pyconvnet
from pyconvnet import ops, reference as ref
from helpers import assert_close


# (3, 11111): three CPU chunks, the last one partial, run in parallel.
@pytest.mark.parametrize("shape", [(128, 96, 55, 55), (2, 4096), (1,), (0, 3), (3, 5, 7), (3, 11111)])
def test_relu_forward_backward(device, rng, shape):
    if shape[0] == 128:
        shape = (4,) + shape[1:]  # AlexNet's conv1 output at a small batch
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    y = ops.relu(pyconvnet.tensor(x, device))
    assert y.device.startswith(device)
    assert_close(y, ref.relu(x), what="forward")
    assert_close(ops.relu_backward(pyconvnet.tensor(dy, device), y), ref.relu_backward(dy, ref.relu(x)), what="backward")


def test_relu_propagates_nan(device):
    x = pyconvnet.tensor(np.array([np.nan, -1, 1], np.float32), device)
    assert np.isnan(ops.relu(x).numpy()[0])


def test_relu_backward_checks_shapes(device):
    with pytest.raises(ValueError, match=r"relu_backward: argument 'dy' must have shape \(4,\); got \(3,\)"):
        ops.relu_backward(pyconvnet.zeros(3, device=device), pyconvnet.zeros(4, device=device))


# (1, 1001): a vector's tail; (3, 11111): chunks and 1024-float blocks ending mid-vector.
@pytest.mark.parametrize("shape", [(1,), (1, 1001), (3, 11111), (4, 96, 55, 55)])
def test_relu_forward_streamed_gives_the_same_bits(device, rng, shape):
    if device != "cpu":
        pytest.skip("the CPU's streaming stores")
    x = rng.standard_normal(shape).astype(np.float32)
    x.reshape(-1)[::7] = np.nan
    # Above the last-level cache's size the forward writes y past the caches, in 1024-float
    # blocks through a buffer (csrc/cpu/streaming.h); threshold 0 makes every size do so.
    plain = ops.relu(pyconvnet.tensor(x)).numpy()
    previous = pyconvnet._C.set_streaming_threshold(0)
    try:
        streamed = ops.relu(pyconvnet.tensor(x)).numpy()
    finally:
        pyconvnet._C.set_streaming_threshold(previous)
    assert np.array_equal(streamed, plain, equal_nan=True)
    assert_close(streamed, ref.relu(x), what="forward, streamed")


def test_streaming_threshold_is_the_last_level_cache():
    sizes = []
    for index in range(8):
        base = f"/sys/devices/system/cpu/cpu0/cache/index{index}"
        try:
            with open(f"{base}/type") as t, open(f"{base}/size") as s:
                kind, size = t.read().strip(), s.read().strip()
        except OSError:
            continue
        if kind != "Instruction":
            sizes.append(int(size[:-1]) << {"K": 10, "M": 20}[size[-1]] if size[-1] in "KM" else int(size))
    assert pyconvnet.cpu_info()["streaming_threshold"] == (max(sizes) if sizes else 2**63 - 1)
    with pytest.raises(ValueError, match=r"set_streaming_threshold: bytes must be >= 0, got -1"):
        pyconvnet._C.set_streaming_threshold(-1)
