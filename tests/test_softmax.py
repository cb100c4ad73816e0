import numpy as np
import pytest

import pyconvnet
from pyconvnet import ops, reference as ref
from helpers import all_versions, assert_close, assert_same_bits_on_1_and_2_threads, version_rule

# float32 tolerances. p_i = exp(x_i - m) / S: the rounding of x_i - m is relative to |x_i - m|, so
# exp's result is off by up to |x_i - m| * 2^-24 relatively (< 4e-6 for the spreads < 60 used
# here), plus a few ulps from exp, the sum and the division: rtol 1e-5. atol only covers outputs
# below 1e-30, where float32 subnormals lose relative precision.
PROB = dict(rtol=1e-5, atol=1e-30)
# The loss is a sum of per-row losses, each log S - (x_label - m) with the same relative error.
LOSS_RTOL = 1e-5


def logits_for(rng, shape, spread=8.0):
    return (rng.standard_normal(shape) * spread).astype(np.float32)


# (16, 1000): AlexNet's logits at batch 16, rows split across the CPU threads.
@pytest.mark.parametrize("shape", [(2, 1000), (16, 1000), (1, 1), (3, 7), (5, 33), (4, 1024), (2, 1025), (3, 3000)])
def test_softmax_matches_reference(device, rng, shape):
    x = logits_for(rng, shape)
    expected = ref.softmax(x)
    for version in all_versions("softmax", device):
        p = ops.softmax(pyconvnet.tensor(x, device), version=version)
        assert p.device.startswith(device)
        assert_close(p, expected, **PROB, what=f"softmax, version {version}")


@pytest.mark.parametrize("shape", [(128, 1000), (1, 1), (3, 7), (5, 33), (2, 1025), (3, 3000)])
def test_cross_entropy_matches_reference(device, rng, shape):
    x = logits_for(rng, shape)
    labels = rng.integers(0, shape[1], shape[0]).astype(np.int32)
    loss_ref, d_ref = ref.cross_entropy(x, labels)
    for version in all_versions("cross_entropy", device):
        loss, d = ops.cross_entropy(pyconvnet.tensor(x, device), pyconvnet.tensor(labels, device), version=version)
        assert isinstance(loss, float) and d.device.startswith(device)
        assert loss == pytest.approx(loss_ref, rel=LOSS_RTOL), f"loss, version {version}"
        assert_close(d, d_ref, **PROB, what=f"dlogits, version {version}")


def test_cross_entropy_confident_rows_keep_their_digits(device, rng):
    # The label holds the maximum by a wide margin: p_label ~ 1 - 1e-9 and loss ~ 1e-9 per row,
    # which p_label - 1 and log(S) in float32 would round to 0.
    x = logits_for(rng, (4, 1000), spread=1.0)
    labels = np.array([3, 999, 0, 500], np.int32)
    x[np.arange(4), labels] = 30.0
    loss_ref, d_ref = ref.cross_entropy(x, labels)
    for version in all_versions("cross_entropy", device):
        loss, d = ops.cross_entropy(pyconvnet.tensor(x, device), pyconvnet.tensor(labels, device), version=version)
        assert loss == pytest.approx(loss_ref, rel=LOSS_RTOL)
        assert_close(d, d_ref, **PROB, what=f"dlogits, version {version}")


def test_huge_logits_are_stable(device):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], np.float32)
    labels = np.array([0, 0], np.int32)
    loss_ref, d_ref = ref.cross_entropy(x, labels)
    for version in all_versions("softmax", device):
        p = ops.softmax(pyconvnet.tensor(x, device), version=version)
        assert_close(p, ref.softmax(x), **PROB, what="softmax")
    for version in all_versions("cross_entropy", device):
        loss, d = ops.cross_entropy(pyconvnet.tensor(x, device), pyconvnet.tensor(labels, device), version=version)
        assert loss == pytest.approx(1e4, rel=LOSS_RTOL) and loss == pytest.approx(loss_ref, rel=LOSS_RTOL)
        assert_close(d, d_ref, **PROB, what="dlogits")


def test_nan_propagates_to_its_row(device, rng):
    x = logits_for(rng, (3, 50))
    x[1, 7] = np.nan
    labels = np.array([1, 2, 3], np.int32)
    for version in all_versions("softmax", device):
        p = ops.softmax(pyconvnet.tensor(x, device), version=version).numpy()
        assert np.isnan(p[1]).all() and not np.isnan(p[[0, 2]]).any()
    for version in all_versions("cross_entropy", device):
        loss, d = ops.cross_entropy(pyconvnet.tensor(x, device), pyconvnet.tensor(labels, device), version=version)
        d = d.numpy()
        assert np.isnan(loss) and np.isnan(d[1]).all() and not np.isnan(d[[0, 2]]).any()


