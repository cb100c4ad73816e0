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
