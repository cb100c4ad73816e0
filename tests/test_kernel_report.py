"""benchmarks/kernel_report.py reads the built module's SASS with NVIDIA's tools; here its parsers,
loop finder, occupancy model and launch-code reader run on small canned inputs (no nvcc, no
cuobjdump, no GPU)."""
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import kernel_report as kr  # noqa: E402

# cuobjdump -sass layout: an outer loop (0x40-0x120) around two inner loops, one with FFMA
# (0x70-0xb0), a longer one without (0xc0-0x110); a cold block (0x150) that jumps back to the
# epilogue (a backward branch that is no loop), and the trap loop after EXIT.
SASS = """
Fatbin elf code:
================
arch = sm_90
identifier = /src/cuda/toy.cu

	code for sm_90
		Function : _ZN3pcn4cuda11toy_kernel1EPKfPfi
	.headerflags	@"EF_CUDA_SM90 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
        /*0000*/                   LDC R1, c[0x0][0x28] ;                /* 0x00000a00ff017b82 */
                                                                         /* 0x000fe20000000800 */
        /*0010*/                   S2R R0, SR_TID.X ;                    /* 0x0000000000007919 */
        /*0020*/               @P4 BRA 0x150 ;                           /* 0x0000000000007947 */
        /*0030*/               @P0 EXIT ;                                /* 0x000000000000094d */
        /*0040*/                   LDG.E R2, desc[UR4][R4.64] ;          /* 0x0000000404027981 */
        /*0050*/                   STS [R6], R2 ;                        /* 0x0000000206007388 */
        /*0060*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;         /* 0x0000000000007b1d */
        /*0070*/                   LDS R8, [R7] ;                        /* 0x0000000007087984 */
        /*0080*/                   FFMA R9, R8, R8, R9 ;                 /* 0x0000000808097223 */
        /*0090*/                   FFMA R10, R8, R2, R10 ;               /* 0x00000002080a7223 */
        /*00a0*/                   IADD3 R7, R7, 0x4, RZ ;               /* 0x0000000407077810 */
        /*00b0*/              @!P1 BRA 0x70 ;                            /* 0xfffffffc00009947 */
        /*00c0*/                   IADD3 R11, R11, 0x1, RZ ;             /* 0x000000010b0b7810 */
        /*00d0*/                   IADD3 R12, R12, 0x1, RZ ;             /* 0x000000010c0c7810 */
        /*00e0*/                   IADD3 R14, R14, 0x1, RZ ;             /* 0x000000010e0e7810 */
        /*00f0*/                   IADD3 R15, R15, 0x1, RZ ;             /* 0x000000010f0f7810 */
        /*0100*/                   ISETP.NE.AND P2, PT, R11, R13, PT ;   /* 0x0000000d0b00720c */
        /*0110*/               @P2 BRA 0xc0 ;                            /* 0xfffffffc00002947 */
        /*0120*/              @!P3 BRA 0x40 ;                            /* 0xfffffffc00003947 */
        /*0130*/                   STG.E desc[UR4][R4.64], R9 ;          /* 0x0000000904007986 */
        /*0140*/                   EXIT ;                                /* 0x000000000000794d */
        /*0150*/                   MOV R9, RZ ;                          /* 0x000000ff00097202 */
        /*0160*/                   BRA 0x130 ;                           /* 0xfffffffc00007947 */
        /*0170*/                   BRA 0x170;                            /* 0xfffffffc00fc7947 */
        /*0180*/                   NOP;                                  /* 0x0000000000007918 */
		..........
		Function : _ZN3pcn4cuda39_GLOBAL__N__b0150d8f_10_toy_cu_6b5a5d5312flat_kernel1EPKf
	.headerflags	@"EF_CUDA_SM90 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
        /*0000*/                   LDG.E R2, desc[UR4][R4.64] ;          /* 0x0000000404027981 */
        /*0010*/                   HMMA.1688.F32.TF32 R8, R2, R4, R8 ;   /* 0x0000000402087223 */
        /*0020*/                   EXIT ;                                /* 0x000000000000794d */
        /*0030*/                   BRA 0x30;                             /* 0xfffffffc00fc7947 */
"""


def test_sass_is_parsed_by_function_with_its_source():
    funcs = kr.parse_sass(SASS)
    assert [(kr.kernel_basename(f.name), f.arch, f.source) for f in funcs] == [
        ("toy_kernel1", "sm_90", "/src/cuda/toy.cu"), ("flat_kernel1", "sm_90", "/src/cuda/toy.cu")]
    toy = funcs[0]
    assert len(toy.instrs) == 25 and toy.instrs[2].pred == "@P4" and toy.instrs[2].op == "BRA"
    assert toy.instrs[-1].op == "NOP" and toy.instrs[4].op == "LDG.E" and toy.instrs[4].base == "LDG"


