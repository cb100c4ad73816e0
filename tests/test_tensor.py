"""Tensors: creation, copies between NumPy and devices, memory, errors."""
import gc

import numpy as np
import pytest

import pyconvnet
import pyconvnet.ops
from conftest import requires_cuda


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int32])
def test_roundtrip_preserves_values_shape_dtype(device, rng, dtype):
    a = (rng.standard_normal((2, 3, 5, 7)) * 100).astype(dtype)
    t = pyconvnet.tensor(a, device=device)
    assert t.shape == a.shape and t.dtype == np.dtype(dtype)
    assert t.device == ("cpu" if device == "cpu" else "cuda:0")
    back = t.numpy()
    assert back.dtype == a.dtype and np.array_equal(back, a)
    assert np.array_equal(np.asarray(t), a)


def test_to_copies_between_devices(device, rng):
    a = rng.standard_normal((4, 5)).astype(np.float32)
    t = pyconvnet.tensor(a).to(device)
    assert np.array_equal(t.to("cpu").numpy(), a)
    assert t.to(t.device) is not None


def test_zeros_and_empty(device):
    z = pyconvnet.zeros((3, 0, 2), device=device)
    assert z.shape == (3, 0, 2) and z.numpy().shape == (3, 0, 2)
    z = pyconvnet.zeros((2, 3), dtype=np.int32, device=device)
    assert np.array_equal(z.numpy(), np.zeros((2, 3), np.int32))
    assert pyconvnet.empty([4], device=device).shape == (4,)


def test_large_cpu_blocks_are_reused_and_hold_what_is_written(rng):
    # CPU blocks of 1 MiB and more go to a cache when their tensor dies, and the next tensor of
    # the same (rounded) size gets one: zeros() must still be zeros, ops must overwrite it.
    shape = (300, 1000)  # 1.2 MB
    a = pyconvnet.tensor(np.full(shape, 7, np.float32))
    block = a.data_ptr
    del a
    gc.collect()
    z = pyconvnet.zeros(shape)
    assert z.data_ptr == block, "a freed large block must be reused"
    assert np.array_equal(z.numpy(), np.zeros(shape, np.float32))
    del z
    x = rng.standard_normal(shape).astype(np.float32)
    for _ in range(3):  # each result lands in the block the one before it left
        y = pyconvnet.ops.relu(x)
        assert np.array_equal(y.numpy(), np.maximum(x, 0))
        del y
    big = [pyconvnet.empty(shape) for _ in range(3)]  # several live blocks of one size
    assert len({t.data_ptr for t in big}) == 3


def test_the_cpu_cache_counts_its_blocks_and_empties():
    shape = (300, 1000)  # 1.2 MB, rounded up to 64 KiB steps: 1,245,184 bytes
    gc.collect()  # earlier tests' tensors freed now, not during this test
    pyconvnet.empty_cpu_cache()
    assert pyconvnet.cpu_memory_stats() == {"cached": 0}
    a = pyconvnet.zeros(shape)
    del a
    gc.collect()
    assert pyconvnet.cpu_memory_stats()["cached"] == 1_245_184
    b = pyconvnet.zeros(shape)  # takes the cached block
    assert pyconvnet.cpu_memory_stats()["cached"] == 0
    del b
    gc.collect()
    pyconvnet.empty_cpu_cache()
    assert pyconvnet.cpu_memory_stats() == {"cached": 0}
    c = pyconvnet.zeros(shape)  # a fresh block still works
    assert np.array_equal(c.numpy(), np.zeros(shape, np.float32))


def test_tensor_copies_its_input():
    a = np.ones(3, np.float32)
    t = pyconvnet.tensor(a)
    a[:] = 5
    assert np.array_equal(t.numpy(), np.ones(3, np.float32))


def test_non_contiguous_input_is_copied_densely(rng):
    a = rng.standard_normal((4, 6)).astype(np.float32)
    assert np.array_equal(pyconvnet.tensor(a.T).numpy(), a.T)


def test_bad_dtype_is_a_type_error():
    with pytest.raises(TypeError, match=r"pyconvnet.tensor: array dtype must be float32, uint8 or int32; got float64"):
        pyconvnet.tensor(np.zeros(3))
    with pytest.raises(TypeError, match=r"pyconvnet.zeros: dtype must be .*; got float16"):
        pyconvnet.zeros(3, dtype=np.float16)
    with pytest.raises(TypeError, match="must be a numpy.ndarray or a Tensor; got list"):
        pyconvnet.tensor([1.0, 2.0])


