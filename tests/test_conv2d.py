"""conv2d and conv2d_backward: every kernel version on every device against the float64
reference, over AlexNet's layers at small batch and awkward shapes; determinism; bad input."""
import numpy as np
import pytest

import pyconvnet
from pyconvnet import _C, ops, reference as ref
from conftest import requires_cuda
from float32_sums import assert_products_close, assert_sum_close
from helpers import assert_same_bits_on_1_and_2_threads, same_on_every_cuda_device, simulated


def _pair(v):
    return (v, v) if isinstance(v, int) else v


# (N, C, H, W, K, R, S, stride, padding, groups)
ALEXNET = {
    "conv1": (2, 3, 224, 224, 96, 11, 11, 4, 2, 1),
    "conv2": (2, 96, 27, 27, 256, 5, 5, 1, 2, 2),
    "conv3": (2, 256, 13, 13, 384, 3, 3, 1, 1, 1),
    "conv4": (2, 384, 13, 13, 384, 3, 3, 1, 1, 2),
    "conv5": (2, 384, 13, 13, 256, 3, 3, 1, 1, 2),
}
AWKWARD = {
    "batch1_odd": (1, 3, 7, 5, 5, 3, 3, 1, 0, 1),
    "nonsquare_kernel_pairs": (3, 4, 10, 13, 6, 2, 5, (2, 1), (1, 2), 2),
    "stride_above_kernel": (2, 5, 17, 15, 7, 2, 2, 3, 0, 1),
    "output_1x1": (2, 8, 5, 5, 3, 5, 5, 1, 0, 1),
    "output_1x1_strided_groups": (1, 4, 3, 3, 6, 3, 3, 2, 0, 2),
    "input_1x1_padded": (1, 2, 1, 1, 3, 3, 3, 1, 1, 1),
    "kernel_1x1": (2, 16, 9, 9, 33, 1, 1, 1, 0, 1),
    "three_groups_column_kernel": (2, 12, 8, 7, 9, 3, 1, 1, (1, 0), 3),
    "depthwise": (2, 6, 9, 9, 6, 3, 3, 2, 1, 6),
    "off_tile_sizes": (3, 65, 11, 9, 67, 3, 3, 1, 1, 1),
    "padding_above_kernel": (1, 3, 5, 4, 2, 2, 3, 1, 3, 1),
    "empty_batch": (0, 4, 6, 6, 5, 3, 3, 1, 1, 1),
    # CUDA version 3 takes 128x128 tiles for M > 96 rows (filters in the forward and filter
    # gradient, channels in the data gradient), 64x128 below: M = 128 with a partial column
    # tile and K = 18 (two whole k-slices and a partial one), with stride 1 and 2; M = 200 (a
    # partial row tile) with K = 1.
    "large_tiles_forward": (1, 2, 20, 20, 128, 3, 3, 1, 1, 1),
    "large_tiles_data": (1, 128, 20, 20, 2, 3, 3, 1, 1, 1),
    "large_tiles_data_strided": (2, 128, 21, 21, 2, 3, 3, 2, 1, 1),
    "large_tiles_partial_m": (1, 1, 30, 30, 200, 1, 1, 1, 0, 1),
    # CPU version 2 gathers the im2col matrix from a padded copy of the image, 8 columns at a
    # time where their offsets are at most two runs: output rows 13 wide (a run break inside
    # most groups of 8) ending in a partial panel, one image; filter rows 9 wide (the taps' side
    # is two runs: the filter gradient's transposed panels, and the forward at stride 2 and in a
    # single output column); everything else element by element.
    "narrow_rows_partial_panel": (1, 5, 11, 13, 7, 3, 3, 1, 1, 1),
    "wide_kernel_rows": (2, 3, 12, 20, 5, 3, 9, 1, (1, 4), 1),
    "strided_wide_kernel_groups": (2, 4, 15, 23, 6, 3, 9, 2, 2, 2),
    "single_column_wide_kernel": (2, 3, 10, 9, 4, 2, 9, 1, 0, 1),
    # With few output pixels a product of CPU version 2 covers a block of images (their pixels
    # side by side, up to about 128 columns, the last block partial): 3 x 3 outputs (9 pixels,
    # blocks of up to 15 images) and 7 x 7 ones (49, up to 3), grouped; the input gradient at
    # stride 1 is such a product too.
    "small_outputs_image_blocks": (37, 6, 3, 3, 10, 3, 3, 1, 1, 2),
    "seven_by_seven_image_blocks": (11, 4, 7, 7, 6, 5, 5, 1, 2, 2),
}
CASES = {**ALEXNET, **AWKWARD}
# The AlexNet layers with smaller images (same channels, kernels, strides, padding and groups)
# for the CUDA simulator, where the real sizes take minutes; CPU and GPU runs keep the real ones.
SIMULATED = {
    "conv1": (2, 3, 63, 63, 96, 11, 11, 4, 2, 1),
    "conv2": (2, 96, 13, 13, 256, 5, 5, 1, 2, 2),
    "conv3": (2, 256, 7, 7, 384, 3, 3, 1, 1, 1),
    "conv4": (2, 384, 7, 7, 384, 3, 3, 1, 1, 2),
    "conv5": (2, 384, 7, 7, 256, 3, 3, 1, 1, 2),
}


