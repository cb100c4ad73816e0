import numpy as np
import pytest

import pyconvnet
from pyconvnet import ops, reference as ref
from helpers import all_versions, assert_close, version_rule

# float32 tolerances. Forward: y = x * s^-beta with s a sum of <= size positive terms, so every
# step has a small relative error (sum + powf + product: a few 2^-24 each): rtol 1e-5 leaves
# ample margin. Backward: dx = dy p - coef x sum(t) can cancel, so its error scales with the
# terms (O(1) here: inputs are O(1) after the normalisation), not with dx: atol 1e-6 ~ 16 ulp of 1.
FWD = dict(rtol=1e-5, atol=1e-7)
BWD = dict(rtol=1e-5, atol=1e-6)


def _check(device, rng, x, **kw):
    dy = rng.standard_normal(x.shape).astype(np.float32)
    y_ref, dx_ref = ref.lrn(x, **kw), ref.lrn_backward(dy, x, **kw)
    xt, dyt = pyconvnet.tensor(x, device), pyconvnet.tensor(dy, device)
    for version in all_versions("lrn", device):
        y = ops.lrn(xt, **kw, version=version)
        assert y.device.startswith(device)
        assert_close(y, y_ref, **FWD, what=f"forward, version {version}")
        dx = ops.lrn_backward(dyt, xt, y, **kw, version=version)
        assert_close(dx, dx_ref, **BWD, what=f"backward, version {version}")


@pytest.mark.parametrize("shape", [(1, 96, 55, 55), (1, 256, 27, 27)])
def test_lrn_alexnet_shapes(device, rng, shape):
    # AlexNet's LRN inputs are ReLU outputs (many exact zeros), normalised per column (groups=2).
    x = np.maximum(rng.standard_normal(shape) * 4, 0).astype(np.float32)
    _check(device, rng, x, size=5, alpha=1e-4, beta=0.75, k=2.0, groups=2)


@pytest.mark.parametrize("shape,kw", [
    ((2, 7, 3, 5), dict(size=3, alpha=0.5)),                   # odd channel count, size 3
    ((1, 8, 4, 4), dict(size=5, alpha=1.0, groups=4)),         # groups narrower than the window
    ((2, 5, 2, 3), dict(size=7, alpha=0.3, beta=0.5, k=1.0)),  # window wider than the channels
    ((3, 6, 1, 1), dict(size=9, alpha=0.2, groups=2)),         # size with no templated kernel
    ((2, 4, 3, 3), dict(size=1, alpha=0.7)),                   # size 1: each channel alone
    ((1, 10, 17, 19), dict(size=5, alpha=0.1, beta=1.3, k=0.5, groups=2)),
    ((0, 4, 3, 3), dict()),                                     # empty batch
])
def test_lrn_awkward_shapes(device, rng, shape, kw):
    # Large alpha so the normalisation changes the result and the gradient's second term matters.
    x = (rng.standard_normal(shape) * 1.5).astype(np.float32)
    _check(device, rng, x, **kw)


@pytest.mark.parametrize("beta", [0.75, 0.5, 1.3, -0.6, 0.0, 5.9, 7.5])
def test_lrn_power_over_the_whole_float_range(device, rng, beta):
    # s = k + alpha * x^2 (size 1) from k up to 1e30, subnormal x and huge ones: the CPU computes
    # s^-beta as 2^(-beta log2 s) in double (its own exp and log) for |beta| <= 6, by powf past
    # that. k = 10^(-30 / max(1, |beta|)) puts s across 100-200 exponents of 2 and keeps k^-beta
    # (y at x = 0 is 0 * k^-beta) within float's range. Forward only (the backward's terms
    # overflow here).
    mags = 10.0 ** rng.uniform(-40, 15, size=(2, 3, 16, 16))
    x = (mags * rng.choice([-1.0, 1.0], size=mags.shape)).astype(np.float32)
    x[0, 0, 0, :4] = [0.0, -0.0, 1e-45, 1e15]
    kw = dict(size=1, alpha=1.0, beta=beta, k=10.0 ** (-30 / max(1.0, abs(beta))))
    y_ref = ref.lrn(x, **kw)
    assert np.isfinite(y_ref).all()
    for version in all_versions("lrn", device):
        y = ops.lrn(pyconvnet.tensor(x, device), **kw, version=version)
        assert_close(y, y_ref, **FWD, what=f"forward, version {version}")


