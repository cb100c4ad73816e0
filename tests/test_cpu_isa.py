"""The CPU kernels' instruction-set paths: reported by cpu_info, chosen by set_cpu_isa or
PYCONVNET_CPU_ISA, unusable ones refused with the supported list. (Every op test also runs on
every path this CPU supports: the `device` fixture's "cpu-<isa>" cases.)"""
import os
import subprocess
import sys

import numpy as np
import pytest

import pyconvnet
from pyconvnet import ops

ALL_PATHS = ("avx512", "avx2", "baseline")


def test_cpu_info_names_the_active_path():
    info = pyconvnet.cpu_info()
    assert info["isa"] in info["supported"] and info["supported"][-1] == "baseline"
    assert list(info["supported"]) == [p for p in ALL_PATHS if p in info["supported"]]  # best first
    assert info["threads"] >= 1


def test_set_cpu_isa_switches_and_refuses_unknown_paths():
    before = pyconvnet.cpu_info()["isa"]
    assert pyconvnet.set_cpu_isa("baseline") == before
    try:
        assert pyconvnet.cpu_info()["isa"] == "baseline"
        with pytest.raises(ValueError, match=r"CPU instruction set 'sse9': this CPU runs .*baseline"):
            pyconvnet.set_cpu_isa("sse9")
        assert pyconvnet.cpu_info()["isa"] == "baseline"
    finally:
        pyconvnet.set_cpu_isa(before)


def _run(code, isa):
    env = dict(os.environ, PYCONVNET_CPU_ISA=isa)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_environment_variable_forces_a_path():
    r = _run("import pyconvnet; print(pyconvnet.cpu_info()['isa'])", "baseline")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "baseline"


def test_environment_variable_with_an_unusable_path_fails_the_import_with_the_reason():
    unusable = next((p for p in ALL_PATHS if p not in pyconvnet.cpu_info()["supported"]), "sse9")
    r = _run("import pyconvnet", unusable)
    assert r.returncode != 0
    assert f"CPU instruction set '{unusable}': this CPU runs" in r.stderr and "PYCONVNET_CPU_ISA" in r.stderr


def test_pointwise_paths_agree_bit_for_bit(rng):
    # Only the SGEMM micro-kernels differ between paths (fused multiply-adds); the pointwise
    # kernels (softmax's exp and LRN's power included) round the same operations in the same order on every path,
    # and dropout's generator is integer arithmetic.
    x = rng.standard_normal((3, 5, 7, 11)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    logits = (rng.standard_normal((4, 1003)) * 8).astype(np.float32)
    drop_x = rng.standard_normal((3, 1001)).astype(np.float32)
    images = rng.integers(0, 256, (2, 40, 43, 3), dtype=np.uint8)
    mean = rng.uniform(0, 255, (40, 43, 3)).astype(np.float32)
    offsets, flips = np.array([[3, 5], [0, 9]], np.int32), np.array([0, 1], np.int32)
    lighting = rng.normal(0, 10, (2, 3)).astype(np.float32)

    def rng_free_dy(shape):  # the same gradient on every path
        return np.arange(np.prod(shape), dtype=np.float32).reshape(shape) / 7

    before = pyconvnet.cpu_info()["isa"]
    results = {}
    try:
        for isa in pyconvnet.cpu_info()["supported"]:
            pyconvnet.set_cpu_isa(isa)
            y = ops.relu(x)
            w, v = pyconvnet.tensor(x.copy()), pyconvnet.tensor(dy.copy())
            ops.sgd_update(w, dy, v, lr=0.01, momentum=0.9, weight_decay=5e-4)
            pool, taps = ops.max_pool2d(x, 3, 2, taps=True)
            pool_dx = ops.max_pool2d_backward(rng_free_dy(pool.shape), taps, x.shape, 3, 2)
            lrn_x = (x * 40).astype(np.float32)  # scales s from k to ~1e3: many exponents of 2
            lrn_y = ops.lrn(lrn_x, size=5, alpha=0.5, beta=0.75, k=2.0)
            results[isa] = [y.numpy(), ops.relu_backward(dy, y).numpy(), w.numpy(), v.numpy(),
                            pool.numpy(), taps.numpy(), pool_dx.numpy(), ops.softmax(logits).numpy(),
                            lrn_y.numpy(), ops.lrn_backward(dy, lrn_x, lrn_y, size=5, alpha=0.5,
                                                            beta=0.75, k=2.0).numpy()]
            # Dropout drawing words 5.. of each row (the vectorised generators' groups unaligned)
            results[isa] += [t.numpy() for t in ops.dropout(drop_x, 0.5, 77, part=(5, 1006))]
            results[isa].append(ops.augment(images, mean, offsets, flips, lighting, crop=34).numpy())
    finally:
        pyconvnet.set_cpu_isa(before)
    first = next(iter(results.values()))
    for isa, got in results.items():
        for a, b in zip(first, got):
            assert np.array_equal(a, b), isa


def test_measured_peak_is_positive_per_thread():
    peak = pyconvnet.measure_cpu_peak(0.01)
    assert peak["isa"] == pyconvnet.cpu_info()["isa"]
    assert len(peak["per_thread"]) == pyconvnet.cpu_info()["threads"]
    assert all(r > 0 for r in peak["per_thread"]) and peak["flops"] == pytest.approx(sum(peak["per_thread"]))
    assert peak["flops_per_step"] in (12 * 2 * 4, 12 * 2 * 8, 12 * 2 * 16)  # SSE, AVX2, AVX-512 lanes
    with pytest.raises(ValueError, match=r"measure_cpu_peak: seconds must be in \(0, 10\], got 0"):
        pyconvnet.measure_cpu_peak(0)


def test_serial_thread_runs_its_kernels_alone_with_the_same_bits(rng):
    """_C.set_serial_thread is the calling thread's alone (the data loader's thread sets it): its
    kernels then run without an OpenMP team, and give the same bits as on the main thread."""
    import threading
    from pyconvnet import _C

    x = rng.standard_normal((4, 16, 13, 13)).astype(np.float32)
    w = (rng.standard_normal((24, 16, 3, 3)) * 0.1).astype(np.float32)
    expected = ops.conv2d(x, w, padding=1).numpy()
    got = {}

    def helper():
        got["before"] = _C.set_serial_thread(True)
        got["y"] = ops.conv2d(x, w, padding=1).numpy()
        got["again"] = _C.set_serial_thread(False)

    t = threading.Thread(target=helper)
    t.start()
    t.join()
    assert got["before"] is False and got["again"] is True
    assert np.array_equal(got["y"], expected)
    assert _C.set_serial_thread(False) is False  # the main thread's own setting never changed
