"""The CUDA simulator build (PYCONVNET_CUDA=sim): its checks catch planted bugs, naming the
kernel, block and thread; warp operations match their definitions; launches that break an H200
limit fail through PCN_LAUNCH. A kernel error is sticky for the process, as on a GPU, so each
planted bug runs in a fresh interpreter."""
import os
import subprocess
import sys

import numpy as np
import pytest

import pyconvnet
from pyconvnet import _C

pytestmark = pytest.mark.skipif(not pyconvnet.cuda.is_simulated(),
                                reason="needs the CUDA simulator build (PYCONVNET_CUDA=sim pip install .)")


def _run(name, schedule="forward"):
    """Runs self-test `name` in a fresh interpreter; returns (exit code, stdout + stderr)."""
    code = f"from pyconvnet import _C; print(_C._sim_selftest({name!r}))"
    env = dict(os.environ, PYCONVNET_SIM_SCHEDULE=schedule)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    return p.returncode, p.stdout + p.stderr


@pytest.mark.parametrize("name, kernel, block, thread, what", [
    ("barrier_exit", "bug_barrier_exit", "(0,0,0)", "(0,0,0)", r"synccheck: __syncthreads at .*selftest.cu:\d+ is not reached by thread \(5,0,0\), which exited"),
    ("barrier_divergent", "bug_barrier_divergent", "(0,0,0)", "(0,0,0)", r"synccheck: divergent barriers: __syncthreads at .*selftest.cu:\d+ while thread \(1,0,0\) waits at __syncthreads at .*selftest.cu:\d+"),
    ("warp_exited", "bug_warp_exited", "(0,0,0)", "(0,0,0)", r"synccheck: __shfl_xor_sync at .*selftest.cu:\d+ with mask 0xffffffff names lane 3 \(thread \(3,0,0\)\), which has exited"),
    ("warp_divergent", "bug_warp_divergent", "(0,0,0)", "(0,0,0)", r"synccheck: __shfl_down_sync at .*selftest.cu:\d+ with mask 0xffffffff never completes: lane 16 \(thread \(16,0,0\)\) waits at __shfl_up_sync"),
    ("mma_exited", "bug_mma_exited", "(0,0,0)", "(0,0,0)", r"synccheck: mma.sync at .*selftest.cu:\d+ with mask 0xffffffff names lane 7 \(thread \(7,0,0\)\), which has exited"),
    ("out_of_bounds", "bug_out_of_bounds", "(0,0,0)", "(256,0,0)", r"memcheck: invalid write at 0x[0-9a-f]+: 0 bytes past the end of the 1024-byte allocation at 0x[0-9a-f]+ on cuda:0"),
    ("use_after_free", "copy_kernel", "(0,0,0)", "(0,0,0)", r"memcheck: invalid read at 0x[0-9a-f]+: inside the freed 256-byte allocation"),
    ("extern_shared_past_end", "dynamic_shared_kernel", "(0,0,0)", "(0,0,0)", r"memcheck: invalid write at 0x[0-9a-f]+: 0 bytes past the end of the launch's 256 bytes of dynamic shared memory"),
])
def test_check_catches_planted_bug(name, kernel, block, thread, what):
    import re
    rc, out = _run(name)
    assert rc != 0, f"{name}: the planted bug was not caught:\n{out}"
    assert "CudaError" in out, out
    assert re.search(what, out), f"{name}: expected /{what}/ in:\n{out}"
    assert f"kernel {kernel} block {block} thread {thread}" in out, out


def test_initcheck_fresh_memory_reads_as_nan():
    out = np.array(_C._sim_selftest("uninitialized"))
    assert np.isnan(out).all()


def test_fresh_tensors_are_nan_until_written():
    pyconvnet.cuda.empty_cache()  # the next block comes from cudaMalloc, not from the cache
    fresh = pyconvnet.empty((1000,), device="cuda").numpy()
    assert np.isnan(fresh).all()


def test_racecheck_a_missing_barrier_changes_results_with_the_schedule():
    # Without the barrier each thread may read its neighbour's slot before it is written: the
    # forward and reverse orders give different results; with it both give the written values.
    results = {}
    for schedule in ("forward", "reverse", "random:7"):
        for name in ("race", "race_fixed"):
            rc, out = _run(name, schedule)
            assert rc == 0, out
            results[name, schedule] = out.strip().splitlines()[-1]
    assert results["race", "forward"] != results["race", "reverse"]
    expected = str([float((t + 1) % 64) for t in range(64)])
    for schedule in ("forward", "reverse", "random:7"):
        assert results["race_fixed", schedule] == expected


