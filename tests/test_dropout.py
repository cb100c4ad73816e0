from fractions import Fraction
import math

import numpy as np
import pytest

import pyconvnet
from pyconvnet import _C, ops, reference as ref
from conftest import requires_cuda
from helpers import all_versions, assert_close, version_rule

STREAM_DROPOUT = 1    # csrc/philox.h kStreamDropout
# y = x * float32(1 / (1 - p)): two float32 roundings, <= 2^-23 relative.
SCALED = dict(rtol=2.5e-7, atol=1e-30)


def expected_mask(shape, p, seed, first_row=0):
    """The spec: element j of row r (the first axis) kept iff Philox word j of row first_row + r
    >= the integer nearest p * 2^32."""
    threshold = math.floor(Fraction(p) * 2**32 + Fraction(1, 2))
    rows = shape[0] if shape else 1
    row_len = int(np.prod(shape[1:])) if shape else 1
    words = [_C.philox_words(seed, STREAM_DROPOUT, 0, row_len, row=first_row + r) for r in range(rows)]
    words = np.concatenate(words) if words else np.zeros(0, np.uint32)
    return (words.astype(np.int64) >= threshold).reshape(shape)


@pytest.mark.parametrize("shape,p,seed", [
    ((2, 4096), 0.5, 1234),            # AlexNet's fc6/fc7 outputs
    ((3, 5, 7), 0.3, 2**64 - 1),       # not a multiple of 4; the largest seed
    ((1,), 0.9, 0), ((0, 4096), 0.5, 7), ((4097,), 0.25, 2**40 + 3),
    ((3, 2, 3), 0.5, 11),              # rows of 6: a row's last block is partial
])
def test_dropout_matches_spec_and_reference(device, rng, shape, p, seed):
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    keep = expected_mask(shape, p, seed)
    for version in all_versions("dropout", device):
        y, mask = ops.dropout(pyconvnet.tensor(x, device), p, seed, version=version)
        assert y.device.startswith(device) and mask.dtype == np.uint8 and mask.shape == shape
        assert np.array_equal(mask.numpy(), keep.astype(np.uint8)), f"mask, version {version}"
        assert_close(y, ref.dropout(x, keep, p), **SCALED, what=f"forward, version {version}")
        dx = ops.dropout_backward(pyconvnet.tensor(dy, device), mask, p, version=0)
        assert_close(dx, ref.dropout_backward(dy, keep, p), **SCALED, what="backward")


def test_dropout_row_zero_is_the_flat_stream():
    """Row 0 of the stream is philox_word's (the counter word that numbers rows is 0)."""
    assert np.array_equal(_C.philox_words(9, STREAM_DROPOUT, 0, 12, row=0), _C.philox_words(9, STREAM_DROPOUT, 0, 12))
    assert not np.array_equal(_C.philox_words(9, STREAM_DROPOUT, 0, 12, row=1), _C.philox_words(9, STREAM_DROPOUT, 0, 12))


def test_dropout_parts_of_a_batch_draw_the_whole_batchs_mask(device, rng):
    """Rows split over parts, each given its first row in the batch: the same mask as the batch."""
    x = rng.standard_normal((7, 3, 5)).astype(np.float32)
    for version in all_versions("dropout", device):
        _, whole = ops.dropout(pyconvnet.tensor(x, device), 0.5, 42, version=version)
        parts = [ops.dropout(pyconvnet.tensor(x[a:b], device), 0.5, 42, version=version, first_row=a)[1].numpy()
                 for a, b in ((0, 3), (3, 4), (4, 7))]
        assert np.array_equal(np.concatenate(parts), whole.numpy()), f"version {version}"
        assert np.array_equal(whole.numpy(), expected_mask(x.shape, 0.5, 42).astype(np.uint8))
        _, shifted = ops.dropout(pyconvnet.tensor(x[3:], device), 0.5, 42, version=version, first_row=3)
        assert np.array_equal(shifted.numpy(), expected_mask((4, 3, 5), 0.5, 42, first_row=3).astype(np.uint8))


def test_dropout_rejects_bad_first_row(device):
    x = pyconvnet.tensor(np.ones((4, 2), np.float32), device)
    ops.dropout(x, 0.5, 1, first_row=2**32 - 4)  # the last rows there are
    for first_row in (-1, 2**32 - 3):
        with pytest.raises(ValueError, match=rf"dropout: argument 'first_row' must be in \[0, 2\^32 - rows\] "
                                             rf"with rows = 4 \(x's first axis\); got {first_row}"):
            ops.dropout(x, 0.5, 1, first_row=first_row)


