"""linear and linear_backward: every kernel version on every device against the float64
reference, over AlexNet's fc layers at batch 2 and awkward shapes; determinism; bad input."""
import numpy as np
import pytest

import pyconvnet
from pyconvnet import _C, ops, reference as ref
from conftest import requires_cuda
from float32_sums import assert_products_close, assert_sum_close
from helpers import assert_same_bits_on_1_and_2_threads, same_on_every_cuda_device, simulated

# (N, in, out)
CASES = {
    "fc6": (2, 9216, 4096),
    "fc7": (2, 4096, 4096),
    "fc8": (2, 4096, 1000),
    "one_by_one": (1, 1, 1),
    "odd": (3, 7, 5),
    "off_tile_sizes": (5, 65, 67),
    "batch_130": (130, 33, 70),
    "empty_batch": (0, 8, 3),
    "no_inputs": (3, 0, 4),
    "no_outputs": (3, 5, 0),
    # CUDA version 3 takes 128x128 tiles for M > 96 rows: the forward and input gradient at
    # batch 130 (a partial row tile), the weight gradient with 200 outputs.
    "large_tiles_out": (130, 12, 200),
    "large_tiles_in": (130, 200, 12),
    # CPU SGEMM: the weight gradient's 450 rows are three row tiles over one KC slice (K = 20),
    # which share each packed block of x; partial B panels in every pass (403, 450 columns).
    "shared_b_panels": (20, 403, 450),
    # CPU SGEMM, the streamed path (one row tile, op(B) of at least 2^22 floats, as fc6's and
    # fc7's weights): fc6 at the training batch; K and N prime or off the 256-deep slices and
    # 16-wide panels in the forward (B transposed) and the input gradient (B as stored); one row;
    # a full 192-row tile.
    "fc6_batch_128": (128, 9216, 4096),
    "streamed_awkward": (7, 4099, 1031),
    "streamed_one_row": (1, 2053, 2053),
    "streamed_full_row_tile": (192, 4096, 1031),
    # ... where the path reads w in place as the A operand (at least 16 rows: fc6 at batch 128,
    # the full row tile): 17 rows (a partial 32-wide panel of x), w's 4099 rows (a partial group
    # of 6), K = 1031 (a 7-deep last slice).
    "rows_of_w_awkward": (17, 1031, 4099),
}
# fc6-fc8 and the CPU's streamed cases with fewer features for the CUDA simulator (CPU and GPU
# runs keep the real sizes).
SIMULATED = {"fc6": (2, 2304, 1024), "fc7": (2, 1024, 1024), "fc8": (2, 1024, 250),
             "fc6_batch_128": (128, 288, 128), "streamed_awkward": (7, 263, 131),
             "streamed_one_row": (1, 131, 131), "streamed_full_row_tile": (192, 128, 131),
             "rows_of_w_awkward": (17, 131, 263)}


def _case(name, device):
    return SIMULATED.get(name, CASES[name]) if simulated(device) else CASES[name]


def _make(rng, case):
    n, fin, fout = case
    x = rng.standard_normal((n, fin), dtype=np.float32)
    w = rng.standard_normal((fout, fin), dtype=np.float32)
    b = rng.standard_normal(fout, dtype=np.float32)
    dy = rng.standard_normal((n, fout), dtype=np.float32)
    return x, w, b, dy


def _abs_sums(x, w, b, dy, f=np.abs):
    """The sums of |terms| of y, dx, dw, db (float32_sums); with f = np.square the sums of the
    products' squares (the bias, added in FP32, left out), for a TF32 version's tolerance. They
    only set the tolerance's scale, so float32 NumPy is precise enough, and much faster than the
    reference for fc6."""
    ax, aw, ady = f(x), f(w), f(dy)
    y = ax @ aw.T
    return (y if b is None or f is np.square else y + f(b)), ady @ aw, ady.T @ ax, ady.sum(axis=0)


def _squares(device, x, w, dy):
    return _abs_sums(x, w, None, dy, np.square) if ops.versions("linear", device, precision="tf32") else None