def test_streams_run_asynchronously_and_events_order_them():
    # A copy on a second stream that does not wait for the kernel's event reads the output before
    # the kernel's last block has written it (fresh memory: NaN); with the wait it reads the sums.
    expected = float(sum(range(400)))
    assert np.isnan(_C._sim_selftest("streams_unordered")[63])
    assert _C._sim_selftest("streams_ordered") == [expected] * 64


def test_random_schedule_is_reproducible():
    a = _run("race", "random:3")
    assert a == _run("race", "random:3")
    assert a[0] == 0


def test_warp_operations_match_their_definitions():
    out = np.array(_C._sim_selftest("warp_ops")).reshape(8, 32)
    lane = np.arange(32)
    assert np.array_equal(out[0], np.full(32, 7))                                # __shfl_sync from lane 7
    assert np.array_equal(out[1], np.where(lane >= 2, lane - 2, lane))           # __shfl_up_sync by 2
    assert np.array_equal(out[2], np.where(lane % 16 + 3 < 16, lane + 3, lane))  # __shfl_down_sync by 3, width 16
    assert np.array_equal(out[3], lane ^ 5)                                      # __shfl_xor_sync 5
    assert np.all(out[4] == sum(1 << i for i in range(16) if i % 3 == 0))        # __ballot_sync (low 16 bits)
    assert np.all(out[5] == 1) and np.all(out[6] == 0)                           # __any_sync, __all_sync
    assert np.all(out[7] == 8)                                                   # __syncthreads_count


@pytest.mark.parametrize("name, code, what", [
    ("block_too_large", "cudaErrorInvalidConfiguration", r"block \(1025,1,1\) \(1025 threads\): the limits are 1024 threads"),
    ("grid_too_large", "cudaErrorInvalidConfiguration", r"grid \(1,65536,1\): the limits are x <= 2\^31-1, y and z <= 65535"),
    ("shared_too_large", "cudaErrorInvalidValue", r"49156 bytes of dynamic shared memory; the limit is 49152"),
])
def test_launches_beyond_h200_limits_fail_through_pcn_launch(name, code, what):
    with pytest.raises(pyconvnet.CudaError, match=f"launch of .* failed at .*selftest.cu:\\d+: {code} .*{what}"):
        _C._sim_selftest(name)


def test_opt_in_shared_memory_allows_227_kib():
    assert _C._sim_selftest("shared_opt_in") == [2.0 * ((t + 1) % 64) for t in range(64)]


def test_opt_in_shared_memory_beyond_227_kib_fails():
    with pytest.raises(pyconvnet.CudaError, match="cudaErrorInvalidValue .*cudaFuncSetAttribute: 232452 bytes of dynamic shared memory; the limit is 232448"):
        _C._sim_selftest("shared_opt_in_too_large")


def test_extern_shared_memory_is_the_launchs_dynamic_shared_memory():
    # PCN_EXTERN_SHARED (cuda/launch.cuh): each thread writes its slot, reads its neighbour's.
    assert _C._sim_selftest("extern_shared") == [2.0 * ((t + 1) % 64) for t in range(64)]


def test_atomics_from_every_thread_all_count():
    # 4 blocks of 64: each thread reads its block's shared count (64) plus the shared sum of the
    # thread indices (2016); the global counter has all 256 increments.
    assert _C._sim_selftest("atomics") == [2080.0] * 256 + [256.0]


def test_lanes_exchange_through_shared_memory_ordered_by_syncwarp():
    expected = []
    for t in range(64):
        base, lane = t & ~31, (t % 32) ^ 2                 # the value comes from lane ^ 2's
        src = base | ((lane + 1) % 32)                     # read of its neighbour's slot,
        expected.append(float((src ^ 1) + 1))              # written as its partner's index + 1
    assert _C._sim_selftest("warp_exchange") == expected


_two_devices = pytest.mark.skipif(
    pyconvnet.cuda.device_count() < 2 or not _C._sim_peer_checks(),
    reason="needs two simulated devices and memory protection keys (x86 PKU) to tell their memory apart")


@_two_devices
@pytest.mark.parametrize("name, access", [("peer_read_disabled", "read"), ("peer_write_disabled", "write")])
def test_memcheck_catches_another_devices_memory_without_peer_access(name, access):
    # A kernel on cuda:0 copies between a buffer on cuda:0 and one on cuda:1.
    import re
    rc, out = _run(name)
    assert rc != 0, f"{name}: the access to cuda:1 was not caught:\n{out}"
    what = (rf"memcheck: invalid {access} at 0x[0-9a-f]+: inside the 256-byte allocation at 0x[0-9a-f]+ on cuda:1, "
            r"from a kernel on cuda:0 without peer access to cuda:1 \(cudaDeviceEnablePeerAccess\)")
    assert re.search(what, out), f"{name}: expected /{what}/ in:\n{out}"
    assert "kernel copy_kernel block (0,0,0) thread (0,0,0)" in out, out