@pytest.mark.parametrize("p", [0.5, 0.1, 0.9])
def test_dropout_keep_rate_and_scale(device, rng, p):
    n = 1 << 20
    x = rng.uniform(1, 2, n).astype(np.float32)
    seed = int(rng.integers(0, 2**63))
    for version in all_versions("dropout", device):
        y, mask = ops.dropout(pyconvnet.tensor(x, device), p, seed, version=version)
        y, kept = y.numpy(), mask.numpy().astype(bool)
        # Keep count ~ Binomial(n, 1 - p): within 5 standard deviations (fails ~1 in 1.7 million).
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(kept.sum() - n * (1 - p)) < 5 * sigma, (kept.sum(), n * (1 - p))
        assert np.all(y[~kept] == 0)
        assert_close(y[kept], x[kept] / (1 - p), **SCALED, what="kept units")
        # The scale keeps the expectation: mean(y) ~ mean(x) within 5 standard errors.
        assert abs(y.mean() - x.mean()) < 5 * y.std() / math.sqrt(n)


def test_dropout_p_zero_keeps_everything(device, rng):
    x = rng.standard_normal((3, 100)).astype(np.float32)
    y, mask = ops.dropout(pyconvnet.tensor(x, device), 0.0, 99)
    assert np.all(mask.numpy() == 1) and np.array_equal(y.numpy(), x)


def test_dropout_seeds_give_different_masks(device):
    x = pyconvnet.tensor(np.ones(4096, np.float32), device)
    m1, m2, m3 = (ops.dropout(x, 0.5, s)[1].numpy() for s in (1, 2, 1))
    assert np.array_equal(m1, m3) and not np.array_equal(m1, m2)


@requires_cuda
def test_dropout_mask_identical_on_cpu_and_cuda(rng):
    x = rng.standard_normal((2, 4096)).astype(np.float32)
    seed = int(rng.integers(0, 2**64, dtype=np.uint64))
    y_cpu, m_cpu = ops.dropout(pyconvnet.tensor(x, "cpu"), 0.5, seed)
    for version in all_versions("dropout", "cuda"):
        y_gpu, m_gpu = ops.dropout(pyconvnet.tensor(x, "cuda"), 0.5, seed, version=version)
        assert np.array_equal(m_cpu.numpy(), m_gpu.numpy())
        assert np.array_equal(y_cpu.numpy(), y_gpu.numpy())


def test_dropout_propagates_nan(device):
    x = pyconvnet.tensor(np.full(64, np.nan, np.float32), device)
    y, mask = ops.dropout(x, 0.5, 5)
    assert np.isnan(y.numpy()).all()  # dropped NaNs too: x * 0 is NaN, as in the reference
    assert np.isnan(ops.dropout_backward(x, mask, 0.5).numpy()).all()


@pytest.mark.parametrize("p,shown", [(1.0, "1"), (-0.1, "-0.1"), (1.5, "1.5"), (float("nan"), "nan")])
def test_dropout_rejects_bad_p(device, p, shown):
    x = pyconvnet.zeros(8, device=device)
    with pytest.raises(ValueError, match=rf"dropout: argument 'p' must be a drop probability in \[0, 1\); got {shown}$"):
        ops.dropout(x, p, 0)
    with pytest.raises(ValueError, match=rf"dropout_backward: argument 'p' must be a drop probability in \[0, 1\); got {shown}$"):
        ops.dropout_backward(x, pyconvnet.zeros(8, np.uint8, device), p)


def test_dropout_rejects_bad_seed_and_mask(device):
    x = pyconvnet.zeros(8, device=device)
    for seed in (-1, 2**64):
        with pytest.raises(ValueError, match=rf"dropout: argument 'seed' must be an int in \[0, 2\*\*64\); got {seed}"):
            ops.dropout(x, 0.5, seed)
    with pytest.raises(TypeError, match=r"dropout: argument 'seed' must be an int; got float 1.5"):
        ops.dropout(x, 0.5, 1.5)
    with pytest.raises(TypeError, match=r"dropout_backward: argument 'mask' must have dtype uint8; got float32"):
        ops.dropout_backward(x, x, 0.5)
    with pytest.raises(ValueError, match=r"dropout_backward: argument 'mask' must have shape \(8,\); got \(4,\)"):
        ops.dropout_backward(x, pyconvnet.zeros(4, np.uint8, device), 0.5)
    with pytest.raises(ValueError, match="dropout: argument 'version' " + version_rule("dropout", device) + "; got -1"):
        ops.dropout(x, 0.5, 0, version=-1)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("width, cut", [(64, 32), (10, 3), (4096, 2048)])
