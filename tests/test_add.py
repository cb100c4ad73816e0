import numpy as np
import pytest

import pyconvnet
from pyconvnet import ops, reference as ref
from helpers import assert_close


@pytest.mark.parametrize("shape", [(4, 256, 13, 13), (2, 4096), (1,), (0, 3), (3, 5, 7), (3, 11111)])
def test_add(device, rng, shape):
    a = rng.standard_normal(shape).astype(np.float32)
    b = rng.standard_normal(shape).astype(np.float32)
    y = ops.add(pyconvnet.tensor(a, device), pyconvnet.tensor(b, device))
    assert y.device.startswith(device)
    assert_close(y, ref.add(a, b), rtol=1e-7, atol=0, what="forward")


def test_add_checks_shapes_and_devices(device):
    with pytest.raises(ValueError, match=r"add: argument 'b' must have shape \(4,\); got \(3,\)"):
        ops.add(pyconvnet.zeros(4, device=device), pyconvnet.zeros(3, device=device))
    with pytest.raises(TypeError, match="add: argument 'a' must have dtype float32"):
        ops.add(np.zeros(3), np.zeros(3, np.float32))