@_two_devices
def test_peer_access_enabled_lets_a_kernel_use_another_devices_memory():
    assert _C._sim_selftest("peer_enabled") == [3.0] * 64


@pytest.mark.skipif(pyconvnet.cuda.device_count() < 2, reason="needs two simulated devices")
def test_peer_access_calls_follow_the_cuda_runtime():
    # cudaDeviceCanAccessPeer(0, 1) and (0, 0) (code, answer); cudaDeviceEnablePeerAccess(1) twice
    # (cudaErrorPeerAccessAlreadyEnabled), cudaDeviceDisablePeerAccess(1) twice
    # (cudaErrorPeerAccessNotEnabled), cudaDeviceEnablePeerAccess(0) on cuda:0 (cudaErrorInvalidDevice)
    # and with flags 1 (cudaErrorInvalidValue).
    assert _C._sim_selftest("peer_calls") == [0, 1, 0, 0, 0, 704, 0, 705, 101, 1]


# ------------------------------------------------------------------------------ ThreadSanitizer
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TSAN_RUNNER = os.environ.get("PYCONVNET_SIM_TSAN_RUNNER", os.path.join(ROOT, "build", "sim-tsan", "pcn_sim_tsan"))
_tsan = pytest.mark.skipif(not os.access(TSAN_RUNNER, os.X_OK),
                           reason=f"no ThreadSanitizer runner at {TSAN_RUNNER} (build it with scripts/build_sim_tsan.sh)")


def _run_tsan(*names):
    """Runs the ThreadSanitizer runner on `names`; returns (exit code, stdout, stderr)."""
    env = dict(os.environ, TSAN_OPTIONS="halt_on_error=0 exitcode=66", OMP_NUM_THREADS="1",
               PYCONVNET_SIM_THREADS="2", PYCONVNET_SIM_SCHEDULE="random:1")
    p = subprocess.run([TSAN_RUNNER, *names], capture_output=True, text=True, env=env, timeout=600)
    return p.returncode, p.stdout, p.stderr


def test_planted_shared_race_is_numerically_right_in_every_order():
    # So the schedules cannot show it: only ThreadSanitizer can.
    for schedule in ("forward", "reverse", "random:7"):
        rc, out = _run("shared_race", schedule)
        assert rc == 0, out
        assert out.strip().splitlines()[-1] == str([2016.0] * 64), out


@_tsan
def test_tsan_reports_the_planted_shared_memory_race():
    rc, out, err = _run_tsan("shared_race")
    assert rc == 66, f"ThreadSanitizer did not report the race (exit {rc}):\n{out}\n{err}"
    assert "WARNING: ThreadSanitizer: data race" in err, err
    assert "bug_shared_race" in err, err  # the report's stacks name the kernel
    assert "64 values, first 2016, last 2016" in out, out


@_tsan
def test_tsan_finds_no_race_in_barriers_warp_operations_atomics_or_the_engines_kernels():
    rc, out, err = _run_tsan("shared_race_fixed", "race_fixed", "atomics", "warp_exchange", "warp_ops",
                             "extern_shared", "kernels")
    assert "ThreadSanitizer" not in err, err
    assert rc == 0, f"exit {rc}:\n{out}\n{err}"
    assert "MISMATCH" not in out and "failed" not in out, out
    assert out.count(" ok (") >= 30, out


def test_devices_report_h200_limits_and_are_named_simulated():
    assert pyconvnet.cuda.is_available()
    assert pyconvnet.cuda.device_count() == int(os.environ.get("PYCONVNET_SIM_DEVICES", "2"))
    for i in range(pyconvnet.cuda.device_count()):
        assert pyconvnet.cuda.device_name(i) == f"pyconvnet simulated GPU {i} (H200 limits)"


def test_unknown_selftest_names_the_known_ones():
    with pytest.raises(ValueError, match="_sim_selftest: unknown test 'nope'; known: .*barrier_exit"):
        _C._sim_selftest("nope")


def test_benchmarks_refuse_simulated_devices():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
    import bench_common
    with pytest.raises(SystemExit, match="bench_x: this pyconvnet is the CUDA simulator build"):
        bench_common.benchmark_device("cuda", "bench_x")
    assert bench_common.benchmark_device(None, "bench_x") == "cpu"