def test_a_part_draws_its_slice_of_the_wider_mask(device, rng, version, width, cut):
    """Two columns' halves of a layer, each dropped with part=(offset, width), get exactly the
    mask of the whole layer: the two-column network drops what the one-device network drops."""
    if device == "cpu":
        version = 1
    n = 3
    x = rng.standard_normal((n, width)).astype(np.float32)
    _, mask = ops.dropout(pyconvnet.tensor(x, device), 0.5, 1234, version=version)
    for lo, hi in ((0, cut), (cut, width)):
        part = pyconvnet.tensor(np.ascontiguousarray(x[:, lo:hi]), device)
        y, m = ops.dropout(part, 0.5, 1234, version=version, part=(lo, width))
        assert np.array_equal(m.numpy(), mask.numpy()[:, lo:hi])
        assert_close(y, ref.dropout(x[:, lo:hi], m.numpy(), 0.5), what="forward of a part")


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("width, cut", [(10, 3), (13, 5), (40000, 16387)])  # unaligned; past a CPU chunk
def test_a_part_of_the_features_and_the_rows_draws_the_spec(device, rng, version, width, cut):
    """A column's half of a rank's part of the batch: part=(offset, width) and first_row at once
    draw the spec's words (offset + j of row first_row + r), the whole batch's mask."""
    if device == "cpu":
        version = 1
    rows, first = 5, 2
    whole = expected_mask((first + rows, width), 0.5, 99)
    x = rng.standard_normal((rows, width)).astype(np.float32)
    for lo, hi in ((0, cut), (cut, width)):
        part = pyconvnet.tensor(np.ascontiguousarray(x[:, lo:hi]), device)
        y, m = ops.dropout(part, 0.5, 99, version=version, first_row=first, part=(lo, width))
        assert np.array_equal(m.numpy(), whole[first:, lo:hi].astype(np.uint8))
        assert_close(y, ref.dropout(x[:, lo:hi], m.numpy(), 0.5), what="forward of a part")


def test_a_part_must_lie_inside_the_wider_rows(device):
    x = pyconvnet.zeros((2, 8), device=device)
    with pytest.raises(ValueError, match=r"dropout: argument 'part' must be \(offset, width\) with 0 <= offset "
                                         r"and offset \+ 8 \(x's features\) <= width; got \(4, 10\)"):
        ops.dropout(x, 0.5, 1, part=(4, 10))
    with pytest.raises(ValueError, match="dropout: argument 'x' must have rank 2"):
        ops.dropout(pyconvnet.zeros((2, 2, 2), device=device), 0.5, 1, part=(0, 4))


@pytest.mark.parametrize("offset", [4 * (2**32 - 16) - 3, 4 * (2**32 - 5), 4 * 2**32 + 1])
def test_dropout_draws_the_spec_across_the_counters_low_word(device, rng, offset):
    """Words 4 * 2^32 on come from blocks whose low counter word has wrapped to 0 and whose high
    word is 1: a part that far into a (never allocated) wider row draws them, whichever of the
    vectorised CPU kernels' groups of blocks (8 or 16) straddles the wrap."""
    n, width, seed = 150, 2**36, 2**63 + 5
    x = rng.standard_normal((2, n)).astype(np.float32)
    y, m = ops.dropout(pyconvnet.tensor(x, device), 0.5, seed, first_row=3, part=(offset, width))
    words = np.stack([_C.philox_words(seed, STREAM_DROPOUT, offset, n, row=3 + r) for r in range(2)])
    keep = words >= 2**31
    assert np.array_equal(m.numpy(), keep.astype(np.uint8))
    assert_close(y, ref.dropout(x, keep, 0.5), **SCALED, what="forward past the wrap")


def test_dropout_with_p_just_below_one_keeps_nothing(device, rng):
    """p > 1 - 2^-33 rounds the threshold to 2^32, above every 32-bit word: all dropped (and
    x * 0 keeps a NaN a NaN)."""
    x = rng.standard_normal((3, 1000)).astype(np.float32)
    x[1, 7] = np.nan
    y, m = ops.dropout(pyconvnet.tensor(x, device), 1 - 2**-40, 5)
    assert not m.numpy().any()
    expected = x * np.float32(0)
    assert np.array_equal(np.isnan(y.numpy()), np.isnan(expected))
    assert np.array_equal(np.nan_to_num(y.numpy()), np.nan_to_num(expected))
