"""What the benchmarks share: the machine's peaks and how they were obtained, the timer, PyTorch
when it is installed, and the run's provenance (date, commit, versions).

Timing method (both libraries, both devices, the same code): a case holds K copies of its inputs
in distinct buffers, K chosen so that they add up to at least 3x the last-level cache (the GPU's
L2, the CPU's L3), so every call reads inputs that the previous calls pushed out of the cache.
One repetition calls the op n times, cycling through the copies, then waits for the device
(pyconvnet.cuda.synchronize() for pyconvnet, whose kernels run on its own stream;
torch.cuda.synchronize() for PyTorch) and divides the wall-clock time by n. n is chosen so that a
repetition lasts about `target` seconds; the reported time is the median over the repetitions,
after warm-up calls (which also let cuDNN pick its algorithms). On the CPU, where a virtual
machine's speed drifts with other tenants' load, PyTorch's repetitions alternate with those of
pyconvnet's default version (time_alternating), so that the drift cancels in their ratio; on the
GPU each library is timed in turn (its copies of the inputs alone in memory). Wall-clock over back-to-back
launches counts what a caller pays per call: for kernels shorter than the launch path (about
5-20 us from Python) it measures the launch path, for both libraries alike. PyTorch's own
CUDA-event time over the same calls is recorded next to it in the JSON.
"""
from __future__ import annotations

import ctypes
import datetime
import json
import math
import os
import platform
import re
import shutil
import tempfile
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run from a source checkout: import this tree's pyconvnet
    sys.path.insert(0, ROOT)

import pyconvnet  # noqa: E402


# ----------------------------------------------------------------------------- provenance

def commit() -> str:
    """The commit benchmarked: $PYCONVNET_COMMIT (set by gpu_suite.sh, whose copy of the tree may
    have no .git), else `git rev-parse`, with "+dirty" when tracked files differ from it."""
    if os.environ.get("PYCONVNET_COMMIT"):
        return os.environ["PYCONVNET_COMMIT"]
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (head + ("+dirty" if dirty else "")) if head else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def now_utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def load_torch(device: str):
    """(torch or None, note). PyTorch is optional: without it, or without CUDA in it when the
    device is CUDA, the benchmarks time pyconvnet alone and say why."""
    try:
        import torch
    except ImportError as e:
        return None, f"PyTorch not installed ({e}); pyconvnet timed alone"
    if device.startswith("cuda") and not torch.cuda.is_available():
        return None, f"PyTorch {torch.__version__} has no usable CUDA device; pyconvnet timed alone"
    return torch, ""


def set_torch_tf32(torch, on: bool) -> None:
    """Allows (on) or forbids TF32 in PyTorch's float32 convolutions (cuDNN) and matrix products
    (cuBLAS). PyTorch >= 2.9 has fp32_precision settings and raises if they are mixed with the
    older allow_tf32 flags, so the new ones are used where they exist. cuDNN allows TF32 by
    default: the float32 comparison must switch it off."""
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(matmul, "fp32_precision") and hasattr(getattr(conv, "conv", None), "fp32_precision"):
        matmul.fp32_precision = conv.conv.fp32_precision = "tf32" if on else "ieee"
    else:
        matmul.allow_tf32 = conv.allow_tf32 = on


# ----------------------------------------------------------------------------- peaks

@dataclass
class Machine:
    """The device's name and physical peaks, each with how it was obtained."""
    device: str
    name: str
    flops: float          # FP32 FLOP/s
    flops_how: str
    bandwidth: float      # bytes/s
    bandwidth_how: str
    cache_bytes: int      # the last-level cache the timer must defeat (GPU L2, CPU L3)
    cache_how: str
    threads: int = 0      # CPU threads used by the kernels
    notes: list = field(default_factory=list)

    def header(self) -> list[str]:
        lines = [f"device: {self.device} = {self.name}",
                 f"peak FP32: {self.flops / 1e12:.2f} TFLOP/s  ({self.flops_how})",
                 f"peak memory bandwidth: {self.bandwidth / 1e9:.1f} GB/s  ({self.bandwidth_how})",
                 f"last-level cache: {self.cache_bytes / 2**20:.1f} MiB  ({self.cache_how})",
                 f"balance point: {self.flops / self.bandwidth:.1f} FLOP/byte"]
        lines += [f"note: {n}" for n in self.notes]
        return lines


