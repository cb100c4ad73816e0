"""The kernel-version registry: every op lists its versions per device under one rule."""
import numpy as np
import pytest

import pyconvnet
from pyconvnet import ops
from helpers import version_rule


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1"])
@pytest.mark.parametrize("op", ops.OPS)
def test_every_op_lists_its_versions(op, device):
    versions = ops.versions(op, device)
    assert versions == list(range(1, len(versions) + 1))
    assert ops.default_version(op, device) in versions


def test_unknown_op_or_device_is_a_value_error():
    with pytest.raises(ValueError, match=r"versions: op must be one of conv2d, linear, relu, lrn, max_pool2d, dropout, "
                                         r"softmax, cross_entropy, sgd_update, augment, add; got \"pool\""):
        ops.versions("pool")
    with pytest.raises(ValueError, match=r"device must be \"cpu\", \"cuda\" or \"cuda:N\"; got \"gpu\""):
        ops.versions("lrn", "gpu")
    with pytest.raises(TypeError, match=r"versions: argument 'device' must be a string"):
        ops.versions("lrn", 0)


def test_the_cpu_rejects_a_cuda_only_version():
    # One rule on every device: a version is valid only where it is listed.
    extra = [v for v in ops.versions("lrn", "cuda") if v not in ops.versions("lrn", "cpu")]
    assert extra, "lrn has a CUDA-only version"
    x = pyconvnet.zeros((1, 4, 3, 3))
    with pytest.raises(ValueError, match="lrn: argument 'version' " + version_rule("lrn", "cpu") + f"; got {extra[0]}"):
        ops.lrn(x, version=extra[0])


def test_the_registry_holds_every_op():
    assert ops.OPS == ("conv2d", "linear", "relu", "lrn", "max_pool2d", "dropout", "softmax", "cross_entropy",
                       "sgd_update", "augment", "add")


@pytest.mark.parametrize("op, call", [
    ("relu", lambda v: ops.relu(pyconvnet.zeros(4), version=v)),
    ("relu", lambda v: ops.relu_backward(pyconvnet.zeros(4), pyconvnet.zeros(4), version=v)),
    ("sgd_update", lambda v: ops.sgd_update(pyconvnet.zeros(4), pyconvnet.zeros(4), pyconvnet.zeros(4), 0.1, version=v)),
])
def test_single_kernel_ops_take_versions_too(op, call):
    assert ops.versions(op) == [1]
    for v in [0] + ops.versions(op):
        call(v)
    with pytest.raises(ValueError, match=r"argument 'version' must be one of 0 \(default, = 1\), 1 on cpu; got 2"):
        call(2)


def test_augment_checks_its_int_arguments():
    images, mean = np.zeros((1, 4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.float32)
    offsets, flips = np.zeros((1, 2), np.int32), np.zeros(1, np.int32)
    for name, value in (("crop", 2.0), ("repeats", "1"), ("version", True)):
        with pytest.raises(TypeError, match=rf"augment: argument '{name}' must be an int"):
            ops.augment(images, mean, offsets, flips, **{"crop": 2, name: value})