def test_hot_loop_is_the_innermost_loop_with_the_most_ffma():
    toy = kr.parse_sass(SASS)[0]
    blocks, succ = kr.basic_blocks(toy.instrs)
    loops = kr.natural_loops(succ)
    heads = sorted(toy.instrs[blocks[min(l)][0]].addr for l in loops)
    assert heads == [0x40, 0x70, 0xc0]  # the cold block's jump back to 0x130 and the trap are no loops
    loop = kr.hot_loop(toy)
    assert loop.ranges == [(0x70, 0xb0)] and not loop.whole_kernel
    mix = kr.instruction_mix(loop.instrs)
    assert (mix["instructions"], mix["ffma"], mix["shared_loads"], mix["global_loads"]) == (5, 2, 1, 0)
    assert mix["ffma_share"] == pytest.approx(0.4)
    assert mix["shared_loads_per_math"] == pytest.approx(0.5) and mix["global_loads_per_math"] == 0
    assert mix["ffma_ceiling_flops"] == pytest.approx(0.4 * 132 * 128 * 2 * 1.98e9)
    assert mix["tensor"] == {} and mix["tensor_ceiling_flops"] is None


def test_without_ffma_the_largest_innermost_loop_is_hot_and_without_loops_the_kernel():
    no_ffma = kr.Function("f", "sm_90", "", [i if i.base != "FFMA" else kr.Instr(i.addr, "", "FADD", i.args)
                                             for i in kr.parse_sass(SASS)[0].instrs])
    assert kr.hot_loop(no_ffma).ranges == [(0xc0, 0x110)]
    flat = kr.hot_loop(kr.parse_sass(SASS)[1])
    assert flat.whole_kernel and [i.base for i in flat.instrs] == ["LDG", "HMMA", "EXIT"]
    mix = kr.instruction_mix(flat.instrs)
    assert mix["tensor"] == {"HMMA.1688.F32.TF32": 1} and mix["math"] == 1 and mix["global_loads_per_math"] == 1
    # 3 issue slots per 2*16*8*8 FLOP, 4 slots per cycle per SM
    assert mix["tensor_ceiling_flops"] == pytest.approx(2048 / (3 / 4) * 132 * 1.98e9)


def test_resource_usage_and_elf_attributes():
    usage = kr.parse_res_usage("""
Resource usage:
 Common:
  GLOBAL:0
 Function _ZN3pcn4cuda11toy_kernel1EPKfPfi:
  REG:80 STACK:0 SHARED:5376 LOCAL:8 CONSTANT[0]:792 TEXTURE:0 SURFACE:0 SAMPLER:0
""")
    assert usage == {"_ZN3pcn4cuda11toy_kernel1EPKfPfi": {"REG": 80, "STACK": 0, "SHARED": 5376, "LOCAL": 8,
                                                          "CONSTANT[0]": 792, "TEXTURE": 0, "SURFACE": 0, "SAMPLER": 0}}
    bounds, tools = kr.parse_elf("""
.section .note.nv.tkinfo
	Tool Name: ptxas
	Tool Version: Cuda compilation tools, release 13.0, V13.0.88

.nv.info._ZN3pcn4cuda11toy_kernel1EPKfPfi
	<0x16>
	Attribute:	EIATTR_MAX_THREADS
	Format:	EIFMT_SVAL
	Value:	0x80 0x2 0x1 
	<0x17>
	Attribute:	EIATTR_CRS_STACK_SIZE
""")
    assert bounds == {"_ZN3pcn4cuda11toy_kernel1EPKfPfi": 256}
    assert tools == ["ptxas 13.0.88"]


@pytest.mark.parametrize("regs, smem, threads, blocks, limit", [
    (80, 4352, 256, 3, "regs"),       # 2560 registers per warp: 6 warps per sub-partition
    (64, 4352, 256, 4, "regs"),
    (63, 4352, 256, 4, "regs"),       # rounded up to 64 per thread (256 per warp)
    (32, 0, 256, 8, "threads/regs"),
    (96, 0, 128, 5, "regs"),
    (16, 0, 32, 32, "blocks"),
    (32, 100 << 10, 128, 2, "smem"),  # 101 KiB per block with the reserved KiB, of 228
    (32, 228 << 10, 128, 0, "smem"),  # over the 227 KiB a block may have
    (255, 0, 1024, 0, "regs"),        # 255 x 1024 registers exceed the SM's 64K
])
def test_blocks_per_sm_on_an_h200(regs, smem, threads, blocks, limit):
    assert kr.blocks_per_sm(regs, smem, threads)[:2] == (blocks, limit)


