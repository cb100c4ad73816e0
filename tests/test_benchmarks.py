"""The benchmarks are not run here (they time things; see benchmarks/README.md): this checks that
they import, that their cost model reproduces the paper's counts, and that they take the kernel
versions from the engine's registry."""
import os
import sys

import pytest

import pyconvnet

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import bench_columns  # noqa: E402
import bench_e2e  # noqa: E402
import bench_kernels  # noqa: E402
import roofline  # noqa: E402
import alexnet_shapes as shapes  # noqa: E402


def test_scripts_have_entry_points():
    assert callable(bench_kernels.main) and callable(bench_e2e.main) and callable(roofline.main)
    assert callable(bench_columns.main)


def test_forward_cost_matches_the_paper():
    # docs/alexnet.md: multiply-adds per image, forward (conv1 105.4M ... fc8 4.1M; 724.4M in all).
    paper = dict(conv1=105.4, conv2=223.9, conv3=149.5, conv4=112.1, conv5=74.8, fc6=37.7, fc7=16.8, fc8=4.1)
    fwd = {c.layer: c.flops / 2 / 1e6 for c in shapes.alexnet_cases(1) if c.pass_ == "fwd" and c.op in ("conv2d", "linear")}
    assert fwd.keys() == paper.keys()
    for layer, macs in paper.items():
        assert fwd[layer] == pytest.approx(macs, abs=0.05), layer
    assert sum(fwd.values()) == pytest.approx(724.4, abs=0.1)


def test_cases_cover_every_op_and_pass():
    cases = shapes.alexnet_cases(2)
    assert len({c.key for c in cases}) == len(cases)
    ops = {c.op for c in cases}
    assert ops == {"conv2d", "linear", "relu", "relu_backward", "lrn", "lrn_backward", "max_pool2d",
                   "max_pool2d_backward", "dropout", "dropout_backward", "softmax", "cross_entropy", "sgd_update"}
    assert all(c.op in bench_kernels.BENCHES for c in cases)
    assert [c.key for c in cases if not c.in_training_step] == ["conv1.bwd_data", "softmax.fwd"]
    assert "training step" in roofline.table(128, roofline.GPUS)[-1]


@pytest.mark.skipif(pyconvnet.cuda.is_available() and not pyconvnet.cuda.is_simulated(),
                    reason="on a GPU machine the benchmark would run")
def test_bench_columns_refuses_what_it_cannot_time():
    """Without a GPU (CPU-only build) or on the simulator's devices it stops with a message."""
    with pytest.raises(SystemExit, match="bench_columns: (CUDA requested but unavailable|this pyconvnet is the CUDA simulator build)"):
        bench_columns.main([])


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_versions_come_from_the_registry(device):
    for case in shapes.alexnet_cases(2) + [shapes.augment_case(2)]:
        versions, default = bench_kernels.registered_versions(case.op, device)
        op = case.op.removesuffix("_backward")
        assert versions == pyconvnet.ops.versions(op, device) and default == pyconvnet.ops.default_version(op, device)
        assert default in versions, case.key
