#!/usr/bin/env python3
"""A static report of every CUDA kernel in the built engine, read from its sm_90 SASS: no GPU is
needed, only the module and NVIDIA's binary tools.

    python benchmarks/kernel_report.py                       # this tree's in-place build, else the installed one
    python benchmarks/kernel_report.py --json report.json    # + everything, for tools
    python benchmarks/kernel_report.py --show 'DataPixels'   # + the hot loop's SASS of matching kernels

Per kernel: the pass it computes (fprop, dgrad or wgrad: every convolution and linear-layer
kernel carries it in its name, as cuDNN's and CUTLASS's do), registers, local memory (spills), static shared memory, the block size and where it
comes from, blocks per SM on an H200 and what limits them, and the hot loop's instruction mix
with the issue-slot ceiling it implies.

Where the numbers come from:
- `cuobjdump -res-usage`: registers (REG), static shared memory (SHARED), stack frame (STACK) and
  local memory (LOCAL) per thread. Spills: ptxas spills to local memory, so a kernel with no
  LDL/STL instruction and no local memory spills nothing; otherwise the LDL/STL count is shown
  (spills or a local array: `-Xptxas -v` tells them apart).
- `cuobjdump -sass`: the instructions (cuobjdump needs nvdisasm for this).
- `cuobjdump -elf`: `__launch_bounds__` (EIATTR_MAX_THREADS) and the ptxas that compiled the code.
- Block size: the `block` argument of the kernel's `PCN_LAUNCH(kernel, grid, block, smem, ...)`
  in cuda/ (an integer, or a `constexpr int` of the kernel's file or of a cuda/*.cuh header,
  combined with + - * / and dim3(...)); where that is not a constant, `__launch_bounds__`' maximum
  (marked "lb": the real block may be smaller); else "?" and no occupancy.
- Blocks per SM on an H200 (sm_90), as CUDA's occupancy calculator (cuda_occupancy.h) computes
  them: registers are allocated per warp in units of 256, each of the 4 sub-partitions holding
  16,384 of the SM's 64K; shared memory per block is the static size + the launch's dynamic size +
  1 KiB reserved by the system, rounded up to 128 bytes, out of 228 KiB per SM (227 KiB at most per
  block; cuobjdump's SHARED already includes the reserved KiB of a kernel with shared variables,
  the report's static size does not); at most 2048 threads (64 warps) and 32 blocks per SM. The smallest of the four limits
  wins and is named.
- Hot loop: the control-flow graph of the kernel's basic blocks, reachable from its entry, and
  its natural loops (a back edge is a branch to a block that dominates it; loops sharing a header
  are one loop). Among the innermost loops (those containing no other loop), the hot loop is the
  one with the most FFMA, ties and FFMA-free kernels going to the largest body; a kernel without
  a loop is reported whole. The mix counts each instruction of the loop body once (both sides of a
  branch inside the loop count, predicated instructions count: they take an issue slot either way).
- Mix: FFMA share = FFMA / instructions; tensor-core instructions (HMMA, IMMA, DMMA, BMMA and the
  warpgroup *GMMA); math = FFMA + FADD + FMUL + tensor-core instructions; shared loads (LDS, LDSM)
  and global loads (LDG, LDGSTS, generic LD) per math instruction.
- Issue-slot ceiling: an SM sub-partition issues at most one warp instruction per cycle, and on
  sm_90 one warp FFMA per cycle is its full FP32 rate, so a loop whose instructions are FFMA in a
  share f cannot pass f x the FP32 peak (H200: 132 SMs x 128 lanes x 2 x 1980 MHz = 66.9 TFLOP/s),
  however well its latencies are hidden. For tensor-core instructions the same bound is shown in
  TFLOP/s from the instruction's shape (HMMA.16816: m16n8k16); it ignores the tensor pipe's own rate.
"""
from __future__ import annotations

import argparse
import ast
import glob
import math
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_common  # noqa: E402  (puts this tree's pyconvnet on sys.path)
from roofline import GPUS  # noqa: E402

ROOT = bench_common.ROOT
BUILD_HINT = ("build the CUDA engine: scripts/build_inplace.sh (without PYCONVNET_CUDA=0) or pip install . "
              "with nvcc on PATH or in /usr/local/cuda")
INSTALL_HINT = ("pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm  (or, from the source "
                "checkout, pip install '.[sass]')")


