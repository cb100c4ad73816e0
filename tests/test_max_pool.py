import numpy as np
import pytest

import pyconvnet
from pyconvnet import ops, reference as ref
from conftest import requires_cuda
from helpers import assert_close, version_rule

# Forward selects an element: it must be exact. Backward adds, per position, the dy of the windows
# whose maximum it is (at most 9 here, kernel 3 stride 1), in the reference's order: at most 8
# float32 roundings of partial sums of standard normal dy (|sum| < 16): 8 * 2^-24 * 16 < 8e-6.
EXACT = dict(rtol=0, atol=1e-30)
BWD = dict(rtol=1e-6, atol=8e-6)


def _forward(device, x, kernel, stride):
    """(y, taps) of x on `device`, after checking y against the forward without taps bit for bit."""
    xt = pyconvnet.tensor(x, device)
    y, taps = ops.max_pool2d(xt, kernel, stride, taps=True)
    assert y.device.startswith(device) and taps.device.startswith(device)
    assert taps.dtype == "uint8" and taps.shape == y.shape
    assert np.array_equal(y.numpy().view(np.uint32), ops.max_pool2d(xt, kernel, stride).numpy().view(np.uint32))
    return y, taps


def _check(device, x, kernel, stride, rng):
    y_ref = ref.max_pool2d(x, kernel, stride)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    y, taps = _forward(device, x, kernel, stride)
    assert_close(y, y_ref, **EXACT, what="forward")
    assert np.array_equal(taps.numpy(), ref.max_pool2d_taps(x, kernel, stride)), "taps"
    dx = ops.max_pool2d_backward(pyconvnet.tensor(dy, device), taps, x.shape, kernel, stride)
    assert dx.shape == x.shape
    assert_close(dx, ref.max_pool2d_backward(dy, x, kernel, stride), **BWD, what="backward")


@pytest.mark.parametrize("shape,out", [((1, 96, 55, 55), 27), ((1, 256, 27, 27), 13), ((1, 256, 13, 13), 6)])
def test_max_pool_alexnet_shapes(device, rng, shape, out):
    x = rng.standard_normal(shape).astype(np.float32)
    assert ops.max_pool2d(pyconvnet.tensor(x, device)).shape == shape[:2] + (out, out)
    _check(device, x, 3, 2, rng)


# Overlapping, non-overlapping (kernel == stride), gaps (stride > kernel), kernel 1, the whole
# input as one window, the largest kernel taps allow (16).
@pytest.mark.parametrize("shape,kernel,stride", [
    ((2, 3, 7, 9), 3, 2), ((1, 2, 5, 4), 3, 1), ((2, 2, 8, 7), 2, 3), ((1, 1, 1, 1), 1, 1),
    ((3, 1, 6, 6), 6, 4), ((2, 3, 10, 5), 4, 2), ((1, 2, 11, 12), 5, 5), ((2, 2, 6, 8), 2, 2),
    ((1, 3, 5, 7), 1, 1), ((1, 2, 7, 6), 1, 3), ((1, 2, 17, 19), 16, 2),
])
def test_max_pool_awkward_shapes(device, rng, shape, kernel, stride):
    _check(device, rng.standard_normal(shape).astype(np.float32), kernel, stride, rng)


def test_max_pool_ties_go_to_the_first_maximum(device, rng):
    # ReLU outputs: windows of zeros; small integers: ties everywhere.
    _check(device, np.maximum(rng.standard_normal((2, 5, 13, 13)), 0).astype(np.float32), 3, 2, rng)
    _check(device, rng.integers(0, 3, (2, 5, 9, 11)).astype(np.float32), 3, 1, rng)
    x = pyconvnet.tensor(np.ones((1, 1, 3, 3), np.float32), device)
    y, taps = ops.max_pool2d(x, 3, 2, taps=True)
    assert taps.numpy().item() == 0
    dx = ops.max_pool2d_backward(pyconvnet.tensor(np.ones((1, 1, 1, 1), np.float32), device), taps, (3, 3), 3, 2)
    expected = np.zeros((1, 1, 3, 3), np.float32)
    expected[0, 0, 0, 0] = 1
    assert np.array_equal(dx.numpy(), expected)


