"""Shared fixtures: `device` runs a test on the CPU and on CUDA (skipped, with the reason, where
CUDA cannot be used); `rng` is a fresh, differently seeded generator for every test."""
import os
import zlib

import numpy as np
import pytest

import pyconvnet

CUDA_SKIP_REASON = "" if pyconvnet.cuda.is_available() else f"CUDA unavailable: {pyconvnet.cuda.unavailable_reason()}"
requires_cuda = pytest.mark.skipif(not pyconvnet.cuda.is_available(), reason=CUDA_SKIP_REASON or "n/a")

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, requires_cuda])]


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture
def rng(request):
    # Fresh inputs every run (PYCONVNET_TEST_SEED pins them to reproduce a failure); the seed is
    # printed on failure through the test's name + seed.
    base = int(os.environ.get("PYCONVNET_TEST_SEED", np.random.SeedSequence().entropy % 2**32))
    seed = (base + zlib.crc32(request.node.nodeid.encode())) % 2**32
    request.node.user_properties.append(("seed", seed))
    return np.random.default_rng(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        seeds = [v for k, v in item.user_properties if k == "seed"]
        if seeds:
            report.sections.append(("rng seed", f"rng seed {seeds[0]} (reproduce with PYCONVNET_TEST_SEED and the same test id)"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run directory (RUN) of a scaled-down AlexNet (12 conv1 kernels, 64x64 input) trained
    for 2 epochs on 60 images of the built-in dataset, the learning rate divided after epoch 1, a
    log record every step; its JPEG tree is RUN/../src, the dataset prepared at 72x72 RUN/../data."""
    import io

    from pyconvnet import prepare, synthetic, train

    root = tmp_path_factory.mktemp("tiny_run")
    synthetic.generate(root / "src", seed=0, train_per_class=6, val_per_class=2, workers=1)
    prepare.prepare(root / "src", root / "data", size=72, workers=1, progress=False)
    train.run(["--data", str(root / "data"), "--device", "cpu", "--epochs", "2", "--batch-size", "16",
               "--width", "0.125", "--init", "he", "--image-size", "72", "--crop-size", "64",
               "--lr-drop-epochs", "1", "--log-every", "1", "--out", str(root / "run")], out=io.StringIO())
    return root / "run"