@pytest.mark.parametrize("shape", [(128, 1000), (1, 1), (3, 4), (5, 33), (4, 1024), (2, 1025), (3, 3000)])
@pytest.mark.parametrize("spread", [8.0, 0.0])  # 0: logits rounded to a few values, many ties
def test_cross_entropy_counts_topk_hits(device, rng, shape, spread):
    x = logits_for(rng, shape) if spread else np.round(rng.standard_normal(shape)).astype(np.float32)
    labels = rng.integers(0, shape[1], shape[0]).astype(np.int32)
    # Rows where the label holds a maximum, and (so that both counts vary) rows where it is 5th.
    x[0, labels[0]] = x[0].max()
    if shape[1] >= 6:
        x[-1, labels[-1]] = np.sort(x[-1])[-5]
    expected = ref.topk_hits(x, labels)
    loss_ref, d_ref = ref.cross_entropy(x, labels)
    for version in all_versions("cross_entropy", device):
        loss, d, hits = ops.cross_entropy(pyconvnet.tensor(x, device), pyconvnet.tensor(labels, device),
                                          version=version, hits=True)
        assert hits == expected, f"version {version}"
        assert loss == pytest.approx(loss_ref, rel=LOSS_RTOL), f"loss, version {version}"
        assert_close(d, d_ref, **PROB, what=f"dlogits, version {version}")


def test_topk_hits_rank_nan_last(device):
    nan = np.nan
    x = np.array([[1.0, nan, 0.0, 2.0, 3.0, 4.0, 5.0],    # label 1 is NaN: behind every number
                  [nan, nan, 0.0, 1.0, 1.0, 1.0, 1.0],    # label 2: only the numbers are ahead
                  [nan, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],    # label 6 ties with 5 lower indices: 6th
                  [nan, 9.0, 0.0, nan, 0.0, 0.0, 0.0]], np.float32)
    labels = np.array([1, 6, 6, 1], np.int32)
    assert ref.topk_hits(x, labels) == (1, 2)
    for version in all_versions("cross_entropy", device):
        _, _, hits = ops.cross_entropy(pyconvnet.tensor(x, device), pyconvnet.tensor(labels, device),
                                       version=version, hits=True)
        assert hits == (1, 2), f"version {version}"


def test_empty_batch(device):
    x = pyconvnet.zeros((0, 10), device=device)
    assert ops.softmax(x).shape == (0, 10)
    loss, d = ops.cross_entropy(x, pyconvnet.zeros(0, np.int32, device))
    assert loss == 0.0 and d.shape == (0, 10)


@pytest.mark.parametrize("labels,message", [
    ([0, 1, 7, -1], r"labels\[2\] = 7"), ([-1, 0, 0, 0], r"labels\[0\] = -1"), ([0, 0, 0, 2**31 - 1], r"labels\[3\] = 2147483647"),
])
def test_cross_entropy_rejects_labels_out_of_range(device, labels, message):
    x = pyconvnet.zeros((4, 7), device=device)
    lab = pyconvnet.tensor(np.array(labels, np.int32), device)
    for version in all_versions("cross_entropy", device):
        with pytest.raises(ValueError, match=r"cross_entropy: argument 'labels' must hold class indices in \[0, 7\); got " + message):
            ops.cross_entropy(x, lab, version=version)


def test_cross_entropy_rejects_bad_tensors(device):
    x = pyconvnet.zeros((4, 7), device=device)
    with pytest.raises(TypeError, match=r"cross_entropy: argument 'labels' must have dtype int32; got float32"):
        ops.cross_entropy(x, pyconvnet.zeros(4, device=device))
    with pytest.raises(ValueError, match=r"cross_entropy: argument 'labels' must have shape \(4,\); got \(3,\)"):
        ops.cross_entropy(x, pyconvnet.zeros(3, np.int32, device))
    with pytest.raises(ValueError, match=r"softmax: argument 'x' must have rank 2 \(N, classes\); got shape \(28,\)"):
        ops.softmax(pyconvnet.zeros(28, device=device))
    with pytest.raises(ValueError, match="softmax: argument 'version' " + version_rule("softmax", device) + "; got 5"):
        ops.softmax(x, version=5)


def test_cross_entropy_async_reads_what_cross_entropy_returns(device, rng):
    # The training step's form: the loss and hits stay on the device until read(); a result
    # dropped unread gives its pinned buffer back only once the copy into it is done.
    logits = pyconvnet.tensor(rng.standard_normal((37, 10)).astype(np.float32), device)
    labels = pyconvnet.tensor(rng.integers(0, 10, 37).astype(np.int32), device)
    loss, dlogits, hits = ops.cross_entropy(logits, labels, hits=True)
    for _ in range(3):
        ops.cross_entropy_async(logits, labels)  # dropped unread
    pending, dlogits2 = ops.cross_entropy_async(logits, labels)
    assert pending.read() == (loss, *hits) == pending.read()
    assert np.array_equal(dlogits.numpy(), dlogits2.numpy())
    bad = pyconvnet.tensor(np.array([3] * 36 + [10], np.int32), device)
    pending, _ = ops.cross_entropy_async(logits, bad)
    with pytest.raises(ValueError, match=r"cross_entropy: argument 'labels' must hold class indices in \[0, 10\); got labels\[36\] = 10"):
        pending.read()


