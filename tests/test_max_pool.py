import numpy as np
import pytest

import pyconvnet
from pyconvnet import ops, reference as ref
from helpers import assert_close, version_rule

# Forward selects an element: it must be exact. Backward adds, per position, the dy of the windows
# whose maximum it is (at most 9 here, kernel 3 stride 1), in the reference's order: at most 8
# float32 roundings of partial sums of standard normal dy (|sum| < 16): 8 * 2^-24 * 16 < 8e-6.
EXACT = dict(rtol=0, atol=1e-30)
BWD = dict(rtol=1e-6, atol=8e-6)


def _check(device, x, kernel, stride, rng):
    y_ref = ref.max_pool2d(x, kernel, stride)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    dx_ref = ref.max_pool2d_backward(dy, x, kernel, stride)
    xt = pyconvnet.tensor(x, device)
    y = ops.max_pool2d(xt, kernel, stride)
    assert y.device.startswith(device)
    assert_close(y, y_ref, **EXACT, what="forward")
    dx = ops.max_pool2d_backward(pyconvnet.tensor(dy, device), xt, y, kernel, stride)
    assert_close(dx, dx_ref, **BWD, what="backward")


@pytest.mark.parametrize("shape,out", [((1, 96, 55, 55), 27), ((1, 256, 27, 27), 13), ((1, 256, 13, 13), 6)])
def test_max_pool_alexnet_shapes(device, rng, shape, out):
    x = rng.standard_normal(shape).astype(np.float32)
    assert ops.max_pool2d(pyconvnet.tensor(x, device)).shape == shape[:2] + (out, out)
    _check(device, x, 3, 2, rng)


@pytest.mark.parametrize("shape,kernel,stride", [
    ((2, 3, 7, 9), 3, 2), ((1, 2, 5, 4), 3, 1), ((2, 2, 8, 7), 2, 3), ((1, 1, 1, 1), 1, 1),
    ((3, 1, 6, 6), 6, 4), ((2, 3, 10, 5), 4, 2), ((1, 2, 11, 12), 5, 5),
])
def test_max_pool_awkward_shapes(device, rng, shape, kernel, stride):
    _check(device, rng.standard_normal(shape).astype(np.float32), kernel, stride, rng)


def test_max_pool_ties_go_to_the_first_maximum(device, rng):
    # ReLU outputs: windows of zeros; small integers: ties everywhere.
    _check(device, np.maximum(rng.standard_normal((2, 5, 13, 13)), 0).astype(np.float32), 3, 2, rng)
    _check(device, rng.integers(0, 3, (2, 5, 9, 11)).astype(np.float32), 3, 1, rng)
    x = pyconvnet.tensor(np.ones((1, 1, 3, 3), np.float32), device)
    dx = ops.max_pool2d_backward(pyconvnet.tensor(np.ones((1, 1, 1, 1), np.float32), device), x, ops.max_pool2d(x), 3, 2)
    expected = np.zeros((1, 1, 3, 3), np.float32)
    expected[0, 0, 0, 0] = 1
    assert np.array_equal(dx.numpy(), expected)


def test_max_pool_empty_batch(device):
    x = pyconvnet.zeros((0, 3, 5, 5), device=device)
    y = ops.max_pool2d(x)
    assert y.shape == (0, 3, 2, 2)
    assert ops.max_pool2d_backward(y, x, y).shape == (0, 3, 5, 5)


def test_max_pool_propagates_nan(device, rng):
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    x[0, 0, 0, 0] = np.nan  # a NaN first in its window
    x[0, 1, 2, 2] = np.nan  # and one shared by four windows
    y = ops.max_pool2d(pyconvnet.tensor(x, device))
    assert np.isnan(y.numpy()[0, 0, 0, 0]) and np.isnan(y.numpy()[0, 1, :2, :2]).all()
    _check(device, x, 3, 2, rng)  # the gradient goes to each NaN window's first NaN