def _case(name, device):
    return SIMULATED.get(name, CASES[name]) if simulated(device) else CASES[name]


def _make(rng, case):
    n, c, h, w, k, r, s, stride, padding, groups = case
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c // groups, r, s)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    p, q = ref.conv_output_size(h, r, sh, ph), ref.conv_output_size(w, s, sw, pw)
    dy = rng.standard_normal((n, k, p, q)).astype(np.float32)
    return x, wt, b, dy, dict(stride=stride, padding=padding, groups=groups)


def _sums(x, w, b, dy, kw, f=np.abs):
    """The sums of f(terms) of y, dx, dw, db: f = abs gives the scale of the FP32 tolerance,
    np.square the sums of squared terms of the TF32 one (float32_sums)."""
    return (ref.conv2d(f(x), f(w), None if b is None else f(b), **kw),) + ref.conv2d_backward(f(dy), f(x), f(w), **kw)


def _squares(device, x, w, dy, kw):
    """_sums(np.square) of the products (the bias is added in FP32) when some conv2d version on
    `device` is TF32, else None."""
    return _sums(x, w, None, dy, kw, np.square) if ops.versions("conv2d", device, precision="tf32") else None


def _check_all(got, expected, bounds, squares, case, precision, what):
    """got/expected/bounds/squares: (y, dx, dw, db) each; bounds and squares are the sums of
    |terms| and of terms^2 (float32_sums; squares only needed for a TF32 version)."""
    n, c, h, w, k, r, s, stride, padding, groups = case
    _, _, p, q = expected[0].shape
    lengths = {"y": c // groups * r * s, "dx": k // groups * r * s, "dw": n * p * q, "db": n * p * q}
    for i, (name, a, e, bound) in enumerate(zip(("y", "dx", "dw", "db"), got, expected, bounds)):
        if a is not None:
            # db is a plain FP32 sum of dy in every version.
            prec = "fp32" if name == "db" else precision
            assert_products_close(a, e, bound, squares[i] if prec == "tf32" else None, lengths[name], prec,
                                  what=f"{what}: {name}")


@pytest.mark.parametrize("name", list(CASES))
def test_conv2d_matches_reference(device, rng, name):
    case = _case(name, device)
    x, w, b, dy, kw = _make(rng, case)
    expected = (ref.conv2d(x, w, b, **kw),) + ref.conv2d_backward(dy, x, w, **kw)
    bounds, squares = _sums(x, w, b, dy, kw), _squares(device, x, w, dy, kw)
    xt, wt, bt, dyt = (pyconvnet.tensor(a, device) for a in (x, w, b, dy))
    for version in ops.versions("conv2d", device):
        y = ops.conv2d(xt, wt, bt, **kw, version=version)
        assert y.device.startswith(device)
        got = (y,) + ops.conv2d_backward(dyt, xt, wt, **kw, version=version)
        _check_all(got, expected, bounds, squares, case, ops.precision("conv2d", device, version),
                   f"{name} on {device}, version {version}")


def test_conv2d_default_version_is_one_of_the_versions(device, rng):
    x, w, b, dy, kw = _make(rng, CASES["off_tile_sizes"])
    xt, wt, bt, dyt = (pyconvnet.tensor(a, device) for a in (x, w, b, dy))
    runs = {v: [t.numpy() for t in (ops.conv2d(xt, wt, bt, **kw, version=v),) + ops.conv2d_backward(dyt, xt, wt, **kw, version=v)]
            for v in [0] + ops.versions("conv2d", device)}
    assert any(all(np.array_equal(a, b) for a, b in zip(runs[0], runs[v])) for v in ops.versions("conv2d", device))


def test_conv2d_without_bias_or_input_grad(device, rng):
    case = AWKWARD["nonsquare_kernel_pairs"]
    x, w, _, dy, kw = _make(rng, case)
    expected = (ref.conv2d(x, w, **kw),) + ref.conv2d_backward(dy, x, w, **kw)
    bounds, squares = _sums(x, w, None, dy, kw), _squares(device, x, w, dy, kw)
    xt, wt, dyt = (pyconvnet.tensor(a, device) for a in (x, w, dy))
    for version in ops.versions("conv2d", device):
        got = (ops.conv2d(xt, wt, **kw, version=version),) + \
            ops.conv2d_backward(dyt, xt, wt, **kw, input_grad=False, version=version)
        assert got[1] is None
        _check_all(got, expected, bounds, squares, case, ops.precision("conv2d", device, version),
                   f"no bias, no dx, version {version}")


def test_conv2d_pass_entry_points_match_backward(device, rng):
    # The per-pass host entry points compute what conv2d_backward does, bit for bit.
    x, w, _, dy, kw = _make(rng, _case("conv2", device))
    xt, wt, dyt = (pyconvnet.tensor(a, device) for a in (x, w, dy))
    s, p, g = _pair(kw["stride"]), _pair(kw["padding"]), kw["groups"]
    for version in ops.versions("conv2d", device):
        dx, dw, db = ops.conv2d_backward(dyt, xt, wt, **kw, version=version)
        dx2 = _C.conv2d_backward_data(dyt, wt, x.shape, s, p, g, version)
        dw2, db2 = _C.conv2d_backward_filter(dyt, xt, w.shape, s, p, g, version)
        for a, b in ((dx, dx2), (dw, dw2), (db, db2)):
            assert np.array_equal(a.numpy(), b.numpy())


def test_conv2d_is_deterministic(device, rng):
    # No float atomics: the same inputs give bit-identical outputs and gradients, every version.
    for name in ("conv2", "off_tile_sizes"):
        x, w, b, dy, kw = _make(rng, _case(name, device))
        xt, wt, bt, dyt = (pyconvnet.tensor(a, device) for a in (x, w, b, dy))
        for version in ops.versions("conv2d", device):
            runs = [[t.numpy() for t in (ops.conv2d(xt, wt, bt, **kw, version=version),)
                     + ops.conv2d_backward(dyt, xt, wt, **kw, version=version)] for _ in range(2)]
            for what, a, b in zip(("y", "dx", "dw", "db"), *runs):
                assert np.array_equal(a, b), f"{name} version {version}: {what} differs between runs"


@pytest.mark.parametrize("name", ["conv1", "conv2", "conv5", "nonsquare_kernel_pairs", "stride_above_kernel",
                                  "padding_above_kernel", "off_tile_sizes", "narrow_rows_partial_panel",
                                  "wide_kernel_rows", "strided_wide_kernel_groups",
                                  "single_column_wide_kernel", "small_outputs_image_blocks"])
def test_cpu_versions_share_forward_and_filter_gradient_sums(rng, name):
    # CPU version 2 packs the im2col matrix straight from the image and sums the filter gradient
    # in one SGEMM over the images, but in the order of version 1: the same bits, except below 64
    # output pixels, where its filter gradient runs k over a chunk's images' pixels in turn (one
    # product, not one per image: another fixed order, checked against the reference by
    # test_conv2d_matches_reference). Its input gradient (a flipped-filter convolution at
    # stride 1) sums in another order; the reference test checks it.
    x, w, b, dy, kw = _make(rng, CASES[name])
    xt, wt, bt, dyt = (pyconvnet.tensor(a) for a in (x, w, b, dy))
    y1, y2 = (ops.conv2d(xt, wt, bt, **kw, version=v).numpy() for v in (1, 2))
    (_, dw1, db1), (_, dw2, db2) = (ops.conv2d_backward(dyt, xt, wt, **kw, input_grad=False, version=v)
                                    for v in (1, 2))
    assert np.array_equal(y1, y2) and np.array_equal(db1.numpy(), db2.numpy())
    if dy.shape[2] * dy.shape[3] >= 64:
        assert np.array_equal(dw1.numpy(), dw2.numpy())


@pytest.mark.parametrize("case", [(3, 2, 1024, 1024, 8, 3, 3, 1, 1, 2),  # gathered: one image a chunk
                                  (3, 1, 1448, 1448, 16, 1, 1, 2, 0, 1),  # rows built from x
                                  (330, 1024, 3, 3, 2, 3, 3, 1, 1, 1)])  # 9 pixels: 2 joined chunks
def test_cpu_filter_gradient_in_image_chunks_has_version_1s_bits(rng, case):
    # Version 2 sums the filter gradient over chunks of images that fit its 32 MiB of copies;
    # the first two cases' images are big enough for a chunk of one, the third's 330 make two
    # chunks of images whose pixels join into one product each. The chunks add on in image
    # order: version 1's bits (where the pixels do not join), and the reference's values.
    x, w, _, dy, kw = _make(rng, case)
    xt, dyt = pyconvnet.tensor(x), pyconvnet.tensor(dy)
    (_, dw1, db1), (_, dw2, db2) = (ops.conv2d_backward(dyt, xt, w, **kw, input_grad=False, version=v)
                                    for v in (1, 2))
    assert np.array_equal(db1.numpy(), db2.numpy())
    if dy.shape[2] * dy.shape[3] >= 64:
        assert np.array_equal(dw1.numpy(), dw2.numpy())
    dw = ref.conv2d_backward(dy, x, w, **kw)[1]
    bound = ref.conv2d_backward(np.abs(dy), np.abs(x), np.abs(w), **kw)[1]
    assert_sum_close(dw2.numpy(), dw, bound, dy.shape[0] * dy.shape[2] * dy.shape[3], "dw")


@pytest.mark.parametrize("name", ["small_outputs_image_blocks", "seven_by_seven_image_blocks"])
def test_cpu_image_blocks_give_each_images_bits(device, rng, name):
    # A product over a block of images sums every output as the product of its image alone
    # would (one image a call: a block of one): the same bits, forward and input gradient.
    if device != "cpu":
        pytest.skip("CPU version 2's image blocks")
    x, w, b, dy, kw = _make(rng, CASES[name])
    y = ops.conv2d(x, w, b, **kw, relu=True).numpy()
    dx = ops.conv2d_backward(dy, x, w, **kw)[0].numpy()
    for n in range(x.shape[0]):
        assert np.array_equal(y[n:n + 1], ops.conv2d(x[n:n + 1], w, b, **kw, relu=True).numpy()), n
        assert np.array_equal(dx[n:n + 1], ops.conv2d_backward(dy[n:n + 1], x[n:n + 1], w, **kw)[0].numpy()), n


# Every CPU version's y, dx, dw, db of some cases, from a fresh process, into an .npz file.
_THREADS_RUN = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import test_conv2d as t
from pyconvnet import ops
out = {}
for name in sys.argv[3:]:
    n, *rest = t.CASES.get(name) or t.CASES[name.split(":")[0]]
    case = (int(name.split(":")[1]) if ":" in name else n, *rest)
    x, w, b, dy, kw = t._make(np.random.default_rng(7), case)
    for v in ops.versions("conv2d", "cpu"):
        got = (ops.conv2d(x, w, b, **kw, version=v),) + ops.conv2d_backward(dy, x, w, **kw, version=v)
        for what, a in zip(("y", "dx", "dw", "db"), got):
            out[f"{name} v{v} {what}"] = a.numpy()
np.savez(sys.argv[2], **out)
"""


def test_cpu_conv2d_does_not_depend_on_the_thread_count(tmp_path):
    # Two threads split the (image, group) pairs between them, or, with a single pair, the tiles
    # of each product; one thread does it all: the same bits. ("conv3:1": conv3 with one image;
    # the image blocks of small outputs are smaller with more threads.)
    names = ["conv2", "conv3:1", "narrow_rows_partial_panel", "strided_wide_kernel_groups", "wide_kernel_rows",
             "small_outputs_image_blocks"]
    outputs = 4 * len(names) * len(ops.versions("conv2d", "cpu"))
    assert_same_bits_on_1_and_2_threads(_THREADS_RUN, names, tmp_path, outputs)


@requires_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("name", ["conv1", "conv2", "conv4", "off_tile_sizes", "stride_above_kernel"])
def test_conv2d_cpu_and_cuda_agree(rng, name):
    # Both are float32 sums of the same terms in different orders: each is within the tolerance
    # of the exact value, so they are within twice of it of each other.
    # (A TF32 version's operand rounding is CUDA's alone: its part of the tolerance is not doubled.)
    case = _case(name, "cuda")
    x, w, b, dy, kw = _make(rng, case)
    bounds = tuple(2 * a for a in _sums(x, w, b, dy, kw))
    squares = _squares("cuda", x, w, dy, kw)
    cpu = (ops.conv2d(x, w, b, **kw),) + ops.conv2d_backward(dy, x, w, **kw)
    cpu = tuple(t.numpy() for t in cpu)
    xt, wt, bt, dyt = (pyconvnet.tensor(a, "cuda") for a in (x, w, b, dy))
    for version in ops.versions("conv2d", "cuda"):
        got = (ops.conv2d(xt, wt, bt, **kw, version=version),) + ops.conv2d_backward(dyt, xt, wt, **kw, version=version)
        _check_all(got, cpu, bounds, squares, case, ops.precision("conv2d", "cuda", version),
                   f"{name}: cuda version {version} vs cpu")


# ------------------------------------------------------------------------------- bad input

def _zeros(shape, device, dtype=np.float32):
    return pyconvnet.tensor(np.zeros(shape, dtype), device)


BAD_FORWARD = [
    # (x shape, w shape, b shape or None, kwargs, exception, message regex)
    ((3, 8, 8), (4, 3, 3, 3), None, {}, ValueError,
     r"conv2d: argument 'x' must have rank 4 \(N, C, H, W\); got shape \(3, 8, 8\)"),
    ((1, 3, 8, 8), (4, 3, 3), None, {}, ValueError,
     r"conv2d: argument 'w' must have rank 4 \(K, C/groups, R, S\); got shape \(4, 3, 3\)"),
    ((1, 6, 8, 8), (4, 5, 3, 3), None, {}, ValueError,
     r"conv2d: argument 'w' must have C/groups = 6 input channels \(x has C=6, groups=1\); got shape \(4, 5, 3, 3\)"),
    ((1, 6, 8, 8), (4, 6, 3, 3), None, {"groups": 2}, ValueError,
     r"conv2d: argument 'w' must have C/groups = 3 input channels \(x has C=6, groups=2\); got shape \(4, 6, 3, 3\)"),
    ((1, 6, 8, 8), (4, 1, 3, 3), None, {"groups": 4}, ValueError,
     r"conv2d: argument 'groups' must divide the input channels C=6; got 4"),
    ((1, 6, 8, 8), (5, 3, 3, 3), None, {"groups": 2}, ValueError,
     r"conv2d: argument 'groups' must divide the output channels K=5; got 2"),
    ((1, 6, 8, 8), (4, 6, 3, 3), None, {"groups": 0}, ValueError, r"conv2d: argument 'groups' must be positive; got 0"),
    ((1, 3, 4, 4), (2, 3, 7, 5), None, {"padding": 1}, ValueError,
     r"conv2d: argument 'w' must have a kernel no larger than the padded input 6x6 \(x is 4x4, padding \(1, 1\)\); got a 7x5 kernel"),
    ((1, 3, 8, 8), (2, 3, 3, 3), None, {"stride": (0, 1)}, ValueError,
     r"conv2d: argument 'stride' must be positive; got \(0, 1\)"),
    ((1, 3, 8, 8), (2, 3, 3, 3), None, {"padding": -1}, ValueError,
     r"conv2d: argument 'padding' must be non-negative; got \(-1, -1\)"),
    ((1, 3, 8, 8), (2, 3, 3, 3), (3,), {}, ValueError, r"conv2d: argument 'b' must have shape \(2,\); got \(3,\)"),
    ((1, 3, 8, 8), (2, 3, 3, 3), (2, 1), {}, ValueError, r"conv2d: argument 'b' must have rank 1 \(K,\); got shape \(2, 1\)"),
    ((1, 3, 8, 8), (2, 3, 3, 3), None, {"stride": (1, 2, 3)}, ValueError,
     r"conv2d: argument 'stride' must be an int or an \(h, w\) pair; got \(1, 2, 3\)"),
    ((1, 3, 8, 8), (2, 3, 3, 3), None, {"padding": 1.5}, TypeError, r"conv2d: argument 'padding' must be an int; got float 1.5"),
]


@pytest.mark.parametrize("xs,ws,bs,kw,exc,msg", BAD_FORWARD)
def test_conv2d_rejects_bad_input(device, xs, ws, bs, kw, exc, msg):
    b = None if bs is None else _zeros(bs, device)
    with pytest.raises(exc, match=msg):
        ops.conv2d(_zeros(xs, device), _zeros(ws, device), b, **kw)


def test_conv2d_rejects_bad_dtypes(device):
    x, w = _zeros((1, 3, 8, 8), device), _zeros((2, 3, 3, 3), device)
    with pytest.raises(TypeError, match=r"conv2d: argument 'x' must have dtype float32; got int32"):
        ops.conv2d(_zeros((1, 3, 8, 8), device, np.int32), w)
    with pytest.raises(TypeError, match=r"conv2d: argument 'b' must have dtype float32; got uint8"):
        ops.conv2d(x, w, _zeros((2,), device, np.uint8))
    with pytest.raises(TypeError, match=r"conv2d_backward: argument 'dy' must have dtype float32; got int32"):
        ops.conv2d_backward(_zeros((1, 2, 6, 6), device, np.int32), x, w)
    with pytest.raises(TypeError, match=r"conv2d: argument 'x' must have dtype float32, uint8 or int32; got float64"):
        ops.conv2d(np.zeros((1, 3, 8, 8)), w)


def test_conv2d_backward_rejects_bad_input(device):
    x, w = _zeros((2, 3, 8, 8), device), _zeros((4, 3, 3, 3), device)
    with pytest.raises(ValueError, match=r"conv2d_backward: argument 'dy' must have shape \(2, 4, 6, 6\); got \(2, 4, 6, 5\)"):
        ops.conv2d_backward(_zeros((2, 4, 6, 5), device), x, w)
    with pytest.raises(ValueError, match=r"conv2d_backward: argument 'w' must have C/groups = 3 input channels"):
        ops.conv2d_backward(_zeros((2, 4, 6, 6), device), x, _zeros((4, 2, 3, 3), device))
    with pytest.raises(ValueError, match=r"conv2d_backward_data: argument 'dy' must have shape \(2, 4, 6, 6\); got \(2, 4, 3, 3\)"):
        _C.conv2d_backward_data(_zeros((2, 4, 3, 3), device), w, (2, 3, 8, 8), (1, 1), (0, 0), 1, 0)
    with pytest.raises(ValueError, match=r"conv2d_backward_filter: argument 'x' must have rank 4"):
        _C.conv2d_backward_filter(_zeros((2, 4, 6, 6), device), _zeros((2, 3, 8), device), (4, 3, 3, 3), (1, 1), (0, 0), 1, 0)


def test_conv2d_rejects_unknown_versions(device):
    x, w = _zeros((1, 3, 8, 8), device), _zeros((2, 3, 3, 3), device)
    versions = ops.versions("conv2d", device)
    valid = ", ".join(str(v) for v in versions)
    for bad in (-1, versions[-1] + 1):
        with pytest.raises(ValueError, match=rf"conv2d: argument 'version' must be one of 0 \(default, = \d\), {valid} on {device}\S*; got {bad}"):
            ops.conv2d(x, w, version=bad)
        with pytest.raises(ValueError, match=r"conv2d_backward: argument 'version' must be one of"):
            ops.conv2d_backward(_zeros((1, 2, 6, 6), device), x, w, version=bad)


@requires_cuda
@pytest.mark.cuda
def test_conv2d_rejects_mixed_devices():
    x, w = _zeros((1, 3, 8, 8), "cpu"), _zeros((2, 3, 3, 3), "cuda")
    with pytest.raises(ValueError, match=r"conv2d: all tensors must be on one device; 'x' is on cpu but 'w' is on cuda:0"):
        ops.conv2d(x, w)
    with pytest.raises(ValueError, match=r"conv2d_backward: all tensors must be on one device; 'dy' is on cuda:0 but 'x' is on cpu"):
        ops.conv2d_backward(_zeros((1, 2, 6, 6), "cuda"), x, w)


# ----------------------------------------------------------------------------- known answers
# Small convolutions worked out by hand (cross-correlation: y[i, j] = sum_pq x[i*s + p - pad,
# j*s + q - pad] * w[p, q], zero outside x), independent of the reference.

KNOWN = {
    # x = [[1, 2], [3, 4]], w = [[1, 2, 3], [4, 5, 6], [7, 8, 9]], padding 1: each output sees the
    # four pixels through a different corner of w, e.g. y[0, 0] = 1*5 + 2*6 + 3*8 + 4*9 = 77;
    # dy = ones: dx[a, b] sums the w taps that land on pixel (a, b), dw[p, q] the pixels under tap (p, q).
    "padded": dict(x=[[1, 2], [3, 4]], w=[[1, 2, 3], [4, 5, 6], [7, 8, 9]], stride=1, padding=1,
                   y=[[77, 67], [47, 37]], dx=[[12, 16], [24, 28]], dw=[[1, 3, 2], [4, 10, 6], [3, 7, 4]]),
    # x = 0..15 (4x4), w = [[1, 2], [3, 4]], stride 2: y[0, 1] = 2*1 + 3*2 + 6*3 + 7*4 = 54; the windows
    # tile x, so dx (dy = ones) is w repeated and dw the sums of the pixels under each tap.
    "strided": dict(x=np.arange(16).reshape(4, 4), w=[[1, 2], [3, 4]], stride=2, padding=0,
                    y=[[34, 54], [114, 134]], dx=np.tile([[1, 2], [3, 4]], (2, 2)),
                    dw=[[0 + 2 + 8 + 10, 1 + 3 + 9 + 11], [4 + 6 + 12 + 14, 5 + 7 + 13 + 15]]),
    # x = 0..24 (5x5), 2x2 ones, stride 3: windows at 0 and 3, the last row and column of x unused.
    "strided_uneven": dict(x=np.arange(25).reshape(5, 5), w=[[1, 1], [1, 1]], stride=3, padding=0,
                           y=[[12, 24], [72, 84]],
                           dx=[[1, 1, 0, 1, 1], [1, 1, 0, 1, 1], [0, 0, 0, 0, 0], [1, 1, 0, 1, 1], [1, 1, 0, 1, 1]],
                           dw=[[0 + 3 + 15 + 18, 1 + 4 + 16 + 19], [5 + 8 + 20 + 23, 6 + 9 + 21 + 24]]),
}


@pytest.mark.parametrize("name", list(KNOWN))
def test_conv2d_known_answers(device, name):
    case = KNOWN[name]
    x = np.asarray(case["x"], np.float32)[None, None]
    w = np.asarray(case["w"], np.float32)[None, None]
    kw = dict(stride=case["stride"], padding=case["padding"])
    y_shape = np.asarray(case["y"]).shape
    xt, wt = pyconvnet.tensor(x, device), pyconvnet.tensor(w, device)
    dy = pyconvnet.tensor(np.ones((1, 1) + y_shape, np.float32), device)
    for version in ops.versions("conv2d", device):
        what = f"{name}, version {version}"
        assert np.array_equal(ops.conv2d(xt, wt, **kw, version=version).numpy()[0, 0], case["y"]), what
        dx, dw, db = ops.conv2d_backward(dy, xt, wt, **kw, version=version)
        assert np.array_equal(dx.numpy()[0, 0], case["dx"]), what
        assert np.array_equal(dw.numpy()[0, 0], case["dw"]), what
        assert np.array_equal(db.numpy(), [np.prod(y_shape)]), what


def test_conv2d_known_answer_grouped(device):
    """Two groups at 1x1: filter 0 sees channels 0-1 only, filter 1 channels 2-3 only."""
    x = np.array([1, 2, 3, 4], np.float32).reshape(1, 4, 1, 1)
    w = np.array([[10, 100], [1000, 10000]], np.float32).reshape(2, 2, 1, 1)
    b = np.array([0.5, -1], np.float32)
    dy = np.array([1, 2], np.float32).reshape(1, 2, 1, 1)
    xt, wt, bt, dyt = (pyconvnet.tensor(a, device) for a in (x, w, b, dy))
    for version in ops.versions("conv2d", device):
        y = ops.conv2d(xt, wt, bt, groups=2, version=version).numpy().ravel()
        assert y.tolist() == [1 * 10 + 2 * 100 + 0.5, 3 * 1000 + 4 * 10000 - 1], version
        dx, dw, db = ops.conv2d_backward(dyt, xt, wt, groups=2, version=version)
        assert dx.numpy().ravel().tolist() == [10, 100, 2 * 1000, 2 * 10000], version
        assert dw.numpy().ravel().tolist() == [1, 2, 2 * 3, 2 * 4], version
        assert db.numpy().tolist() == [1, 2], version


@pytest.mark.parametrize("name", ["conv2", "off_tile_sizes", "large_tiles_forward", "depthwise", "empty_batch"])
def test_conv2d_relu_is_the_fused_pair(device, rng, name):
    # The bias and ReLU in the forward's epilogue give the bits of conv2d followed by relu, with
    # and without a bias, every version.
    x, w, b, _, kw = _make(rng, _case(name, device))
    xt, wt, bt = (pyconvnet.tensor(a, device) for a in (x, w, b))
    for version in ops.versions("conv2d", device):
        for bias in (bt, None):
            fused = ops.conv2d(xt, wt, bias, **kw, version=version, relu=True).numpy()
            pair = ops.relu(ops.conv2d(xt, wt, bias, **kw, version=version)).numpy()
            assert np.array_equal(fused, pair), f"{name}, version {version}, bias {bias is not None}"


@pytest.mark.parametrize("case", [(64, 1, 32, 32, 10, 1, 1, 1, 0, 1), (9, 2, 5, 5, 3, 3, 3, 1, 1, 1)])
def test_conv2d_bias_gradient(device, rng, case):
    # The bias gradient's two-level sum: on CUDA the first case sums 13 chunks of 5 images (the
    # last of 4) per pixel of a 10 x 32 x 32 slab, the second one image per chunk; reruns are
    # bit-identical.
    x, w, _, dy, kw = _make(rng, case)
    xt, dyt = pyconvnet.tensor(x, device), pyconvnet.tensor(dy, device)
    s, p, g = _pair(kw["stride"]), _pair(kw["padding"]), kw["groups"]
    for version in ops.versions("conv2d", device):
        _, db = _C.conv2d_backward_filter(dyt, xt, w.shape, s, p, g, version)
        assert_sum_close(db, dy.astype(np.float64).sum(axis=(0, 2, 3)), np.abs(dy).sum(axis=(0, 2, 3)),
                         dy.shape[0] * dy.shape[2] * dy.shape[3], what=f"db, version {version}")
        assert np.array_equal(_C.conv2d_backward_filter(dyt, xt, w.shape, s, p, g, version)[1].numpy(), db.numpy())
@requires_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("name", ["off_tile_sizes", "large_tiles_data_strided"])
def test_conv2d_tensor_core_versions_on_every_cuda_device(rng, name):
    """The TF32 and 3xTF32 versions on each CUDA device (two in the simulator build): within
    their tolerances of the reference, and bit-identical across devices."""
    case = _case(name, "cuda")
    x, w, b, dy, kw = _make(rng, case)
    expected = (ref.conv2d(x, w, b, **kw),) + ref.conv2d_backward(dy, x, w, **kw)
    bounds, squares = _sums(x, w, b, dy, kw), _squares("cuda", x, w, dy, kw)
    tc = ops.versions("conv2d", "cuda", precision="tf32") + ops.versions("conv2d", "cuda", precision="3xtf32")

    def run(dev):
        xt, wt, bt, dyt = (pyconvnet.tensor(a, dev) for a in (x, w, b, dy))
        return (ops.conv2d(xt, wt, bt, **kw, version=version),) + ops.conv2d_backward(dyt, xt, wt, **kw, version=version)

    for version in tc:
        for dev, got in same_on_every_cuda_device(run, f"{name}, version {version}").items():
            _check_all(got, expected, bounds, squares, case, ops.precision("conv2d", dev, version),
                       f"{name} on {dev}, version {version}")