# Row widths around the CPU kernels' blocks (16 lanes, 64 elements a step on AVX-512, a masked
# last block): 1, 7, 15..17, 63..65, AlexNet's 1000 and 1001.
AWKWARD_WIDTHS = [1, 7, 15, 16, 17, 63, 64, 65, 100, 1000, 1001]


def _awkward_batch(rng, c):
    # Labels at the first and the last class, in the first block, near the end, in the middle
    # (holding the row's maximum by 20: p_label ~ 1 - 5e-13, the log1p loss) and at random.
    x = logits_for(rng, (6, c))
    labels = np.array([0, c - 1, min(5, c - 1), max(0, c - 3), c // 2, rng.integers(0, c)], np.int32)
    x[4, labels[4]] = x[4].max() + 20.0
    return x, labels


@pytest.mark.parametrize("c", AWKWARD_WIDTHS)
def test_awkward_row_widths_match_reference(device, rng, c):
    x, labels = _awkward_batch(rng, c)
    loss_ref, d_ref = ref.cross_entropy(x, labels)
    for version in all_versions("softmax", device):
        p = ops.softmax(pyconvnet.tensor(x, device), version=version)
        assert_close(p, ref.softmax(x), **PROB, what=f"softmax, version {version}")
    for version in all_versions("cross_entropy", device):
        loss, d, hits = ops.cross_entropy(pyconvnet.tensor(x, device), pyconvnet.tensor(labels, device),
                                          version=version, hits=True)
        assert loss == pytest.approx(loss_ref, rel=LOSS_RTOL), f"loss, version {version}"
        assert_close(d, d_ref, **PROB, what=f"dlogits, version {version}")
        assert hits == ref.topk_hits(x, labels), f"version {version}"


def _bits(a):
    a = np.asarray(a)
    return a.view(np.uint64 if a.dtype == np.float64 else np.uint32)


def test_cpu_softmax_and_cross_entropy_agree_bit_for_bit_on_every_path(rng):
    # Every path rounds the same operations in the same order (csrc/cpu/simd_kernels.h): the
    # probabilities, dlogits, losses and hits are the same bits on AVX-512, AVX2 and the baseline,
    # at every width, and in rows with NaN (its payload included), infinities, ties and a zero
    # maximum of either sign.
    batches = [_awkward_batch(rng, c) for c in AWKWARD_WIDTHS]
    x = logits_for(rng, (6, 1001))
    x[0, 17] = np.nan
    x[1, 999] = np.inf
    x[2] = -np.inf
    x[3] = np.round(x[3] / 8)  # ties
    x[4] = -np.abs(x[4])
    x[4, 3], x[4, 900] = -0.0, 0.0
    x[5, 1000] = np.nan  # in the last block
    batches.append((x, np.array([17, 999, 0, 500, 900, 1000], np.int32)))
    before = pyconvnet.cpu_info()["isa"]
    results = {}
    try:
        for isa in pyconvnet.cpu_info()["supported"]:
            pyconvnet.set_cpu_isa(isa)
            got = []
            for x, labels in batches:
                loss, d, hits = ops.cross_entropy(x, labels, hits=True)
                got += [_bits(ops.softmax(x).numpy()), _bits(d.numpy()), _bits(np.float64(loss)), hits]
            results[isa] = got
    finally:
        pyconvnet.set_cpu_isa(before)
    first = next(iter(results.values()))
    for isa, got in results.items():
        for i, (a, b) in enumerate(zip(first, got)):
            assert np.array_equal(a, b), (isa, i)


_THREADS_RUN = """
import sys
import numpy as np
from pyconvnet import ops
rng = np.random.default_rng(3)
out = {}
for n, c in [(16, 1000), (37, 1001), (256, 17)]:  # all three split across the threads
    x = (rng.standard_normal((n, c)) * 8).astype(np.float32)
    labels = rng.integers(0, c, n).astype(np.int32)
    out[f"softmax {n}x{c}"] = ops.softmax(x).numpy()
    loss, d, hits = ops.cross_entropy(x, labels, hits=True)
    out[f"dlogits {n}x{c}"] = d.numpy()
    out[f"loss, hits {n}x{c}"] = np.array([loss, *hits])
np.savez(sys.argv[2], **out)
"""


def test_cpu_softmax_and_cross_entropy_do_not_depend_on_the_thread_count(tmp_path):
    assert_same_bits_on_1_and_2_threads(_THREADS_RUN, [], tmp_path, 9)