# ----------------------------------------------------------------------------- the H200 (sm_90)

@dataclass(frozen=True)
class SmLimits:
    name: str = "H200 (sm_90)"
    regs_per_sm: int = 65536
    sub_partitions: int = 4
    reg_unit: int = 256           # registers are allocated per warp in units of this many
    max_regs_per_block: int = 65536
    smem_per_sm: int = 228 << 10
    smem_per_block: int = 227 << 10
    smem_reserved: int = 1 << 10  # per block, for the system: the block's shared window starts with it
    smem_unit: int = 128
    threads_per_sm: int = 2048
    blocks_per_sm: int = 32
    fp32_peak: float = GPUS["H200"][0]      # the roofline's datasheet peak
    fp32_peak_how: str = GPUS["H200"][2]

    @property
    def issue_rate(self) -> float:
        """Warp instructions per second over the GPU: one per sub-partition per cycle, which is
        one warp FFMA (32 lanes x 2 FLOP) per cycle, the full FP32 rate."""
        return self.fp32_peak / 64


H200 = SmLimits()


def _round_up(x: int, unit: int) -> int:
    return -(-x // unit) * unit


def blocks_per_sm(regs: int, smem: int, threads: int, dyn_smem: int = 0, sm: SmLimits = H200):
    """(blocks per SM, what limits them, {limit: blocks}) for a kernel using `regs` registers per
    thread and `smem` + `dyn_smem` bytes of shared memory per block of `threads` threads."""
    warps = -(-threads // 32)
    limits = {"threads": sm.threads_per_sm // 32 // warps, "blocks": sm.blocks_per_sm}
    if regs:
        per_warp = _round_up(regs * 32, sm.reg_unit)
        # The hardware checks a block as if its warps were spread over all sub-partitions.
        fits = (per_warp * _round_up(warps, sm.sub_partitions) <= sm.max_regs_per_block
                and per_warp * warps <= sm.max_regs_per_block and regs <= 256)
        per_sub = sm.regs_per_sm // sm.sub_partitions // per_warp
        limits["regs"] = per_sub * sm.sub_partitions // warps if fits else 0
    used = _round_up(smem + dyn_smem + sm.smem_reserved, sm.smem_unit)
    limits["smem"] = sm.smem_per_sm // used if smem + dyn_smem <= sm.smem_per_block else 0
    best = min(limits.values())
    return best, "/".join(k for k, v in limits.items() if v == best), limits


# ----------------------------------------------------------------------------- tools

def find_tool(name: str) -> str | None:
    """`name` on PATH, in $CUDA_HOME/bin or /usr/local/cuda/bin, or installed from PyPI
    (nvidia-cuda-<name>: site-packages/nvidia/cu13/bin/, or nvidia/cuda_<name>/bin/ in older
    releases)."""
    found = shutil.which(name)
    if found:
        return found
    dirs = [os.path.join(os.environ[v], "bin") for v in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(v)]
    dirs.append("/usr/local/cuda/bin")
    for entry in sys.path:
        dirs += sorted(glob.glob(os.path.join(entry or ".", "nvidia", "*", "bin")))
    for d in dirs:
        path = os.path.join(d, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def run_tool(args: list[str], env=None) -> str:
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"{os.path.basename(args[0])} {' '.join(args[1:-1])} failed (exit {r.returncode}): "
                           f"{(r.stderr or r.stdout).strip()[:500]}")
    return r.stdout


def tool_version(path: str) -> str:
    """"cuobjdump 13.5.37 (PyPI nvidia-cuda-cuobjdump)": the tool's release and where it came from."""
    out = run_tool([path, "--version"])
    m = re.search(r"release [\d.]+, V([\d.]+)", out)
    name = os.path.basename(path)
    where = f"PyPI nvidia-cuda-{name}" if "site-packages" in path else os.path.dirname(path)
    return f"{name} {m.group(1) if m else out.strip().splitlines()[-1]} ({where})"


def find_module() -> str | None:
    """This tree's in-place build (pyconvnet/_C*.so), else the installed package's engine."""
    here = sorted(glob.glob(os.path.join(ROOT, "pyconvnet", "_C*.so")))
    if here:
        return here[0]
    from pyconvnet import _engine
    path = _engine._installed_engine_path()
    return str(path) if path else None


# ----------------------------------------------------------------------------- parsing tool output

@dataclass
class Instr:
    addr: int
    pred: str  # "" or e.g. "@!P0"
    op: str    # with modifiers, e.g. "LDG.E.128"
    args: str

    @property
    def base(self) -> str:
        return self.op.split(".")[0]


@dataclass
class Function:
    name: str        # mangled
    arch: str        # "sm_90"
    source: str      # the .cu file the cubin came from ("" if cuobjdump did not say)
    instrs: list[Instr] = field(default_factory=list)


_INSTR = re.compile(r"^\s*/\*([0-9a-f]+)\*/\s+(@!?U?P[T\d]+\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)\s*([^;]*);")


def parse_sass(text: str) -> list[Function]:
    """Functions of `cuobjdump -sass` output, with the source file named by each ELF's header."""
    funcs, source, arch, cur = [], "", "", None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("identifier ="):
            source = s.split("=", 1)[1].strip()
        elif s.startswith("code for sm_"):
            arch = s.split()[-1]
        elif s.startswith("Function :"):
            cur = Function(s.split(":", 1)[1].strip(), arch, source)
            funcs.append(cur)
        elif cur is not None:
            m = _INSTR.match(line)
            if m:
                cur.instrs.append(Instr(int(m.group(1), 16), (m.group(2) or "").strip(), m.group(3), m.group(4).strip()))
    return funcs


def parse_res_usage(text: str) -> dict[str, dict[str, int]]:
    """{mangled name: {"REG": .., "STACK": .., "SHARED": .., "LOCAL": .., ...}} from `cuobjdump -res-usage`."""
    out, name = {}, None
    for line in text.splitlines():
        m = re.match(r"\s*Function (\S+?):?\s*$", line)
        if m:
            name = m.group(1)
            continue
        if name and "REG:" in line:
            out[name] = {k: int(v) for k, v in re.findall(r"([A-Z]+(?:\[\d+\])?):(\d+)", line)}
            name = None
    return out


def parse_elf(text: str) -> tuple[dict[str, int], list[str]]:
    """({mangled name: __launch_bounds__ max threads}, [compilers]) from `cuobjdump -elf`."""
    bounds, tools, section, tool = {}, [], None, "?"
    lines = text.splitlines()
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith(".nv.info."):
            section = s[len(".nv.info."):]
        elif s.startswith("."):
            section = None
        elif s.endswith("EIATTR_MAX_THREADS"):
            for nxt in lines[i + 1:i + 4]:
                m = re.search(r"Value:\s*((?:0x[0-9a-f]+\s*)+)", nxt)
                if m and section:
                    bounds[section] = math.prod(int(v, 16) for v in m.group(1).split())
                    break
        elif s.startswith("Tool Name:"):
            tool = s.split(":", 1)[1].strip()
        elif s.startswith("Tool Version:"):
            version = re.sub(r".*release [\d.]+, V", "", s.split(":", 1)[1].strip())
            if f"{tool} {version}" not in tools:
                tools.append(f"{tool} {version}")
    return bounds, tools


def kernel_basename(mangled: str) -> str:
    """The unqualified name of a kernel from its Itanium-mangled name (_ZN3pcn4cuda12gemm_kernel1E...
    -> gemm_kernel1); an unmangled (extern "C") name as it is."""
    if not mangled.startswith("_Z"):
        return mangled
    nested = mangled.startswith("_ZN")
    rest, name = mangled[3 if nested else 2:].lstrip("L"), mangled
    while m := re.match(r"\d+", rest):  # <length><identifier>, outermost namespace first
        n = int(m.group(0))
        name, rest = rest[m.end():m.end() + n], rest[m.end() + n:]
        if not nested:
            break
    return name


PASSES = ("fprop", "dgrad", "wgrad")
# The sources of the convolution and linear layer kernels, whose names must carry a pass.
PASS_SOURCES = re.compile(r"^(conv2d|gemm|linear)\w*\.cuh?$")


def kernel_pass(base: str) -> str:
    """"fprop", "dgrad" or "wgrad" when a kernel's unqualified name carries its pass as a word
    between underscores (gemm3_wgrad_kernel, conv2d_fprop_taps_kernel3), else ""."""
    found = [p for p in PASSES if re.search(rf"(^|_){p}(_|$)", base)]
    return found[0] if len(found) == 1 else ""


def demangle(names: list[str]) -> dict[str, str]:
    """Readable names via c++filt (binutils) when it is there: the template arguments without
    namespaces, no parameter list; else the unqualified name."""
    out = {n: kernel_basename(n) for n in names}
    filt = shutil.which("c++filt")
    if not filt or not names:
        return out
    try:
        full = subprocess.run([filt], input="\n".join(names), capture_output=True, text=True,
                              timeout=60).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return out
    for n, d in zip(names, full):
        d = re.sub(r"\b\w+::|\(anonymous namespace\)::", "", d)
        d = re.sub(r"^void ", "", d)
        depth, cut = 0, len(d)
        for i, ch in enumerate(d):  # drop the parameter list: the first '(' outside template arguments
            depth += ch == "<"
            depth -= ch == ">"
            if ch == "(" and depth == 0:
                cut = i
                break
        out[n] = d[:cut].replace("(bool)0", "false").replace("(bool)1", "true")
    return out


# ----------------------------------------------------------------------------- block size from the launch code

def _split_args(s: str) -> list[str]:
    """Top-level comma-separated arguments of a call whose '(' has been consumed, up to its ')'."""
    args, depth, cur = [], 0, ""
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                args.append(cur.strip())
                return args
            depth -= 1
        if ch == "," and depth == 0:
            args.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return args


def _constants(text: str) -> dict[str, str]:
    """{name: expression} of the integer constexpr declarations in C++ source (several
    declarators per statement too: `constexpr int kTileM = 64, kTileN = 64;`)."""
    out = {}
    for decls in re.findall(r"\bconstexpr\s+(?:unsigned|signed|int|long|size_t|\s)+\s([^;{}()]+);", text):
        for d in decls.split(","):
            m = re.fullmatch(r"\s*(\w+)\s*=\s*(.+?)\s*", d)
            if m:
                out[m.group(1)] = m.group(2)
    return out


def eval_block(expr: str, consts: dict[str, str], depth: int = 0) -> int | None:
    """The value of a launch's block expression: integers and constexpr names combined with
    + - * / and dim3(x, y, z) (the product); None if it is not such a constant."""
    expr = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]+\b", r"\1", expr.strip())
    try:
        tree = ast.parse(expr, mode="eval").body
    except SyntaxError:
        return None

    def ev(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name) and node.id in consts and depth < 8:
            return eval_block(consts[node.id], consts, depth + 1)
        if isinstance(node, ast.BinOp):
            a, b = ev(node.left), ev(node.right)
            if a is None or b is None:
                return None
            if isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
                return {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}[type(node.op)]
            if isinstance(node.op, (ast.Div, ast.FloorDiv)) and b:
                return a // b  # C++ integer division (of positive sizes)
            return None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dim3":
            vals = [ev(a) for a in node.args]
            return None if None in vals else math.prod(vals)
        return None

    return ev(tree)


def launch_blocks(src_dir: str) -> dict[str, dict[str, list]]:
    """{file name: {kernel base name: [block size or the expression if not constant, ...]}} from
    every PCN_LAUNCH in src_dir's .cu and .cuh files. Constants come from the launching file
    first, then the headers."""
    files = sorted(glob.glob(os.path.join(src_dir, "*.cu")) + glob.glob(os.path.join(src_dir, "*.cuh")))
    texts = {os.path.basename(f): open(f).read() for f in files}
    header_consts = {}
    for name, text in texts.items():
        if name.endswith(".cuh"):
            header_consts.update(_constants(text))
    out = {}
    for name, text in texts.items():
        consts = {**header_consts, **_constants(text)}
        text = re.sub(r"//[^\n]*", "", text)
        for m in re.finditer(r"\bPCN_LAUNCH\s*\(", text):
            if text[:m.start()].rstrip().endswith("define"):
                continue
            args = _split_args(text[m.end():])
            if len(args) < 4:
                continue
            kernel = re.sub(r"<.*", "", args[0].strip("() ")).split("::")[-1].strip()
            block = eval_block(args[2], consts)
            out.setdefault(name, {}).setdefault(kernel, []).append(block if block is not None else args[2])
    return out


def block_size(func: Function, base: str, launches: dict, bounds: dict) -> tuple[int | None, str]:
    """(threads per block, how it was found) for one kernel."""
    sites = launches.get(os.path.basename(func.source), {}).get(base)
    if sites is None:  # launched from a header (a template's launcher)
        sites = next((k[base] for f, k in launches.items() if f.endswith(".cuh") and base in k), [])
    values, lb = set(sites), bounds.get(func.name)
    if len(values) == 1 and isinstance(sites[0], int):
        over = f", over __launch_bounds__({lb})!" if lb and sites[0] > lb else ""
        return sites[0], "launch" + over
    if lb:
        return lb, "lb"
    if not sites:
        return None, "no PCN_LAUNCH found"
    return None, ("several: " if len(values) > 1 else "not constant: ") + ", ".join(sorted(map(str, values)))


# ----------------------------------------------------------------------------- control flow and loops

_TERMINATORS = {"EXIT", "RET", "BRX", "JMX", "BPT", "KILL"}
_JUMPS = {"BRA", "JMP"}


def _target(ins: Instr) -> int | None:
    m = re.findall(r"0x([0-9a-f]+)", ins.args)
    return int(m[-1], 16) if m else None


def _conditional(ins: Instr) -> bool:
    return (ins.pred not in ("", "@PT")) or "," in ins.args  # BRA.U !UP0, 0x..; BRA.DIV UR4, 0x..


def basic_blocks(instrs: list[Instr]):
    """(blocks as (first, end) index ranges, successors per block) for the instructions of one
    function. Calls fall through; indirect branches end a block with no known successor."""
    index = {ins.addr: i for i, ins in enumerate(instrs)}
    starts = {0}
    for i, ins in enumerate(instrs):
        if ins.base in _JUMPS and _target(ins) in index:
            starts.add(index[_target(ins)])
        if ins.base in _JUMPS or ins.base in _TERMINATORS:
            starts.add(i + 1)
    starts = sorted(s for s in starts if s < len(instrs))
    blocks = [(s, e) for s, e in zip(starts, starts[1:] + [len(instrs)])]
    block_of = {s: b for b, (s, _) in enumerate(blocks)}
    succ = []
    for b, (s, e) in enumerate(blocks):
        last, nxt = instrs[e - 1], ([b + 1] if b + 1 < len(blocks) else [])
        if last.base in _JUMPS:
            t = index.get(_target(last))
            out = [block_of[t]] if t is not None else []
            succ.append(out + (nxt if _conditional(last) else []))
        elif last.base in _TERMINATORS:
            succ.append(nxt if last.pred not in ("", "@PT") else [])
        else:
            succ.append(nxt)
    return blocks, succ


def reachable(succ) -> set[int]:
    """The blocks reachable from block 0 (the entry)."""
    reach, stack = {0}, [0]
    while stack:
        for t in succ[stack.pop()]:
            if t not in reach:
                reach.add(t)
                stack.append(t)
    return reach


def natural_loops(succ) -> list[set[int]]:
    """The natural loops (sets of block indices, header included) of the graph reachable from
    block 0; loops with the same header are merged."""
    reach = reachable(succ)
    pred = {b: [a for a in reach if b in succ[a]] for b in reach}
    order = sorted(reach)
    dom = {b: set(reach) for b in reach}
    dom[0] = {0}
    changed = True
    while changed:
        changed = False
        for b in order[1:]:
            new = set.intersection(*(dom[p] for p in pred[b])) | {b} if pred[b] else {b}
            if new != dom[b]:
                dom[b], changed = new, True
    loops: dict[int, set[int]] = {}
    for a in order:
        for h in succ[a]:
            if h in dom[a]:  # back edge a -> h
                body, work = loops.setdefault(h, {h}), [a]
                while work:
                    x = work.pop()
                    if x not in body:
                        body.add(x)
                        work += pred[x]
    return list(loops.values())


@dataclass
class Loop:
    instrs: list[Instr]
    ranges: list[tuple[int, int]]  # address ranges of its blocks, merged
    whole_kernel: bool = False


def hot_loop(func: Function) -> Loop | None:
    """The kernel's hot loop by the rule in the module docstring (None for an empty function)."""
    if not func.instrs:
        return None
    blocks, succ = basic_blocks(func.instrs)
    loops = natural_loops(succ)
    innermost = [l for l in loops if not any(o is not l and o < l for o in loops)]

    def body(l):
        return [ins for b in sorted(l) for ins in func.instrs[blocks[b][0]:blocks[b][1]]]

    if innermost:
        best = max(innermost, key=lambda l: (sum(i.base == "FFMA" for i in body(l)), len(body(l))))
    else:
        best = reachable(succ)
    ranges = []
    for b in sorted(best):
        s, e = func.instrs[blocks[b][0]].addr, func.instrs[blocks[b][1] - 1].addr
        if ranges and blocks[b][0] > 0 and func.instrs[blocks[b][0] - 1].addr == ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], e)
        else:
            ranges.append((s, e))
    return Loop(body(best), ranges, not innermost)