# FP32 lanes per SM by compute capability (CUDA C Programming Guide, "Arithmetic Instructions").
_FP32_PER_SM = {(6, 0): 64, (6, 1): 128, (6, 2): 128, (7, 0): 64, (7, 2): 64, (7, 5): 64, (8, 0): 64,
                (8, 6): 128, (8, 7): 128, (8, 9): 128, (9, 0): 128, (10, 0): 128, (10, 3): 128,
                (12, 0): 128, (12, 1): 128}

# CUdevice_attribute values (cuda.h).
_ATTR = dict(clock_khz=13, sms=16, mem_clock_khz=36, bus_bits=37, l2_bytes=38, cc_major=75, cc_minor=76)


def _driver_attributes(index: int) -> dict:
    """The device's attributes from the CUDA driver API (libcuda, through ctypes), or {} with the
    reason under "error". cudaDeviceProp's clock fields are gone in CUDA 13; the driver's
    attributes are not."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError as e:
        return {"error": f"libcuda.so.1 not loadable: {e}"}
    if cuda.cuInit(0) != 0:
        return {"error": "cuInit failed"}
    dev = ctypes.c_int()
    if cuda.cuDeviceGet(ctypes.byref(dev), index) != 0:
        return {"error": f"cuDeviceGet({index}) failed"}
    out = {}
    for name, attr in _ATTR.items():
        v = ctypes.c_int()
        if cuda.cuDeviceGetAttribute(ctypes.byref(v), attr, dev) == 0 and v.value > 0:
            out[name] = v.value
    buf = ctypes.create_string_buffer(256)
    if cuda.cuDeviceGetName(buf, 256, dev) == 0:
        out["name"] = buf.value.decode(errors="replace")
    return out


def _nvidia_smi(index: int) -> dict:
    """Max SM and memory clocks (MHz) from nvidia-smi, {} if it is not there."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return {}
    try:
        r = subprocess.run([exe, f"--id={index}", "--query-gpu=name,clocks.max.sm,clocks.max.memory",
                            "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=20)
        name, sm, mem = [s.strip() for s in r.stdout.strip().splitlines()[0].split(",")]
        return {"name": name, "sm_mhz": float(sm), "mem_mhz": float(mem)}
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return {}


def cuda_machine(index: int, torch=None) -> Machine:
    a = _driver_attributes(index)
    smi = _nvidia_smi(index)
    notes = []
    name = a.get("name") or smi.get("name") or pyconvnet.cuda.device_name(index)
    cc = (a.get("cc_major"), a.get("cc_minor"))
    sms = a.get("sms")
    if sms is None and torch is not None:
        p = torch.cuda.get_device_properties(index)
        sms, cc = p.multi_processor_count, (p.major, p.minor)
    lanes = _FP32_PER_SM.get(cc)
    if lanes is None:
        lanes = 128
        notes.append(f"compute capability {cc} not in the FP32-lanes table: assumed 128 per SM")
    if "clock_khz" in a:
        clock, clock_how = a["clock_khz"] * 1e3, "CU_DEVICE_ATTRIBUTE_CLOCK_RATE"
    elif smi.get("sm_mhz"):
        clock, clock_how = smi["sm_mhz"] * 1e6, "nvidia-smi clocks.max.sm"
    else:
        clock, clock_how = float("nan"), "unknown"
    if smi.get("sm_mhz") and "clock_khz" in a and abs(smi["sm_mhz"] * 1e6 - clock) > 0.02 * clock:
        notes.append(f"nvidia-smi clocks.max.sm = {smi['sm_mhz']:.0f} MHz differs from the driver's "
                     f"{clock / 1e6:.0f} MHz; the driver's value is used")
    flops = (sms or float("nan")) * lanes * 2 * clock
    flops_how = (f"{sms} SMs x {lanes} FP32 lanes (sm_{cc[0]}{cc[1]}) x 2 (FMA) x {clock / 1e6:.0f} MHz "
                 f"max SM clock ({clock_how})")

    mem_clock = a.get("mem_clock_khz", 0) * 1e3 or smi.get("mem_mhz", 0) * 1e6
    bus = a.get("bus_bits")
    if mem_clock and bus:
        bw = 2 * mem_clock * bus / 8
        bw_how = (f"2 (double data rate) x {mem_clock / 1e6:.0f} MHz memory clock x {bus}-bit bus / 8 "
                  f"({'CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE' if 'mem_clock_khz' in a else 'nvidia-smi clocks.max.memory'}"
                  f", CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH)")
    elif torch is not None:
        bw = measure_copy_bandwidth_cuda(torch, index)
        bw_how = "MEASURED device-to-device copy (2 x bytes / time): the attributes were not available"
    else:
        bw, bw_how = float("nan"), "unknown: neither the driver attributes nor PyTorch were available"
    if torch is not None and bw_how.startswith("2 "):
        notes.append(f"measured device-to-device copy (PyTorch, 2 x bytes / time): "
                     f"{measure_copy_bandwidth_cuda(torch, index) / 1e9:.0f} GB/s")
    l2 = a.get("l2_bytes") or (torch.cuda.get_device_properties(index).L2_cache_size if torch else 50 << 20)
    if "error" in a:
        notes.append(f"CUDA driver attributes: {a['error']}")
    return Machine(f"cuda:{index}", name, flops, flops_how, bw, bw_how, int(l2),
                   "CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE" if "l2_bytes" in a else "PyTorch / assumed", notes=notes)


def measure_copy_bandwidth_cuda(torch, index: int) -> float:
    n = 256 << 20  # 1 GiB of float32: far past any L2
    a = torch.empty(n, dtype=torch.float32, device=f"cuda:{index}")
    b = torch.empty_like(a)
    b.copy_(a)
    torch.cuda.synchronize(index)
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        b.copy_(a)
        torch.cuda.synchronize(index)
        best = min(best, time.perf_counter() - t0)
    del a, b
    torch.cuda.empty_cache()
    return 2 * 4 * n / best


def _cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _cpu_mhz() -> tuple[float, str]:
    """The CPU clock: lscpu's "CPU max MHz" when the kernel reports it, else /proc/cpuinfo's
    "cpu MHz" (the current clock; under a hypervisor usually the nominal one)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"CPU max MHz:\s*([\d.]+)", out)
        if m and float(m.group(1)) > 0:
            return float(m.group(1)), "lscpu CPU max MHz"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(l.split(":")[1]) for l in f if l.startswith("cpu MHz")]
        if mhz:
            return max(mhz), "/proc/cpuinfo cpu MHz (current clock; turbo may be higher)"
    except (OSError, ValueError):
        pass
    return float("nan"), "unknown"


def _physical_cores_available() -> int:
    """CPUs this process may run on, counting one per physical core (SMT siblings share the FMA
    units)."""
    cpus = sorted(os.sched_getaffinity(0))
    cores = set()
    for c in cpus:
        try:
            with open(f"/sys/devices/system/cpu/cpu{c}/topology/core_id") as f:
                core = f.read().strip()
            with open(f"/sys/devices/system/cpu/cpu{c}/topology/physical_package_id") as f:
                pkg = f.read().strip()
            cores.add((pkg, core))
        except OSError:
            cores.add(("?", c))
    return len(cores)


def _llc_bytes() -> tuple[int, str]:
    best, level = 0, 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in os.listdir(base):
            if not entry.startswith("index"):
                continue
            with open(f"{base}/{entry}/level") as f:
                lv = int(f.read())
            with open(f"{base}/{entry}/type") as f:
                if f.read().strip() == "Instruction":
                    continue
            with open(f"{base}/{entry}/size") as f:
                s = f.read().strip()
            size = int(s[:-1]) * {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[s[-1]] if s[-1] in "KMG" else int(s)
            if lv > level:
                best, level = size, lv
    except (OSError, ValueError):
        pass
    return (best, f"L{level}, sysfs") if best else (32 << 20, "unknown: assumed 32 MiB")


def measure_copy_bandwidth_cpu(threads: int, nbytes: int) -> tuple[float, str]:
    """(bandwidth, how) of the fastest way found to stream an `nbytes` float32 array into another
    with NumPy: np.copyto and np.add(src, 0, out=dst) (a ufunc, which releases the GIL), by 1 to
    `threads` threads on disjoint parts, best of 6 each; 2 x bytes / time (reads + writes;
    write-allocate traffic not counted). A reference, not a bound: kernels with several streams
    can pass it."""
    n = nbytes // 4
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)
    ways = {"np.copyto": lambda d, s: np.copyto(d, s), "np.add": lambda d, s: np.add(s, 0.0, out=d)}
    best_bw, best_how = 0.0, ""
    for t in range(1, threads + 1):
        bounds = np.linspace(0, n, t + 1).astype(np.int64)
        for name, way in ways.items():
            for _ in range(6):
                ts = [threading.Thread(target=way, args=(dst[bounds[i]:bounds[i + 1]], src[bounds[i]:bounds[i + 1]]))
                      for i in range(t)]
                t0 = time.perf_counter()
                for th in ts:
                    th.start()
                for th in ts:
                    th.join()
                bw = 2 * 4 * n / (time.perf_counter() - t0)
                if bw > best_bw:
                    best_bw, best_how = bw, f"{name} by {t} thread(s)"
    return best_bw, best_how


def cpu_machine() -> Machine:
    flags = _cpu_flags()
    cores = _physical_cores_available()
    mhz, mhz_how = _cpu_mhz()
    if "avx512f" in flags:
        per, simd = 64, "AVX-512: 2 x 16-lane FMA"
    elif "avx2" in flags and "fma" in flags:
        per, simd = 32, "AVX2+FMA: 2 x 8-lane FMA"
    elif "avx" in flags:
        per, simd = 16, "AVX: 8-lane add + 8-lane multiply"
    else:
        per, simd = 8, "SSE: 4-lane add + 4-lane multiply"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), name)
    except OSError:
        pass
    threads = int(os.environ.get("OMP_NUM_THREADS", 0)) or len(os.sched_getaffinity(0))
    used = max(1, min(threads, cores))  # the cores the kernels can keep busy
    llc, llc_how = _llc_bytes()
    nbytes = max(256 << 20, 8 * llc)
    bw, bw_how = measure_copy_bandwidth_cpu(used, nbytes)
    estimate = used * mhz * 1e6 * per
    estimate_how = (f"{used} core(s) used (of {cores}) x {mhz:.0f} MHz ({mhz_how}) x {per} FP32 FLOP/cycle "
                    f"({simd})")
    notes = [f"pyconvnet's CPU kernels use {threads} OpenMP thread(s) (OMP_NUM_THREADS, else all CPUs); "
             "PyTorch reads OMP_NUM_THREADS too",
             "at start, " + load_line() + ": other work on the machine slows and scatters the timings"]
    measured = measure_cpu_peak(threads)
    if measured is None:
        flops, flops_how = estimate, "ESTIMATE: " + estimate_how
        notes.insert(0, f"{simd} per core per cycle is the usual figure for this ISA (two FMA pipes); CPUs "
                        "with one FMA pipe, or that lower their clock under wide vectors, peak lower")
    else:
        flops, flops_how = measured
        notes.insert(0, f"nominal estimate, not used: {estimate / 1e12:.3f} TFLOP/s = {estimate_how}; the "
                        "cores run at another clock than the nominal one (turbo, power limits)")
    return Machine("cpu", f"{name} ({cores} physical cores available, {used} used)", flops, flops_how,
                   bw, f"MEASURED REFERENCE, not a bound: the fastest NumPy stream of {nbytes >> 20} MiB into another "
                       f"({bw_how}), 2 x bytes / time; a CPU reports no memory peak and kernels can pass this (>100%)",
                   llc, llc_how, threads=threads, notes=notes)


def measure_cpu_peak(threads: int):
    """(FLOP/s, how) measured by the engine's multiply-add probe (pyconvnet.measure_cpu_peak) on
    the best instruction-set path this CPU runs, on all kernel threads at once; None for an engine
    without it. Best of 3 tries of 0.2 s, since a try that shares a core with other work reads low."""
    if not hasattr(pyconvnet, "measure_cpu_peak"):
        return None
    best_isa = pyconvnet.cpu_info()["supported"][0]
    previous = pyconvnet.set_cpu_isa(best_isa)
    try:
        peak = max((pyconvnet.measure_cpu_peak(0.2) for _ in range(3)), key=lambda p: p["flops"])
    finally:
        pyconvnet.set_cpu_isa(previous)
    per = " + ".join(f"{r / 1e9:.1f}" for r in peak["per_thread"])
    cycle = peak["flops_per_step"] // 12  # FLOPs of one chain step: 2 x the vector width
    return peak["flops"], (f"MEASURED: {peak['isa']} probe, 12 independent {cycle // 2}-lane multiply-add "
                           f"chains on each of {len(peak['per_thread'])} thread(s) at once, each thread's "
                           f"fastest 0.1 ms block: {per} GFLOP/s")


def load_line() -> str:
    """The machine's load average: on a shared machine, other work slows and scatters timings
    (a parallel region waits for its slowest thread, and a preempted thread costs a time slice)."""
    return "load average (1, 5, 15 min): " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def machine_for(device: str, torch=None) -> Machine:
    if device == "cpu":
        return cpu_machine()
    index = int(device.split(":")[1]) if ":" in device else 0
    return cuda_machine(index, torch)


# ----------------------------------------------------------------------------- timing

@dataclass
class Timing:
    median_s: float
    min_s: float
    calls_per_rep: int
    reps: int
    event_median_s: float | None = None  # PyTorch CUDA events around the same calls


def rotation_count(set_bytes: int, cache_bytes: int, memory_cap: int) -> int:
    """How many copies of a case's inputs to cycle through: their total at least 3x the cache,
    at least 2, at most 256 and within `memory_cap` bytes. Cases smaller than cache/85 stay
    partly cache-resident: they are bound by the launch path anyway."""
    k = max(2, math.ceil(3 * cache_bytes / max(set_bytes, 1)))
    k = min(k, 256, max(2, memory_cap // max(set_bytes, 1)))
    return k


class Timer:
    """Times `call(s)` cycling over `sets` as the module docstring says: the constructor warms up
    and estimates one call, `rep()` runs one repetition, `result()` gives the Timing. `sync()`
    waits for the device. `events`: a pair factory for CUDA events (PyTorch), timed around each
    repetition too. The number of repetitions shrinks (to min_reps) when one call is slow, to keep
    a case within about `budget_s` seconds. The copies are used in order, oldest first, and the
    cycle goes on across warm-up, estimate and repetitions, so each call reads the copy touched
    longest ago."""

    def __init__(self, call, sets: list, sync, target_s: float, budget_s: float, max_reps: int = 7,
                 min_reps: int = 3, events=None):
        self.call, self.sets, self.sync, self.events = call, sets, sync, events
        self.i = 0
        self.times, self.ev_times = [], []
        # Warm-up (allocator pools, cuDNN's algorithm search, first touch): at least 2 calls, more
        # while they are cheap, up to one pass over the copies.
        k = len(sets)
        sync()
        self._run(1)
        sync()
        t0 = time.perf_counter()
        self._run(1)
        sync()
        est = time.perf_counter() - t0
        if est < target_s / 4:
            t0 = time.perf_counter()
            warm = 2
            while warm < k and time.perf_counter() - t0 < budget_s / 4:
                self._run(1)
                warm += 1
            sync()
            # Estimate: grow the number of calls until they last a quarter of a repetition.
            m = 1
            while True:
                t0 = time.perf_counter()
                self._run(m)
                sync()
                elapsed = time.perf_counter() - t0
                if elapsed >= target_s / 4 or m >= 4096:
                    break
                m *= 4
            est = elapsed / m
        # else: a slow call; its second run (after the first's warm-up) is the estimate.
        self.n = max(1, min(10000, round(target_s / max(est, 1e-7))))
        self.reps = int(max(min_reps, min(max_reps, budget_s / max(self.n * est, 1e-9))))

    def _run(self, m: int) -> None:
        for _ in range(m):
            self.call(self.sets[self.i % len(self.sets)])
            self.i += 1

    def rep(self) -> None:
        self.sync()
        if self.events:
            e0, e1 = self.events()
            e0.record()
        t0 = time.perf_counter()
        self._run(self.n)
        if self.events:
            e1.record()
        self.sync()
        self.times.append((time.perf_counter() - t0) / self.n)
        if self.events:
            self.ev_times.append(e0.elapsed_time(e1) / 1e3 / self.n)

    def result(self) -> Timing:
        return Timing(statistics.median(self.times), min(self.times), self.n, len(self.times),
                      statistics.median(self.ev_times) if self.ev_times else None)


def time_calls(call, sets: list, sync, target_s: float, budget_s: float, max_reps: int = 7,
               min_reps: int = 3, events=None) -> Timing:
    """One Timer's repetitions, back to back."""
    return time_alternating([Timer(call, sets, sync, target_s, budget_s, max_reps, min_reps, events)])[0]


def time_alternating(timers: list) -> list:
    """The repetitions of several Timers taken in turn (rep 1 of each, then rep 2 of each, ...),
    as many rounds as the most repetitions any asks for (a slow case's timer asks for fewer, and
    gets as many as the others): a machine whose speed drifts between minutes (other tenants of a
    virtual machine's host) then slows each alike, where timing one after the other let the
    drift into their ratio. Returns their Timings, in order."""
    rounds = max(t.reps for t in timers)
    for _ in range(rounds):
        for t in timers:
            t.rep()
    return [t.result() for t in timers]


def write_json(path: str, obj) -> None:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(_finite(json.loads(json.dumps(obj, default=_jsonable))), f, indent=1, allow_nan=False)
    os.replace(tmp, path)


def _finite(o):
    """NaN and infinities become null: JSON has no such numbers."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_finite(v) for v in o]
    return o


def _jsonable(o):
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def versions_line(torch) -> str:
    parts = [f"python {platform.python_version()}", f"numpy {np.__version__}",
             f"pyconvnet {pyconvnet.__version__} (CUDA build: {pyconvnet.cuda.is_built()})"]
    if torch is not None:
        parts.append(f"torch {torch.__version__}")
        if torch.cuda.is_available():
            parts.append(f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
        else:
            parts.append(f"{torch.get_num_threads()} intra-op threads, mkldnn {torch.backends.mkldnn.is_available()}")
    return ", ".join(parts)


def sample_dataset(count: int, size: int = 256) -> str:
    """A prepared dataset of `count` random images (smooth colour noise, JPEG-compressed, 10
    classes), made once under $TMPDIR and reused."""
    from PIL import Image
    from pyconvnet import prepare
    root = os.path.join(tempfile.gettempdir(), f"pyconvnet-bench-e2e-{count}-{size}")
    out = os.path.join(root, "prepared")
    if not os.path.exists(os.path.join(out, "manifest.json")):
        rng = np.random.default_rng(0)
        for i in range(count):
            folder = os.path.join(root, "src", f"c{i % 10}")
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"{i}.jpg")
            if not os.path.exists(path):
                small = rng.integers(0, 256, (size // 8, size // 8 + 8, 3), dtype=np.uint8)
                Image.fromarray(small).resize((size + 64, size), Image.BILINEAR).save(path, quality=90)
        prepare.prepare(os.path.join(root, "src"), out, size=size, val_fraction=0.0, progress=False)
    return out


def benchmark_precision(requested: str, device: str, prog: str) -> dict:
    """The conv2d and linear kernel versions a --precision value (fp32 | tf32) runs on `device`
    (pyconvnet.console.resolve_precision: fp32 the FP32-accurate defaults, tf32 the TF32
    tensor-core versions); exits with the message for a bad value or a device without TF32."""
    from pyconvnet.console import UserError, resolve_precision
    try:
        return resolve_precision(requested, device)
    except UserError as e:
        sys.exit(f"{prog}: {e}")


def benchmark_device(requested, prog: str) -> str:
    """The device a benchmark runs on: `requested` ("cpu", "cuda", "cuda:N"), or CUDA when usable
    else the CPU; exits with a message when CUDA is asked for and unusable or simulated."""
    simulated = pyconvnet.cuda.is_simulated()
    device = requested or ("cuda" if pyconvnet.cuda.is_available() and not simulated else "cpu")
    if device.startswith("cuda") and not pyconvnet.cuda.is_available():
        sys.exit(f"{prog}: CUDA requested but unavailable: {pyconvnet.cuda.unavailable_reason()}")
    if device.startswith("cuda") and simulated:
        sys.exit(f"{prog}: this pyconvnet is the CUDA simulator build: its CUDA devices run on the CPU "
                 "and their timings mean nothing; benchmark a GPU build")
    return "cuda:0" if device == "cuda" else device