def test_block_sizes_come_from_the_launch_code(tmp_path):
    (tmp_path / "tiles.cuh").write_text("constexpr int kTileM = 64, kThreadsT = 2 * kTileM;\n"
                                        "  PCN_LAUNCH((tile_kernel<A, B>), grid, kThreadsT, 0, s, a, b);\n")
    (tmp_path / "toy.cu").write_text(
        "constexpr int kThreads = 128;  // per block\n"
        "#define PCN_LAUNCH(kernel, grid, block, smem, stream, ...) launch(kernel, grid, block)\n"
        "  PCN_LAUNCH(toy_kernel1, grid_stride_blocks(n, kThreads), kThreads, 0, s, x, y);\n"
        "  // PCN_LAUNCH(old_kernel1, g, 64, 0, s);\n"
        "  PCN_LAUNCH(two_kernel2<1>, g, dim3(32, 4u), 0, s, x);\n"
        "  PCN_LAUNCH(two_kernel2<2>, g, 256, 0, s, x);\n"
        "  PCN_LAUNCH(var_kernel1, g, threads, 0, s, x);\n")
    launches = kr.launch_blocks(str(tmp_path))
    assert launches == {"tiles.cuh": {"tile_kernel": [128]},
                        "toy.cu": {"toy_kernel1": [128], "two_kernel2": [128, 256], "var_kernel1": ["threads"]}}
    f = kr.Function("_ZN3pcn4cuda11tile_kernelI1A1BEEvT_T0_", "sm_90", "/x/toy.cu")
    assert kr.block_size(f, "tile_kernel", launches, {}) == (128, "launch")  # from the header
    f.name = "v"
    assert kr.block_size(f, "var_kernel1", launches, {"v": 512}) == (512, "lb")
    assert kr.block_size(f, "var_kernel1", launches, {}) == (None, "not constant: threads")
    assert kr.block_size(f, "two_kernel2", launches, {})[0] is None
    assert kr.block_size(f, "toy_kernel1", launches, {"v": 64}) == (128, "launch, over __launch_bounds__(64)!")


@pytest.mark.parametrize("mangled, base", [
    ("_ZN3pcn4cuda18gemm2_fprop_kernelINS0_6DenseAILb0EEENS0_6DenseBILb1EEENS0_8DenseOutEEEvT_T0_T1_iiiiii",
     "gemm2_fprop_kernel"),
    ("_ZN3pcn4cuda43_GLOBAL__N__b0150d8f_10_dropout_cu_6b5a5d5324dropout_backward_kernel1EPKfPKhPfxf",
     "dropout_backward_kernel1"),
    ("_Z11toy_kernel1Pf", "toy_kernel1"),
    ("plain_c_kernel", "plain_c_kernel"),
])
def test_kernel_basename(mangled, base):
    assert kr.kernel_basename(mangled) == base


@pytest.mark.parametrize("base, pass_", [
    ("gemm3_wgrad_kernel", "wgrad"), ("gemm2_fprop_kernel", "fprop"), ("conv2d_dgrad_kernel1", "dgrad"),
    ("conv2d_fprop_taps_kernel3", "fprop"), ("splitk_dgrad_reduce_kernel", "dgrad"), ("bias_wgrad_rows_kernel", "wgrad"),
    ("gemm_tf32_dgrad_kernel", "dgrad"), ("gemm_3xtf32_wgrad_kernel", "wgrad"),
    ("relu_forward_kernel1", ""), ("gemm_kernel1", ""), ("fpropx_kernel", ""),
])
def test_kernel_pass_comes_from_the_name(base, pass_):
    assert kr.kernel_pass(base) == pass_


CUDA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cuda")


@pytest.mark.skipif(not os.path.isdir(CUDA), reason="source tree not available (installed package only)")
def test_every_convolution_and_linear_kernel_names_its_pass():
    """Every __global__ function (or pass-named entry point made by a PCN_*_KERNEL macro) in the
    convolution and linear sources carries fprop, dgrad or wgrad, so profiles and this report
    tell the passes apart."""
    names = {}
    for f in sorted(os.listdir(CUDA)):
        if kr.PASS_SOURCES.match(f):
            text = open(os.path.join(CUDA, f)).read()
            text = re.sub(r"//[^\n]*", "", text).replace("\\\n", " ")  # macros on one line
            found = re.findall(r"__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)\s*\(", text)
            found += re.findall(r"^PCN_\w+_KERNEL\((\w+)\)", text, flags=re.M)
            # PCN_GEMM3_KERNELS(prefix) makes prefix_fprop_kernel, prefix_dgrad_kernel, prefix_wgrad_kernel.
            for prefix in re.findall(r"^PCN_\w+_KERNELS\((\w+)\)", text, flags=re.M):
                found += [f"{prefix}_{p}_kernel" for p in kr.PASSES]
            names[f] = [n for n in found if n != "name"]  # a macro's own parameter
    kernels = [n for ns in names.values() for n in ns]
    assert len(kernels) >= 20, names
    for core in ("gemm3", "gemm_tf32", "gemm_3xtf32"):  # the FP32 and tensor-core cores' entry points
        assert {f"{core}_{p}_kernel" for p in kr.PASSES} <= set(kernels), names
    assert [n for n in kernels if not kr.kernel_pass(n)] == []


def test_missing_tools_say_what_to_install(monkeypatch):
    monkeypatch.setattr(kr, "find_tool", lambda name: None if name == "nvdisasm" else "/bin/true")
    with pytest.raises(SystemExit, match=r"nvdisasm not found.*pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm"):
        kr.main([])