# ----------------------------------------------------------------------------- instruction mix

_TENSOR = {"HMMA", "IMMA", "DMMA", "BMMA", "HGMMA", "IGMMA", "QGMMA", "BGMMA"}
_SHARED_LOADS = {"LDS", "LDSM"}
_GLOBAL_LOADS = {"LDG", "LDGSTS", "LD"}


def _mma_flops(op: str) -> int | None:
    """FLOPs of one warp-level HMMA/IMMA/DMMA from its shape modifier: HMMA.16816 -> 2*16*8*16."""
    m = re.search(r"\.(16|8)(8)(\d+)\b", op)
    return 2 * int(m.group(1)) * int(m.group(2)) * int(m.group(3)) if m else None


def instruction_mix(instrs: list[Instr], sm: SmLimits = H200) -> dict:
    ops = Counter(i.base for i in instrs)
    n = len(instrs)
    tc = dict(Counter(i.op for i in instrs if i.base in _TENSOR))
    tc_count = sum(tc.values())
    math_count = ops["FFMA"] + ops["FADD"] + ops["FMUL"] + tc_count
    lds = sum(ops[o] for o in _SHARED_LOADS)
    ldg = sum(ops[o] for o in _GLOBAL_LOADS)
    share = ops["FFMA"] / n if n else 0.0
    flops = {op: _mma_flops(op) for op in tc}
    tc_ceiling = (sum(flops[op] * c for op, c in tc.items()) / n * sm.issue_rate
                  if tc and None not in flops.values() else None)
    return {
        "instructions": n, "ffma": ops["FFMA"], "ffma_share": share, "fadd": ops["FADD"], "fmul": ops["FMUL"],
        "tensor": tc, "math": math_count, "shared_loads": lds, "global_loads": ldg,
        "shared_loads_per_math": lds / math_count if math_count else None,
        "global_loads_per_math": ldg / math_count if math_count else None,
        "ffma_ceiling_flops": share * sm.fp32_peak, "tensor_ceiling_flops": tc_ceiling,
        "top": ops.most_common(12),
    }