def test_bad_shape_and_device_are_value_errors():
    with pytest.raises(ValueError, match=r"empty: shape \(2, -1\) has a negative size"):
        pyconvnet.empty((2, -1))
    with pytest.raises(ValueError, match=r'device must be "cpu", "cuda" or "cuda:N"; got "gpu"'):
        pyconvnet.zeros(3, device="gpu")
    with pytest.raises(TypeError, match="shape must hold ints"):
        pyconvnet.zeros((2, 1.5))


def test_ops_reject_non_contiguous_and_float64_arrays():
    with pytest.raises(ValueError, match=r"relu: argument 'x' must be C-contiguous; got an array of shape \(3, 2\)"):
        pyconvnet.ops.relu(np.zeros((2, 3), np.float32).T)
    with pytest.raises(TypeError, match=r"relu: argument 'x' must have dtype float32, uint8 or int32; got float64"):
        pyconvnet.ops.relu(np.zeros(3))
    with pytest.raises(TypeError, match=r"relu: argument 'x' must have dtype float32; got int32"):
        pyconvnet.ops.relu(np.zeros(3, np.int32))


def test_reshape_shares_memory_and_checks_size():
    t = pyconvnet.tensor(np.arange(6, dtype=np.float32))
    assert t.reshape(2, 3).shape == (2, 3) and t.reshape((3, 2)).numpy()[2, 1] == 5
    with pytest.raises(ValueError, match=r"reshape: cannot view .* as shape \(4,\)"):
        t.reshape(4)


def test_cuda_queries_never_raise():
    assert isinstance(pyconvnet.cuda.is_built(), bool)
    n = pyconvnet.cuda.device_count()
    assert pyconvnet.cuda.is_available() == (n > 0)
    if n == 0:
        assert pyconvnet.cuda.unavailable_reason() != ""
    else:
        assert pyconvnet.cuda.unavailable_reason() == ""


@pytest.mark.skipif(pyconvnet.cuda.is_available(), reason="checks the no-GPU path")
def test_cuda_tensor_without_gpu_says_why():
    with pytest.raises(RuntimeError, match="cuda:0 requested, but (no CUDA|this pyconvnet was built without CUDA)") as e:
        pyconvnet.tensor(np.zeros(3, np.float32), device="cuda")
    assert not isinstance(e.value, (ValueError, TypeError))
    with pytest.raises(RuntimeError, match="cuda.device_name: device cuda:0 requested"):
        pyconvnet.cuda.device_name(0)


@requires_cuda
@pytest.mark.cuda
def test_missing_cuda_device_index_is_an_error():
    n = pyconvnet.cuda.device_count()
    with pytest.raises(RuntimeError, match=f"cuda:{n} does not exist"):
        pyconvnet.zeros(3, device=f"cuda:{n}")


@requires_cuda
@pytest.mark.cuda
def test_caching_allocator_reuses_and_releases_memory():
    pyconvnet.cuda.synchronize()
    before = pyconvnet.cuda.memory_stats()
    for _ in range(20):
        t = pyconvnet.zeros((1024, 1024), device="cuda")
        del t
    gc.collect()
    after = pyconvnet.cuda.memory_stats()
    assert after["allocated"] == before["allocated"], "memory not returned when the last reference went"
    assert after["driver_allocs"] - before["driver_allocs"] <= 1, "steady state must not call cudaMalloc"
    pyconvnet.cuda.empty_cache()
    assert pyconvnet.cuda.memory_stats()["reserved"] == pyconvnet.cuda.memory_stats()["allocated"]


@requires_cuda
@pytest.mark.cuda
def test_cuda_name():
    assert pyconvnet.cuda.device_name(0)


@pytest.mark.cuda
@pytest.mark.skipif(pyconvnet.cuda.device_count() < 2, reason="needs two CUDA devices (the simulator build has two)")
def test_second_device_runs_ops_and_copies_between_devices(rng):
    x = rng.standard_normal((3, 70)).astype(np.float32)
    on1 = pyconvnet.tensor(x, "cuda:1")
    assert on1.device == "cuda:1"
    y = pyconvnet.ops.relu(on1)
    assert y.device == "cuda:1"
    assert np.array_equal(y.numpy(), np.maximum(x, 0))
    on0 = y.to("cuda:0")
    assert on0.device == "cuda:0" and np.array_equal(on0.numpy(), np.maximum(x, 0))
    back = pyconvnet.ops.relu(on0).to("cuda:1").to("cpu")
    assert np.array_equal(back.numpy(), np.maximum(x, 0))
    pyconvnet.cuda.synchronize(1)
    assert pyconvnet.cuda.memory_stats(1)["allocated"] > 0