@pytest.mark.parametrize("hw,kernel,stride,message", [
    ((2, 5), 3, 2, r"max_pool2d: argument 'kernel' must fit in the input: be <= its height and width \(H, W\) = \(2, 5\); got 3"),
    ((5, 2), 3, 2, r"\(H, W\) = \(5, 2\); got 3"),
    ((5, 5), 0, 2, r"max_pool2d: argument 'kernel' must be > 0; got 0"),
    ((5, 5), 3, 0, r"max_pool2d: argument 'stride' must be > 0; got 0"),
])
def test_max_pool_rejects_bad_windows(device, hw, kernel, stride, message):
    x = pyconvnet.zeros((1, 2) + hw, device=device)
    with pytest.raises(ValueError, match=message):
        ops.max_pool2d(x, kernel, stride)
    with pytest.raises(ValueError, match=message.replace("max_pool2d:", "max_pool2d_backward:")):
        ops.max_pool2d_backward(x, x, x, kernel, stride)


def test_max_pool_rejects_bad_tensors(device):
    x = pyconvnet.zeros((1, 2, 5, 5), device=device)
    y = ops.max_pool2d(x)
    with pytest.raises(ValueError, match=r"max_pool2d: argument 'x' must have rank 4 \(N, C, H, W\); got shape \(2, 5, 5\)"):
        ops.max_pool2d(pyconvnet.zeros((2, 5, 5), device=device))
    with pytest.raises(ValueError, match=r"max_pool2d_backward: argument 'dy' must have shape \(1, 2, 2, 2\); got \(1, 2, 3, 3\)"):
        ops.max_pool2d_backward(pyconvnet.zeros((1, 2, 3, 3), device=device), x, y)
    bad = ops.versions("max_pool2d", device)[-1] + 1
    with pytest.raises(ValueError, match=f"max_pool2d: argument 'version' {version_rule('max_pool2d', device)}; got {bad}"):
        ops.max_pool2d(x, version=bad)


# AlexNet's 3 x 3 stride-2 windows have their own CPU kernel: even and odd sizes (a row and
# column after the last window), fewer than 8 windows a row, more than 64 (in runs), with ties
# and NaNs; every instruction-set path gives the same bits.
# Up to 7 windows a row (pool5's 13 x 13; 15 and 16 columns: 7) have their own AVX2 path.
GATHER_SHAPES = [(1, 2, 3, 3), (2, 1, 4, 4), (2, 3, 8, 9), (1, 2, 10, 17), (1, 2, 6, 131),
                 (1, 1, 5, 145), (1, 1, 7, 130), (1, 1, 9, 147), (3, 2, 13, 13), (2, 2, 28, 26),
                 (2, 3, 16, 15), (3, 1, 15, 16), (2, 2, 5, 14)]


def _gather_inputs(rng, shape):
    yield rng.standard_normal(shape).astype(np.float32)
    yield rng.integers(0, 3, shape).astype(np.float32)  # ties everywhere
    x = rng.standard_normal(shape).astype(np.float32)
    x[rng.random(shape) < 0.1] = np.nan
    yield x


@pytest.mark.parametrize("shape", GATHER_SHAPES)
def test_max_pool_3x3_stride_2_shapes(device, rng, shape):
    for x in _gather_inputs(rng, shape):
        _check(device, x, 3, 2, rng)


@pytest.mark.parametrize("shape", GATHER_SHAPES)
def test_max_pool_backward_is_bit_identical_on_every_cpu_path(rng, shape):
    before = pyconvnet.cpu_info()["isa"]
    try:
        for x in _gather_inputs(rng, shape):
            y = ops.max_pool2d(x, 3, 2)
            dy = rng.standard_normal(y.shape).astype(np.float32)
            results = {}
            for isa in pyconvnet.cpu_info()["supported"]:
                pyconvnet.set_cpu_isa(isa)
                results[isa] = ops.max_pool2d_backward(dy, x, y, 3, 2).numpy()
            first = next(iter(results.values()))
            for isa, got in results.items():
                assert np.array_equal(first, got, equal_nan=True), isa
    finally:
        pyconvnet.set_cpu_isa(before)