# ----------------------------------------------------------------------------- the report

def analyse(module: str, cuobjdump: str, nvdisasm_dir: str, src_dir: str, arch: str = "sm_90") -> dict:
    env = dict(os.environ, PATH=nvdisasm_dir + os.pathsep + os.environ.get("PATH", ""))
    try:
        sass = run_tool([cuobjdump, "-sass", module], env)
    except RuntimeError as e:
        if "does not contain device code" not in str(e):
            raise
        raise RuntimeError(f"{module} holds no device code (a CPU-only build); {BUILD_HINT}") from None
    funcs = [f for f in parse_sass(sass) if f.arch == arch]
    if not funcs:
        archs = ", ".join(sorted({f.arch for f in parse_sass(sass)})) or "none"
        raise RuntimeError(f"{module} holds no {arch} SASS (it has: {archs}); {BUILD_HINT} for {arch}")
    usage = parse_res_usage(run_tool([cuobjdump, "-res-usage", module], env))
    bounds, compilers = parse_elf(run_tool([cuobjdump, "-elf", module], env))
    launches = launch_blocks(src_dir)
    names = demangle([f.name for f in funcs])
    kernels = []
    for f in funcs:
        base = kernel_basename(f.name)
        u = usage.get(f.name, {})
        # On sm_90 cuobjdump's SHARED counts the 1 KiB system reservation at the start of the
        # block's shared window when the kernel has shared variables (they are addressed from
        # 0x400; ptxas -v reports 4352 bytes for the GEMM tiles, cuobjdump 5376).
        shared = max(0, u.get("SHARED", 0) - H200.smem_reserved) if u.get("SHARED") else 0
        threads, how = block_size(f, base, launches, bounds)
        occ = blocks_per_sm(u.get("REG", 0), shared, threads) if threads else None
        loop = hot_loop(f)
        local_ops = sum(i.base in ("LDL", "STL") for i in f.instrs)
        kernels.append({
            "name": names[f.name], "mangled": f.name, "source": os.path.basename(f.source),
            "pass": kernel_pass(base),
            "registers": u.get("REG"), "shared_static": shared, "shared_cuobjdump": u.get("SHARED"),
            "stack": u.get("STACK"),
            "local": u.get("LOCAL"), "ldl_stl": local_ops, "launch_bounds": bounds.get(f.name),
            "block": threads, "block_from": how,
            "blocks_per_sm": occ[0] if occ else None, "limited_by": occ[1] if occ else None,
            "warps_per_sm": occ[0] * -(-threads // 32) if occ else None,
            "instructions": len(f.instrs),
            "hot_loop": None if loop is None else {
                "ranges": [f"0x{a:04x}-0x{b:04x}" for a, b in loop.ranges], "whole_kernel": loop.whole_kernel,
                **instruction_mix(loop.instrs)},
            "_loop": loop,
        })
    kernels.sort(key=lambda k: (k["source"], k["name"]))
    return {"module": module, "arch": arch, "compilers": compilers, "kernels": kernels, "sm": H200.name,
            "fp32_peak": H200.fp32_peak}


def _fmt(x, spec, none="-"):
    return none if x is None else format(x, spec)


def format_report(rep: dict) -> list[str]:
    sm = H200
    w = max(12, max(len(k["name"]) for k in rep["kernels"]))
    out = [
        f"# pyconvnet static kernel report: {len(rep['kernels'])} kernels, {rep['arch']} SASS, "
        f"occupancy and ceilings for an {rep['sm']}",
        f"# date: {rep['date']}   commit: {rep['commit']}",
        f"# module: {rep['module']}",
        f"# compiled by: {'; '.join(rep['compilers']) or 'unknown'}",
        f"# tools: {rep['tools']}",
        *(f"# note: {n}" for n in rep.get("notes", [])),
        f"# per SM: {sm.regs_per_sm // 1024}K registers (per warp in units of {sm.reg_unit}, {sm.sub_partitions} "
        f"sub-partitions), {sm.smem_per_sm >> 10} KiB shared ({sm.smem_per_block >> 10} KiB per block, "
        f"+{sm.smem_reserved >> 10} KiB reserved per block), {sm.threads_per_sm} threads, {sm.blocks_per_sm} blocks",
        f"# ceiling: FFMA share x FP32 peak ({sm.fp32_peak / 1e12:.1f} TFLOP/s: {sm.fp32_peak_how.split(';')[0]}): "
        "one warp instruction per sub-partition per cycle",
        "# hot loop: the innermost loop with the most FFMA (else the largest); counts are static, per iteration",
        "# columns: pass (fprop/dgrad/wgrad, from the name) | regs | local = LDL+STL instructions (spills) | smem = static shared bytes (+1 KiB per block "
        "reserved, counted in blocks/SM) | block = threads "
        "(launch: PCN_LAUNCH in cuda/; lb: __launch_bounds__) | blocks/SM (limit) | hot loop instructions, FFMA "
        "share, tensor-core instructions, shared and global loads per math instruction | ceiling",
        "",
        f"{'kernel':<{w}}  {'file':<11} {'pass':<5} {'regs':>4} {'local':>5} {'smem':>6} {'block':>11} {'blocks/SM':>16} | "
        f"{'loop':>5} {'FFMA':>6} {'TC':>4} {'LDS/math':>8} {'LDG/math':>8} | ceiling",
    ]
    for k in rep["kernels"]:
        h = k["hot_loop"] or {}
        local = str(k["ldl_stl"]) if k["ldl_stl"] or k["local"] else "0"
        block = f"{k['block']} {'lb' if k['block_from'] == 'lb' else 'launch'}" if k["block"] else "?"
        occ = f"{k['blocks_per_sm']} ({k['limited_by']})" if k["blocks_per_sm"] is not None else "?"
        tc = sum(h.get("tensor", {}).values()) if h else 0
        ceil = (f"{100 * h['ffma_share']:.0f}% = {h['ffma_ceiling_flops'] / 1e12:.1f} TFLOP/s" if h.get("ffma") else "-")
        if h.get("tensor_ceiling_flops"):
            ceil += f"; tensor {h['tensor_ceiling_flops'] / 1e12:.0f} TFLOP/s"
        loop = ("all " if h.get("whole_kernel") else "") + str(h.get("instructions", "-"))
        out.append(f"{k['name']:<{w}}  {k['source']:<11} {k['pass'] or '-':<5} {_fmt(k['registers'], 'd', '?'):>4} {local:>5} "
                   f"{_fmt(k['shared_static'], 'd', '?'):>6} {block:>11} {occ:>16} | {loop:>5} "
                   f"{100 * h.get('ffma_share', 0):>5.1f}% {tc:>4} {_fmt(h.get('shared_loads_per_math'), '.2f'):>8} "
                   f"{_fmt(h.get('global_loads_per_math'), '.2f'):>8} | {ceil}")
    passless = [k["name"] for k in rep["kernels"] if PASS_SOURCES.match(k["source"]) and not k["pass"]]
    if passless:
        out += ["", "convolution/linear kernels without fprop/dgrad/wgrad in their name: " + "; ".join(passless)]
    unknown = [k for k in rep["kernels"] if not k["block"]]
    if unknown:
        out += ["", "block size unknown (no occupancy): " + "; ".join(f"{k['name']}: {k['block_from']}" for k in unknown)]
    out += ["", "## Hot loops (address ranges in the SASS; the most frequent opcodes)", ""]
    for k in rep["kernels"]:
        h = k["hot_loop"]
        if not h:
            continue
        where = "whole kernel (no loop)" if h["whole_kernel"] else ", ".join(h["ranges"])
        extra = (f"; local memory {k['local']} B/thread, stack {k['stack']} B" if k["local"] or k["ldl_stl"] else "")
        out.append(f"{k['name']}: {where}: {h['instructions']} instructions, {h['ffma']} FFMA, "
                   f"{h['shared_loads']} shared + {h['global_loads']} global loads{extra}")
        out.append("    " + " ".join(f"{op} {c}" for op, c in h["top"]))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--module", help="the compiled engine (default: pyconvnet/_C*.so of this tree, else the installed one)")
    ap.add_argument("--src", default=os.path.join(ROOT, "cuda"), help="the kernels' sources, for the block sizes (default: cuda/)")
    ap.add_argument("--json", help="also write everything as JSON to this file")
    ap.add_argument("--show", metavar="REGEX", help="print the hot loop's SASS of the kernels whose name matches")
    a = ap.parse_args(argv)

    cuobjdump, nvdisasm = find_tool("cuobjdump"), find_tool("nvdisasm")
    if not cuobjdump or not nvdisasm:
        missing = " and ".join(n for n, p in (("cuobjdump", cuobjdump), ("nvdisasm", nvdisasm)) if not p)
        sys.exit(f"kernel_report: {missing} not found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin, or the "
                 f"nvidia-cuda-* packages in this Python). Install them with: {INSTALL_HINT}")
    module = a.module or find_module()
    if not module or not os.path.isfile(module):
        sys.exit(f"kernel_report: no compiled engine found{' at ' + module if module else ''}; {BUILD_HINT}")
    try:
        rep = analyse(module, cuobjdump, os.path.dirname(nvdisasm), a.src)
        rep["tools"] = f"{tool_version(cuobjdump)}, {tool_version(nvdisasm)}"
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        sys.exit(f"kernel_report: {e}")
    rep["date"], rep["commit"] = bench_common.now_utc(), bench_common.commit()
    rep["module"] = os.path.relpath(module, ROOT) if module.startswith(ROOT + os.sep) else module
    newer = [os.path.basename(f) for f in sorted(glob.glob(os.path.join(a.src, "*.cu*")))
             if os.path.getmtime(f) > os.path.getmtime(module)]
    rep["notes"] = [f"newer than the module (rebuild to see them): {', '.join(newer)}"] if newer else []
    for line in format_report(rep):
        print(line)
    if a.show:
        for k in rep["kernels"]:
            if k["_loop"] and re.search(a.show, k["name"]):
                print(f"\n## {k['name']}: hot loop")
                for i in k["_loop"].instrs:
                    print(f"  /*{i.addr:04x}*/ {i.pred:>6} {i.op} {i.args}")
    if a.json:
        for k in rep["kernels"]:
            k.pop("_loop")
        bench_common.write_json(a.json, rep)


if __name__ == "__main__":
    main()