@pytest.mark.parametrize("kernel,stride", [(3, 2), (2, 1)])
def test_max_pool_signed_zeros_are_equal(device, rng, kernel, stride):
    # -0.0 == +0.0: the tap is the first zero of an all-zero window, and y that zero's bits.
    x = np.where(rng.random((2, 3, 9, 9)) < 0.5, np.float32(-0.0), np.float32(0.0)).astype(np.float32)
    x[0, 0, 0, 0], x[0, 0, 0, 1] = -0.0, 0.0
    x[0, 1, 0, 0], x[0, 1, 0, 1] = 0.0, -0.0
    _check(device, x, kernel, stride, rng)
    y, taps = _forward(device, x, kernel, stride)
    t = taps.numpy().astype(np.int64)
    n, c, i, j = np.indices(t.shape)
    at_tap = x[n, c, i * stride + t // kernel, j * stride + t % kernel]
    assert np.array_equal(np.signbit(y.numpy()), np.signbit(at_tap))
    assert np.signbit(y.numpy()[0, 0, 0, 0]) and not np.signbit(y.numpy()[0, 1, 0, 0])


def test_max_pool_empty_batch(device):
    x = pyconvnet.zeros((0, 3, 5, 5), device=device)
    y, taps = ops.max_pool2d(x, taps=True)
    assert y.shape == taps.shape == (0, 3, 2, 2)
    assert ops.max_pool2d_backward(y, taps, x.shape).shape == (0, 3, 5, 5)


def test_max_pool_propagates_nan(device, rng):
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    x[0, 0, 0, 0] = np.nan  # a NaN first in its window
    x[0, 1, 2, 2] = np.nan  # and one shared by four windows
    y = ops.max_pool2d(pyconvnet.tensor(x, device))
    assert np.isnan(y.numpy()[0, 0, 0, 0]) and np.isnan(y.numpy()[0, 1, :2, :2]).all()
    _check(device, x, 3, 2, rng)  # the tap and the gradient: each NaN window's first NaN
    _check(device, x, 2, 1, rng)


# Taps the forward never writes: any value a caller passes selects the element it names, and one
# >= kernel**2 selects nothing (no write outside dx), on every kernel path.
@pytest.mark.parametrize("shape,kernel,stride", [((2, 3, 13, 13), 3, 2), ((1, 2, 9, 147), 3, 2),
                                                 ((2, 2, 9, 10), 2, 1), ((1, 2, 8, 8), 4, 4)])
def test_max_pool_backward_from_any_taps(device, rng, shape, kernel, stride):
    n, c, h, w = shape
    ho, wo = ref.pool_output_size(h, kernel, stride), ref.pool_output_size(w, kernel, stride)
    dy = rng.standard_normal((n, c, ho, wo)).astype(np.float32)
    taps = rng.integers(0, kernel * kernel, dy.shape).astype(np.uint8)
    taps[rng.random(dy.shape) < 0.2] = 255
    taps[0, 0, 0, 0] = kernel * kernel
    dx = ops.max_pool2d_backward(pyconvnet.tensor(dy, device), pyconvnet.tensor(taps, device), (h, w), kernel, stride)
    assert_close(dx, ref.max_pool2d_backward_taps(dy, taps, h, w, kernel, stride), **BWD, what="backward")
    none = np.full(dy.shape, 255, np.uint8)
    dx = ops.max_pool2d_backward(pyconvnet.tensor(dy, device), pyconvnet.tensor(none, device), shape, kernel, stride)
    assert np.array_equal(dx.numpy(), np.zeros(shape, np.float32))


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
    with pytest.raises(ValueError, match=message):
        ops.max_pool2d(x, kernel, stride, taps=True)
    dy = pyconvnet.zeros((1, 2, 1, 1), device=device)
    taps = pyconvnet.tensor(np.zeros((1, 2, 1, 1), np.uint8), device)
    with pytest.raises(ValueError, match=message.replace("max_pool2d:", "max_pool2d_backward:")):
        ops.max_pool2d_backward(dy, taps, hw, kernel, stride)


def test_max_pool_taps_need_kernel_at_most_16(device):
    x = pyconvnet.zeros((1, 1, 17, 17), device=device)
    assert ops.max_pool2d(x, 17, 1).shape == (1, 1, 1, 1)  # without taps any kernel
    message = r"argument 'kernel' must be <= 16 for taps \(r \* kernel \+ c must fit a uint8\); got 17"
    with pytest.raises(ValueError, match="max_pool2d: " + message):
        ops.max_pool2d(x, 17, 1, taps=True)
    dy = pyconvnet.zeros((1, 1, 1, 1), device=device)
    taps = pyconvnet.tensor(np.zeros((1, 1, 1, 1), np.uint8), device)
    with pytest.raises(ValueError, match="max_pool2d_backward: " + message):
        ops.max_pool2d_backward(dy, taps, (17, 17), 17, 1)


def test_max_pool_rejects_bad_tensors(device):
    x = pyconvnet.zeros((1, 2, 5, 5), device=device)
    y, taps = ops.max_pool2d(x, taps=True)
    with pytest.raises(ValueError, match=r"max_pool2d: argument 'x' must have rank 4 \(N, C, H, W\); got shape \(2, 5, 5\)"):
        ops.max_pool2d(pyconvnet.zeros((2, 5, 5), device=device))
    with pytest.raises(ValueError, match=r"max_pool2d_backward: argument 'dy' must have shape \(1, 2, 2, 2\); got \(1, 2, 3, 3\)"):
        ops.max_pool2d_backward(pyconvnet.zeros((1, 2, 3, 3), device=device), taps, x.shape)
    with pytest.raises(ValueError, match=r"max_pool2d_backward: argument 'taps' must have shape \(1, 2, 2, 2\); got \(1, 2, 3, 3\)"):
        ops.max_pool2d_backward(y, pyconvnet.tensor(np.zeros((1, 2, 3, 3), np.uint8), device), x.shape)
    with pytest.raises(TypeError, match=r"max_pool2d_backward: argument 'taps' must have dtype uint8; got float32"):
        ops.max_pool2d_backward(y, y, x.shape)
    with pytest.raises(ValueError, match=r"max_pool2d_backward: argument 'x_shape' must be the input's \(H, W\) or "
                                         r"\(N, C, H, W\) with \(N, C\) = \(1, 2\) \(dy's\); got \(2, 2, 5, 5\)"):
        ops.max_pool2d_backward(y, taps, (2, 2, 5, 5))
    with pytest.raises(ValueError, match=r"argument 'x_shape' must be the input's .*; got \(5,\)"):
        ops.max_pool2d_backward(y, taps, (5,))
    with pytest.raises(TypeError, match=r"max_pool2d_backward: argument 'x_shape' must be a tuple"):
        ops.max_pool2d_backward(y, taps, 5)
    with pytest.raises(ValueError, match=r"max_pool2d_backward: argument 'dy' must have rank 4"):
        ops.max_pool2d_backward(pyconvnet.zeros((2, 2, 2), device=device), taps, x.shape)
    bad = ops.versions("max_pool2d", device)[-1] + 1
    with pytest.raises(ValueError, match=f"max_pool2d: argument 'version' {version_rule('max_pool2d', device)}; got {bad}"):
        ops.max_pool2d(x, version=bad)
    with pytest.raises(ValueError, match=f"max_pool2d_backward: argument 'version' .*; got {bad}"):
        ops.max_pool2d_backward(y, taps, x.shape, version=bad)


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
def test_max_pool_is_bit_identical_on_every_cpu_path(rng, shape):
    before = pyconvnet.cpu_info()["isa"]
    try:
        for x in _gather_inputs(rng, shape):
            dy = rng.standard_normal(ref.max_pool2d(x, 3, 2).shape).astype(np.float32)
            results = {}
            for isa in pyconvnet.cpu_info()["supported"]:
                pyconvnet.set_cpu_isa(isa)
                y, taps = ops.max_pool2d(x, 3, 2, taps=True)
                results[isa] = [y.numpy(), taps.numpy(), ops.max_pool2d_backward(dy, taps, x.shape, 3, 2).numpy()]
            first = next(iter(results.values()))
            for isa, got in results.items():
                for a, b in zip(first, got):
                    assert np.array_equal(a.view(np.uint8), b.view(np.uint8)), isa
    finally:
        pyconvnet.set_cpu_isa(before)


@requires_cuda
@pytest.mark.parametrize("shape,kernel,stride", [((2, 3, 13, 13), 3, 2), ((1, 2, 9, 20), 3, 2),
                                                 ((2, 2, 9, 10), 2, 1), ((1, 2, 11, 12), 5, 5)])
def test_max_pool_identical_on_cpu_and_cuda(rng, shape, kernel, stride):
    for x in _gather_inputs(rng, shape):
        dy = rng.standard_normal(ref.max_pool2d(x, kernel, stride).shape).astype(np.float32)
        got = {}
        for device in ("cpu", "cuda"):
            y, taps = ops.max_pool2d(pyconvnet.tensor(x, device), kernel, stride, taps=True)
            dx = ops.max_pool2d_backward(pyconvnet.tensor(dy, device), taps, x.shape, kernel, stride)
            got[device] = [y.numpy(), taps.numpy(), dx.numpy()]
        for a, b in zip(got["cpu"], got["cuda"]):
            assert np.array_equal(a.view(np.uint8), b.view(np.uint8))
