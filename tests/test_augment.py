"""The augmentation kernel against the float64 reference on both devices, and the random draws
that feed it (pyconvnet/augment.py) against their documented formulas."""
import numpy as np
import pytest

import pyconvnet
from pyconvnet import _C, augment as aug, ops, reference as ref
from conftest import requires_cuda
from helpers import assert_close, version_rule

# The kernel rounds twice in float32: x - mean, then + lighting. With |x - mean| < 256 and
# |out| < 512 each rounding is off by at most half an ulp at 256..512, 2^-15: 2^-14 in all.
TOL = dict(rtol=0.0, atol=2.0 ** -14)


def _inputs(rng, n, h, w, crop, repeats=1):
    m = n * repeats
    images = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    mean = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    offsets = np.stack([rng.integers(0, h - crop + 1, m), rng.integers(0, w - crop + 1, m)], 1).astype(np.int32)
    flips = rng.integers(0, 2, m).astype(np.int32)
    lighting = rng.normal(0, 10, (m, 3)).astype(np.float32)
    return images, mean, offsets, flips, lighting


@pytest.mark.parametrize("n,h,w,crop,repeats", [
    (2, 256, 256, 224, 1),   # AlexNet's input at batch 2
    (3, 37, 45, 30, 1),      # not square, odd sizes
    (1, 8, 8, 8, 1),         # crop = image: a single position
    (70, 12, 12, 9, 1),      # more images than the CUDA launcher passes per launch (64)
    (7, 20, 17, 11, 10),     # repeats (ten crops): 70 outputs from 7 images
    (0, 16, 16, 12, 1),      # empty batch
])
def test_augment_matches_reference(device, rng, n, h, w, crop, repeats):
    images, mean, offsets, flips, lighting = _inputs(rng, n, h, w, crop, repeats)
    out = ops.augment(pyconvnet.tensor(images, device), pyconvnet.tensor(mean, device), offsets, flips,
                      lighting, crop, repeats)
    assert out.device.startswith(device) and out.shape == (n * repeats, 3, crop, crop)
    assert_close(out, ref.augment(images, mean, offsets, flips, lighting, crop, repeats), **TOL)


def test_versions_agree(device, rng):
    images, mean, offsets, flips, lighting = _inputs(rng, 3, 40, 40, 32)
    args = (pyconvnet.tensor(images, device), pyconvnet.tensor(mean, device), offsets, flips, lighting, 32)
    v0 = ops.augment(*args, version=0).numpy()
    for version in ops.versions("augment", device):
        assert np.array_equal(ops.augment(*args, version=version).numpy(), v0)
    bad = ops.versions("augment", device)[-1] + 1
    with pytest.raises(ValueError, match=f"augment: argument 'version' {version_rule('augment', device)}; got {bad}"):
        ops.augment(*args, version=bad)


@requires_cuda
@pytest.mark.cuda
def test_cpu_and_cuda_are_bit_identical(rng):
    images, mean, offsets, flips, lighting = _inputs(rng, 5, 256, 256, 224)
    cpu = ops.augment(images, mean, offsets, flips, lighting, 224).numpy()
    gpu = ops.augment(pyconvnet.tensor(images, "cuda"), pyconvnet.tensor(mean, "cuda"), offsets, flips,
                      lighting, 224).numpy()
    assert np.array_equal(cpu, gpu)