def _check_all(got, expected, bounds, squares, case, precision, what):
    n, fin, fout = case
    for i, (name, a, e, bound, terms) in enumerate(zip(("y", "dx", "dw", "db"), got, expected, bounds, (fin, fout, n, n))):
        if a is not None:
            prec = "fp32" if name == "db" else precision  # db: an FP32 sum of dy in every version
            assert_products_close(a, e, bound, squares[i] if prec == "tf32" else None, terms, prec,
                                  what=f"{what}: {name}")


@pytest.mark.parametrize("name", list(CASES))
def test_linear_matches_reference(device, rng, name):
    case = _case(name, device)
    x, w, b, dy = _make(rng, case)
    expected = (ref.linear(x, w, b),) + ref.linear_backward(dy, x, w)
    bounds, squares = _abs_sums(x, w, b, dy), _squares(device, x, w, dy)
    xt, wt, bt, dyt = (pyconvnet.tensor(a, device) for a in (x, w, b, dy))
    for version in ops.versions("linear", device):
        y = ops.linear(xt, wt, bt, version=version)
        assert y.device.startswith(device)
        got = (y,) + ops.linear_backward(dyt, xt, wt, version=version)
        _check_all(got, expected, bounds, squares, case, ops.precision("linear", device, version),
                   f"{name} on {device}, version {version}")


def test_linear_default_version_is_one_of_the_versions(device, rng):
    x, w, b, dy = _make(rng, CASES["off_tile_sizes"])
    xt, wt, bt, dyt = (pyconvnet.tensor(a, device) for a in (x, w, b, dy))
    runs = {v: [t.numpy() for t in (ops.linear(xt, wt, bt, version=v),) + ops.linear_backward(dyt, xt, wt, version=v)]
            for v in [0] + ops.versions("linear", device)}
    assert any(all(np.array_equal(a, b) for a, b in zip(runs[0], runs[v])) for v in ops.versions("linear", device))


def test_linear_without_bias_or_input_grad(device, rng):
    case = CASES["off_tile_sizes"]
    x, w, _, dy = _make(rng, case)
    expected = (ref.linear(x, w),) + ref.linear_backward(dy, x, w)
    bounds, squares = _abs_sums(x, w, None, dy), _squares(device, x, w, dy)
    xt, wt, dyt = (pyconvnet.tensor(a, device) for a in (x, w, dy))
    for version in ops.versions("linear", device):
        got = (ops.linear(xt, wt, version=version),) + ops.linear_backward(dyt, xt, wt, input_grad=False, version=version)
        assert got[1] is None
        _check_all(got, expected, bounds, squares, case, ops.precision("linear", device, version),
                   f"no bias, no dx, version {version}")


def test_linear_pass_entry_points_match_backward(device, rng):
    x, w, _, dy = _make(rng, CASES["batch_130"])
    xt, wt, dyt = (pyconvnet.tensor(a, device) for a in (x, w, dy))
    for version in ops.versions("linear", device):
        dx, dw, db = ops.linear_backward(dyt, xt, wt, version=version)
        dw2, db2 = _C.linear_backward_weight(dyt, xt, version)
        for a, b in ((dx, _C.linear_backward_data(dyt, wt, version)), (dw, dw2), (db, db2)):
            assert np.array_equal(a.numpy(), b.numpy())


def test_linear_is_deterministic(device, rng):
    x, w, b, dy = _make(rng, CASES["batch_130"])
    xt, wt, bt, dyt = (pyconvnet.tensor(a, device) for a in (x, w, b, dy))
    for version in ops.versions("linear", device):
        runs = [[t.numpy() for t in (ops.linear(xt, wt, bt, version=version),)
                 + ops.linear_backward(dyt, xt, wt, version=version)] for _ in range(2)]
        for what, a, b in zip(("y", "dx", "dw", "db"), *runs):
            assert np.array_equal(a, b), f"version {version}: {what} differs between runs"