def test_lrn_infinite_input(device):
    # An infinite x makes its window's s infinite: y = x * s^-beta is NaN for x itself (inf * 0)
    # and 0 for the finite neighbours, as powf gives.
    x = np.ones((1, 3, 1, 1), np.float32)
    x[0, 1] = np.inf
    for version in all_versions("lrn", device):
        y = ops.lrn(pyconvnet.tensor(x, device), size=3, alpha=1.0, version=version).numpy()
        assert np.isnan(y[0, 1, 0, 0]) and (y[0, [0, 2], 0, 0] == 0).all(), y.ravel()


def test_lrn_groups_do_not_mix(device, rng):
    x = rng.standard_normal((1, 8, 2, 2)).astype(np.float32)
    x2 = x.copy()
    x2[:, 4:] *= 10
    for version in all_versions("lrn", device):
        y = ops.lrn(pyconvnet.tensor(x, device), alpha=1.0, groups=2, version=version).numpy()
        y2 = ops.lrn(pyconvnet.tensor(x2, device), alpha=1.0, groups=2, version=version).numpy()
        assert np.array_equal(y[:, :4], y2[:, :4])


def test_lrn_propagates_nan(device, rng):
    x = rng.standard_normal((1, 9, 3, 3)).astype(np.float32)
    x[0, 4, 1, 1] = np.nan
    dy = rng.standard_normal(x.shape).astype(np.float32)
    kw = dict(size=3, alpha=0.5, groups=1)
    for version in all_versions("lrn", device):
        y = ops.lrn(pyconvnet.tensor(x, device), **kw, version=version)
        assert np.isnan(y.numpy()[0, 3:6, 1, 1]).all()  # the NaN's channel and its neighbours
        assert_close(y, ref.lrn(x, **kw), **FWD, what=f"forward, version {version}")
        dx = ops.lrn_backward(pyconvnet.tensor(dy, device), pyconvnet.tensor(x, device), y, **kw, version=version)
        assert_close(dx, ref.lrn_backward(dy, x, **kw), **BWD, what=f"backward, version {version}")


@pytest.mark.parametrize("kw,message", [
    (dict(size=4), r"lrn: argument 'size' must be a positive odd number .*; got 4"),
    (dict(size=0), r"lrn: argument 'size' must be a positive odd number .*; got 0"),
    (dict(size=-3), r"lrn: argument 'size' must be a positive odd number .*; got -3"),
    (dict(groups=4), r"lrn: argument 'groups' must be positive and divide the channel count C = 6; got 4"),
    (dict(groups=0), r"lrn: argument 'groups' must be positive and divide the channel count C = 6; got 0"),
    (dict(k=0.0), r"lrn: argument 'k' must be a finite number > 0; got 0"),
    (dict(alpha=float("nan")), r"lrn: argument 'alpha' must be a finite number >= 0; got nan"),
    (dict(version=99), "lrn: argument 'version' VERSION_RULE; got 99"),
])
def test_lrn_rejects_bad_arguments(device, kw, message):
    message = message.replace("VERSION_RULE", version_rule("lrn", device))
    x = pyconvnet.zeros((1, 6, 2, 2), device=device)
    with pytest.raises(ValueError, match=message):
        ops.lrn(x, **kw)
    with pytest.raises(ValueError, match=message.replace("lrn:", "lrn_backward:")):
        ops.lrn_backward(x, x, x, **kw)


def test_lrn_rejects_bad_tensors(device):
    x = pyconvnet.zeros((1, 6, 2, 2), device=device)
    with pytest.raises(ValueError, match=r"lrn: argument 'x' must have rank 4 \(N, C, H, W\); got shape \(6, 2, 2\)"):
        ops.lrn(pyconvnet.zeros((6, 2, 2), device=device))
    with pytest.raises(ValueError, match=r"lrn_backward: argument 'y' must have shape \(1, 6, 2, 2\); got \(1, 6, 2, 1\)"):
        ops.lrn_backward(x, x, pyconvnet.zeros((1, 6, 2, 1), device=device))
    with pytest.raises(TypeError, match=r"lrn: argument 'size' must be an int; got float 5.0"):
        ops.lrn(x, size=5.0)