def test_augment_rejects_bad_arguments(device, rng):
    images, mean, offsets, flips, lighting = _inputs(rng, 2, 10, 12, 8)
    im, mu = pyconvnet.tensor(images, device), pyconvnet.tensor(mean, device)

    def call(**kw):
        a = dict(images=im, mean=mu, offsets=offsets, flips=flips, lighting=lighting, crop=8)
        a.update(kw)
        return ops.augment(**a)

    bad = offsets.copy()
    bad[1] = (3, 0)
    with pytest.raises(ValueError, match=r"augment: argument 'offsets' must hold crop corners \(y, x\) with "
                                         r"0 <= y <= H - crop = 2 and 0 <= x <= W - crop = 4; got \(3, 0\) in row 1"):
        call(offsets=bad)
    bad[1] = (0, -1)
    with pytest.raises(ValueError, match=r"got \(0, -1\) in row 1"):
        call(offsets=bad)
    with pytest.raises(ValueError, match=r"argument 'flips' must hold 0 or 1; got 2 in row 0"):
        call(flips=np.array([2, 0], np.int32))
    with pytest.raises(ValueError, match=r"argument 'crop' must be in \[1, min\(H, W\)\] = \[1, 10\]; got 11"):
        call(crop=11)
    with pytest.raises(ValueError, match=r"argument 'mean' must have shape \(10, 12, 3\); got \(12, 10, 3\)"):
        call(mean=pyconvnet.tensor(np.zeros((12, 10, 3), np.float32), device))
    with pytest.raises(ValueError, match=r"argument 'offsets' must have shape \(2, 2\); got \(3, 2\)"):
        call(offsets=np.zeros((3, 2), np.int32))
    with pytest.raises(TypeError, match=r"augment: argument 'images' must have dtype uint8; got float32"):
        call(images=pyconvnet.tensor(images.astype(np.float32), device))
    with pytest.raises(TypeError, match=r"argument 'offsets' must have dtype float32, uint8 or int32; got int64"):
        call(offsets=offsets.astype(np.int64))
    with pytest.raises(ValueError, match=r"argument 'images' must have 3 channels last, \(N, H, W, 3\); got \(2, 10, 12, 4\)"):
        call(images=pyconvnet.tensor(np.zeros((2, 10, 12, 4), np.uint8), device))
    if device == "cuda":
        with pytest.raises(ValueError, match=r"argument 'offsets' must be a CPU tensor .*; got cuda:0"):
            call(offsets=pyconvnet.tensor(offsets, "cuda"))


# ----------------------------------------------------------------------------- the draws

def test_draws_follow_the_documented_formulas():
    seed, epoch, k, h, w, crop = 12345, 3, 77, 256, 250, 224
    words = _C.philox_words(seed, 2, 8 * ((epoch << 32) + k), 8).astype(np.uint64)
    offsets, flips, alphas = aug.draw(seed, epoch, [k], h, w, crop, lighting_std=0.1)
    assert offsets[0].tolist() == [int(words[0]) * (h - crop + 1) >> 32, int(words[1]) * (w - crop + 1) >> 32]
    assert flips[0] == int(words[2]) >> 31
    u = (words[3:7].astype(np.float64) + 0.5) / 2 ** 32
    r1, r2 = np.sqrt(-2 * np.log(u[0])), np.sqrt(-2 * np.log(u[2]))
    expected = 0.1 * np.array([r1 * np.cos(2 * np.pi * u[1]), r1 * np.sin(2 * np.pi * u[1]), r2 * np.cos(2 * np.pi * u[3])])
    assert np.array_equal(alphas[0], expected)


def test_draws_depend_only_on_seed_epoch_and_image():
    a = aug.draw(1, 0, [4, 9, 2], 64, 64, 56)
    b = aug.draw(1, 0, [9], 64, 64, 56)
    for x, y in zip(a, b):
        assert np.array_equal(x[1], y[0])
    assert not np.array_equal(aug.draw(1, 1, [9], 64, 64, 56)[2], b[2])  # another epoch
    assert not np.array_equal(aug.draw(2, 0, [9], 64, 64, 56)[2], b[2])  # another seed


def test_draws_are_distributed_as_intended():
    offsets, flips, alphas = aug.draw(7, 0, np.arange(6000), 40, 40, 32)
    assert offsets.min() == 0 and offsets.max() == 8
    counts = np.bincount(offsets.ravel(), minlength=9)
    assert counts.min() > 0.8 * counts.mean()  # 9 positions, about 1333 draws each
    assert abs(flips.mean() - 0.5) < 0.03
    assert abs(alphas.std() - 0.1) < 0.005 and abs(alphas.mean()) < 0.005
    assert abs(np.corrcoef(alphas.T)[np.triu_indices(3, 1)]).max() < 0.05