_THREADS_RUN = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import pyconvnet, test_linear as t
from pyconvnet import ops
out = {}
for name in sys.argv[3:]:
    x, w, b, dy = (pyconvnet.tensor(a, "cpu") for a in t._make(np.random.default_rng(7), t.CASES[name]))
    got = (ops.linear(x, w, b),) + ops.linear_backward(dy, x, w)
    for what, a in zip(("y", "dx", "dw", "db"), got):
        out[f"{name} {what}"] = a.numpy()
np.savez(sys.argv[2], **out)
"""


def test_cpu_linear_does_not_depend_on_the_thread_count(tmp_path):
    # Two threads split C's columns (the streamed path: fc6, streamed_*) or its tiles between
    # them; one thread does it all: the same bits.
    names = ["fc6", "streamed_awkward", "streamed_one_row", "rows_of_w_awkward", "shared_b_panels",
             "batch_130"]
    assert_same_bits_on_1_and_2_threads(_THREADS_RUN, names, tmp_path, 4 * len(names))


@pytest.mark.parametrize("name", ["fc6_batch_128", "rows_of_w_awkward", "streamed_full_row_tile"])
def test_cpu_linear_row_does_not_depend_on_its_batch(rng, name):
    # The CPU SGEMM takes a different path by the number of rows (w packed, or read in place from
    # 16 rows on with AVX2 / AVX-512; tiles beyond 192), but every path sums each element over
    # the same 256-deep slices in the same order: a row of y (and of dx) has the same bits in any
    # batch.
    x, w, _, dy = _make(rng, CASES[name])
    y = ops.linear(x, w).numpy()
    dx = ops.linear_backward(dy, x, w)[0].numpy()
    for rows in (slice(0, 1), slice(3, 11), slice(0, 16), slice(1, 40)):
        assert np.array_equal(ops.linear(x[rows], w).numpy(), y[rows]), rows
        assert np.array_equal(ops.linear_backward(dy[rows], x[rows], w)[0].numpy(), dx[rows]), rows


@requires_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("name", ["fc8", "off_tile_sizes", "batch_130"])
def test_linear_cpu_and_cuda_agree(rng, name):
    # Each is within the tolerance of the exact value, so within twice of it of each other.
    case = _case(name, "cuda")
    x, w, b, dy = _make(rng, case)
    bounds = tuple(2 * a for a in _abs_sums(x, w, b, dy))
    squares = _squares("cuda", x, w, dy)  # a TF32 version's operand rounding is CUDA's alone
    cpu = tuple(t.numpy() for t in (ops.linear(x, w, b),) + ops.linear_backward(dy, x, w))
    xt, wt, bt, dyt = (pyconvnet.tensor(a, "cuda") for a in (x, w, b, dy))
    for version in ops.versions("linear", "cuda"):
        got = (ops.linear(xt, wt, bt, version=version),) + ops.linear_backward(dyt, xt, wt, version=version)
        _check_all(got, cpu, bounds, squares, case, ops.precision("linear", "cuda", version),
                   f"{name}: cuda version {version} vs cpu")


# ------------------------------------------------------------------------------- bad input

def _zeros(shape, device, dtype=np.float32):
    return pyconvnet.tensor(np.zeros(shape, dtype), device)


def test_linear_rejects_bad_input(device):
    x, w = _zeros((2, 5), device), _zeros((3, 5), device)
    with pytest.raises(ValueError, match=r"linear: argument 'x' must have rank 2 \(N, in\); got shape \(2, 5, 1\)"):
        ops.linear(_zeros((2, 5, 1), device), w)
    with pytest.raises(ValueError, match=r"linear: argument 'w' must have rank 2 \(out, in\); got shape \(15,\)"):
        ops.linear(x, _zeros((15,), device))
    with pytest.raises(ValueError, match=r"linear: argument 'x' must have w's 4 input features \(w has shape \(3, 4\)\); got shape \(2, 5\)"):
        ops.linear(x, _zeros((3, 4), device))
    with pytest.raises(ValueError, match=r"linear: argument 'b' must have shape \(3,\); got \(5,\)"):
        ops.linear(x, w, _zeros((5,), device))
    with pytest.raises(TypeError, match=r"linear: argument 'w' must have dtype float32; got int32"):
        ops.linear(x, _zeros((3, 5), device, np.int32))
    with pytest.raises(ValueError, match=r"linear_backward: argument 'dy' must have shape \(2, 3\); got \(2, 4\)"):
        ops.linear_backward(_zeros((2, 4), device), x, w)
    with pytest.raises(ValueError, match=r"linear_backward: argument 'x' must have w's 4 input features"):
        ops.linear_backward(_zeros((2, 3), device), x, _zeros((3, 4), device), input_grad=False)
    with pytest.raises(TypeError, match=r"linear_backward: argument 'dy' must have dtype float32; got uint8"):
        ops.linear_backward(_zeros((2, 3), device, np.uint8), x, w)
    with pytest.raises(ValueError, match=r"linear_backward_data: argument 'dy' must have shape \(2, 3\); got \(2, 5\)"):
        _C.linear_backward_data(_zeros((2, 5), device), w, 0)
    with pytest.raises(ValueError, match=r"linear_backward_weight: argument 'dy' must have shape \(2, 3\); got \(4, 3\)"):
        _C.linear_backward_weight(_zeros((4, 3), device), x, 0)


def test_linear_rejects_unknown_versions(device):
    x, w = _zeros((2, 5), device), _zeros((3, 5), device)
    valid = ", ".join(str(v) for v in ops.versions("linear", device))
    with pytest.raises(ValueError, match=rf"linear: argument 'version' must be one of 0 \(default, = \d\), {valid} on {device}\S*; got 7"):
        ops.linear(x, w, version=7)
    with pytest.raises(ValueError, match=r"linear_backward: argument 'version' must be one of"):
        ops.linear_backward(_zeros((2, 3), device), x, w, version=-1)


@requires_cuda
@pytest.mark.cuda
def test_linear_rejects_mixed_devices():
    with pytest.raises(ValueError, match=r"linear: all tensors must be on one device; 'x' is on cpu but 'w' is on cuda:0"):
        ops.linear(_zeros((2, 5), "cpu"), _zeros((3, 5), "cuda"))
    with pytest.raises(ValueError, match=r"linear_backward: all tensors must be on one device; 'dy' is on cpu but 'x' is on cuda:0"):
        ops.linear_backward(_zeros((2, 3), "cpu"), _zeros((2, 5), "cuda"), _zeros((3, 5), "cuda"))


# ------------------------------------------------------------------------ fused bias + ReLU

@pytest.mark.parametrize("name", ["odd", "off_tile_sizes", "batch_130", "fc8", "empty_batch"])
def test_linear_relu_is_the_fused_pair(device, rng, name):
    # The bias and ReLU in the forward's epilogue (split-K included: fc8 on the simulator) give
    # the bits of linear followed by relu, with and without a bias, every version.
    x, w, b, _ = _make(rng, _case(name, device))
    xt, wt, bt = (pyconvnet.tensor(a, device) for a in (x, w, b))
    for version in ops.versions("linear", device):
        for bias in (bt, None):
            fused = ops.linear(xt, wt, bias, version=version, relu=True).numpy()
            pair = ops.relu(ops.linear(xt, wt, bias, version=version)).numpy()
            assert np.array_equal(fused, pair), f"{name}, version {version}, bias {bias is not None}"
            assert (fused >= 0).all()


# ------------------------------------------------------------------------ split-K, bias gradient

def _launched(before):
    after = _C._sim_kernel_launches()
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


@requires_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("case, fprop_splits, dgrad_splits", [
    ((2, 1024, 250), True, False),    # forward: 2 tiles, K = 1024 -> 4 chunks; data gradient: K = 250
    ((2, 300, 600), False, True),     # forward: K = 300 < 512; data gradient: 3 tiles, K = 600 -> 2 chunks
    ((130, 2304, 40), True, False),   # M = 130: 128x128 tiles (2 of them), K = 2304 -> 9 chunks
])
def test_linear_split_k(rng, case, fprop_splits, dgrad_splits):
    # Versions 3-5 split K for an output of fewer tiles than an H200 has SMs (132) when each chunk
    # keeps at least 256 terms: partial sums into a workspace (the FP32 or tensor-core kernel of
    # the version), added in a fixed order, so the results match the reference within the
    # version's precision and are bit-identical from run to run.
    if not pyconvnet.cuda.is_simulated():
        pytest.skip("counts kernel launches in the CUDA simulator")
    x, w, b, dy = _make(rng, case)
    xt, wt, bt, dyt = (pyconvnet.tensor(a, "cuda") for a in (x, w, b, dy))
    n, fin, fout = case
    expected = (ref.linear(x, w, b), ref.linear_backward(dy, x, w)[0], None, None)
    bounds, squares = _abs_sums(x, w, b, dy), _squares("cuda", x, w, dy)
    core = {"fp32": "gemm3", "tf32": "gemm_tf32", "3xtf32": "gemm_3xtf32"}
    for version in [v for v in ops.versions("linear", "cuda") if v >= 3]:
        precision = ops.precision("linear", "cuda", version)
        before = _C._sim_kernel_launches()
        y = ops.linear(xt, wt, bt, version=version)
        launched = _launched(before)
        assert ("splitk_fprop_reduce_kernel" in launched) == fprop_splits, (version, launched)
        assert launched.get(f"{core[precision]}_fprop_kernel") == 1, (version, launched)
        before = _C._sim_kernel_launches()
        dx = _C.linear_backward_data(dyt, wt, version)
        launched = _launched(before)
        assert ("splitk_dgrad_reduce_kernel" in launched) == dgrad_splits, (version, launched)
        assert launched.get(f"{core[precision]}_dgrad_kernel") == 1, (version, launched)
        _check_all((y, dx, None, None), expected, bounds, squares, case, precision, f"version {version}")
        for _ in range(2):
            assert np.array_equal(ops.linear(xt, wt, bt, version=version).numpy(), y.numpy())
            assert np.array_equal(_C.linear_backward_data(dyt, wt, version).numpy(), dx.numpy())


@pytest.mark.parametrize("case", [(130, 3, 4096), (5, 2, 300), (1, 1, 1), (0, 2, 3)])
def test_linear_bias_gradient(device, rng, case):
    # The bias gradient's two-level sum: on CUDA (130, 4096) gives 33 chunks of 4 rows (the last
    # of 2), (5, 300) one row per chunk; reruns are bit-identical.
    x, _, _, dy = _make(rng, case)
    dyt, xt = pyconvnet.tensor(dy, device), pyconvnet.tensor(x, device)
    for version in ops.versions("linear", device):
        _, db = _C.linear_backward_weight(dyt, xt, version)
        assert_sum_close(db, dy.astype(np.float64).sum(axis=0), np.abs(dy).sum(axis=0), case[0],
                         what=f"db, version {version}")
        assert np.array_equal(_C.linear_backward_weight(dyt, xt, version)[1].numpy(), db.numpy())
@requires_cuda
@pytest.mark.cuda
def test_linear_tensor_core_versions_on_every_cuda_device(rng):
    """The TF32 and 3xTF32 versions on each CUDA device (two in the simulator build): within
    their tolerances of the reference, and bit-identical across devices."""
    case = CASES["large_tiles_out"]
    x, w, b, dy = _make(rng, case)
    expected = (ref.linear(x, w, b),) + ref.linear_backward(dy, x, w)
    bounds, squares = _abs_sums(x, w, b, dy), _squares("cuda", x, w, dy)
    tc = ops.versions("linear", "cuda", precision="tf32") + ops.versions("linear", "cuda", precision="3xtf32")

    def run(dev):
        xt, wt, bt, dyt = (pyconvnet.tensor(a, dev) for a in (x, w, b, dy))
        return (ops.linear(xt, wt, bt, version=version),) + ops.linear_backward(dyt, xt, wt, version=version)

    for version in tc:
        for dev, got in same_on_every_cuda_device(run, f"version {version}").items():
            _check_all(got, expected, bounds, squares, case, ops.precision("linear", dev, version),
                       f"on {dev}, version {version}")