def test_draws_over_many_images_follow_the_formulas_and_are_uncorrelated():
    """Each image's crop corner, flip and lighting come from their own words: checked against the
    documented formulas over 20000 images at once, and no two of the six draws are correlated (a
    flip taken from the word of the x offset would correlate with it by about 0.87)."""
    seed, epoch, k0, n, h, w, crop = 99, 5, 1000, 20000, 40, 41, 32
    offsets, flips, alphas = aug.draw(seed, epoch, np.arange(k0, k0 + n), h, w, crop, lighting_std=0.1)
    # The words of images k0 .. k0 + n - 1 are one contiguous block of the augmentation stream.
    words = _C.philox_words(seed, 2, 8 * ((epoch << 32) + k0), 8 * n).astype(np.uint64).reshape(n, 8)
    assert np.array_equal(offsets[:, 0], (words[:, 0] * np.uint64(h - crop + 1)) >> np.uint64(32))
    assert np.array_equal(offsets[:, 1], (words[:, 1] * np.uint64(w - crop + 1)) >> np.uint64(32))
    assert np.array_equal(flips, words[:, 2] >> np.uint64(31))
    u = (words[:, 3:7].astype(np.float64) + 0.5) / 2 ** 32
    r1, r2 = np.sqrt(-2 * np.log(u[:, 0])), np.sqrt(-2 * np.log(u[:, 2]))
    expected = 0.1 * np.stack([r1 * np.cos(2 * np.pi * u[:, 1]), r1 * np.sin(2 * np.pi * u[:, 1]),
                               r2 * np.cos(2 * np.pi * u[:, 3])], axis=1)
    assert np.array_equal(alphas, expected)
    draws = np.column_stack([offsets, flips, alphas]).astype(np.float64)
    corr = np.corrcoef(draws.T)[np.triu_indices(6, 1)]
    assert abs(corr).max() < 0.04, corr  # 0.04 is about 6 standard errors at n = 20000
    for column in range(2):  # the flip is as likely for every offset
        for position in range(h - crop + 1):
            assert abs(flips[offsets[:, column] == position].mean() - 0.5) < 0.06


def test_lighting_offsets_are_the_papers_sum_on_the_unit_scale(rng):
    eigvecs = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    eigvals = np.array([14000.0, 1200.0, 300.0])
    alphas = rng.normal(0, 0.1, (4, 3))
    got = aug.lighting_offsets(alphas, eigvals, eigvecs)
    for n in range(4):
        # sum_i p_i * alpha_i * lambda_i on [0, 1] pixels (lambda / 255^2), times 255
        expected = 255 * sum(eigvecs[:, i] * alphas[n, i] * eigvals[i] / 255 ** 2 for i in range(3))
        assert_close(got[n], expected, rtol=1e-6, atol=1e-6)


def test_train_params_through_the_kernel(device, rng):
    n, s, crop = 6, 48, 40
    images = rng.integers(0, 256, (n, s, s, 3), dtype=np.uint8)
    mean = rng.uniform(0, 255, (s, s, 3)).astype(np.float32)
    eigvecs = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    eigvals = np.array([5000.0, 900.0, 200.0])
    p = aug.train_params(3, 2, np.arange(10, 10 + n), s, s, crop, eigvals, eigvecs)
    out = aug.apply(pyconvnet.tensor(images, device), pyconvnet.tensor(mean, device), p, crop)
    assert_close(out, ref.augment(images, mean, p.offsets, p.flips, p.lighting, crop), **TOL)


def test_center_and_ten_crops_cut_the_papers_patches(device, rng):
    n, h, w, crop = 2, 20, 24, 16
    images = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    mean = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    im, mu = pyconvnet.tensor(images, device), pyconvnet.tensor(mean, device)
    x = images.astype(np.float64) - mean

    def patch(i, y, xx, flip=False):
        p = x[i, y:y + crop, xx:xx + crop].transpose(2, 0, 1)
        return p[:, :, ::-1] if flip else p

    center = aug.apply(im, mu, aug.center_params(n, h, w, crop), crop).numpy()
    for i in range(n):
        assert_close(center[i], patch(i, 2, 4), **TOL)
    ten = aug.apply(im, mu, aug.ten_crop_params(n, h, w, crop), crop).numpy()
    assert ten.shape == (10 * n, 3, crop, crop)
    corners = {"center": (2, 4), "top-left": (0, 0), "top-right": (0, 8), "bottom-left": (4, 0), "bottom-right": (4, 8)}
    for i in range(n):
        for t, name in enumerate(aug.TEN_CROP_ORDER):
            assert_close(ten[10 * i + t], patch(i, *corners[name]), **TOL, what=f"image {i} {name}")
            assert_close(ten[10 * i + 5 + t], patch(i, *corners[name], flip=True), **TOL, what=f"image {i} {name} reflected")


def test_shuffle_is_a_seeded_permutation():
    p = aug.shuffle(5, 0, 1000)
    assert sorted(p.tolist()) == list(range(1000))
    assert np.array_equal(p, aug.shuffle(5, 0, 1000))
    assert not np.array_equal(p, aug.shuffle(5, 1, 1000))
    assert not np.array_equal(p, aug.shuffle(6, 0, 1000))
    assert aug.shuffle(5, 0, 0).shape == (0,)
