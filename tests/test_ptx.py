"""The inline-PTX wrappers of cuda/ptx.cuh against scalar references, through the check ops
(csrc/kernels/tf32.h): on a GPU the instructions themselves, in the simulator build their twins
(sim/include/pcn_sim_ptx.h), on the CPU the C++ twins. The GPU suite runs this file first.

- tf32_round (cvt.rna.tf32.f32) equals, bit for bit, round-to-nearest with a 10-bit mantissa,
  ties away from zero: computed here twice, on the bits and (normal numbers) in float64;
  infinities and NaNs only lose their 13 low bits.
- mma_m16n8k8_tf32: a full 16x8 product of TF32 inputs equals the float64 product within the
  FP32 accumulation error of 8 exact products and c (|error| <= gamma_9 * (|c| + sum|a||b|),
  gamma_n = n u / (1 - n u), u = 2^-24); integer tiles, exact in FP32, pin every fragment
  position (a wrong lane or register mapping moves a value to another output).
- opaque_pointer (mov.b64) is the identity on its pointer; the convolution loaders of versions 3-5
  read through it, so every conv2d test of those versions (tests/test_conv2d.py) tests it.
"""
import numpy as np
import pytest

import pyconvnet
from pyconvnet import _C

U32 = np.uint32


def tf32_bits(x):
    """The TF32 rounding on the bits: half of the 13 dropped bits' unit added to the magnitude of
    a finite value, the 13 bits cleared (of +-Inf and NaN too: a NaN with a payload only there
    becomes +-Inf, as ptxas compiles cvt.rna.tf32.f32 for sm_90)."""
    u = np.asarray(x, np.float32).view(U32)
    special = (u & U32(0x7F800000)) == U32(0x7F800000)
    out = np.where(special, u, u + U32(0x1000)) & U32(0xFFFFE000)
    return out.astype(U32).view(np.float32)


def tf32_arithmetic(x):
    """The same for normal numbers, in float64: x = m 2^e with 0.5 <= |m| < 1, m rounded to 11
    significant bits with ties away from zero (np.round would round ties to even)."""
    m, e = np.frexp(np.asarray(x, np.float64))
    scaled = m * 2.0 ** 11
    r = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
    return np.ldexp(r, e - 11).astype(np.float32)


def _round_cases(rng):
    ties = (rng.integers(0, 2**19, 64, dtype=np.uint32) << 13 | U32(0x1000)) & U32(0x7F7FFFFF)
    ties[:32] |= U32(0x80000000)
    near = np.concatenate([ties - U32(1), ties + U32(1)])
    special = np.array([0, 0x80000000, 1, 0x1000, 0x1FFF, 0x807FFFFF, 0x00800000, 0x3FFFF000,
                        0x3FFFEFFF, 0x7F7FFFFF, 0xFF7FF000, 0x7F800000, 0xFF800000, 0x7FC00000,
                        0xFFFFFFFF, 0x7F800001], np.uint32)
    values = np.concatenate([ties, near, special]).view(np.float32)
    normal = rng.standard_normal(4000).astype(np.float32) * np.float32(10.0) ** rng.integers(-30, 30, 4000)
    return np.concatenate([values, normal.astype(np.float32)])


def test_tf32_round_matches_the_reference_bit_for_bit(device, rng):
    x = _round_cases(rng)
    want = tf32_bits(x)
    got = _C.tf32_round(pyconvnet.tensor(x, device)).numpy()
    bad = np.flatnonzero(got.view(U32) != want.view(U32))
    assert bad.size == 0, (f"{bad.size} of {x.size} values rounded differently; first: x bits "
                           f"{x[bad[0]].view(U32):#010x}, got {got[bad[0]].view(U32):#010x}, "
                           f"want {want[bad[0]].view(U32):#010x}")


def test_the_two_tf32_references_agree(rng):
    x = _round_cases(rng)
    with np.errstate(over="ignore", invalid="ignore"):
        normal = np.isfinite(x) & (np.abs(x) >= np.finfo(np.float32).tiny) & np.isfinite(tf32_arithmetic(x))
    assert np.array_equal(tf32_bits(x[normal]).view(U32), tf32_arithmetic(x[normal]).view(U32))


def test_tf32_round_rounds_ties_away_from_zero_and_carries(device):
    one_ulp = 2.0 ** -10  # TF32's unit in [1, 2)
    x = np.array([1 + one_ulp / 2, -(1 + one_ulp / 2), 1 + 1.5 * one_ulp, 2 - one_ulp / 2,
                  np.finfo(np.float32).max, -np.inf, np.nan], np.float32)
    got = _C.tf32_round(pyconvnet.tensor(x, device)).numpy()
    assert got[:6].tolist() == [1 + one_ulp, -(1 + one_ulp), 1 + 2 * one_ulp, 2.0, np.inf, -np.inf]
    assert np.isnan(got[6])


def _tiles(rng, t, scale=1.0):
    a = tf32_bits(rng.standard_normal((t, 16, 8)).astype(np.float32) * np.float32(scale))
    b = tf32_bits(rng.standard_normal((t, 8, 8)).astype(np.float32))
    c = rng.standard_normal((t, 16, 8)).astype(np.float32)
    return a, b, c


def _mma(device, a, b, c):
    return _C.mma_m16n8k8_tf32(*(pyconvnet.tensor(np.ascontiguousarray(v), device) for v in (a, b, c))).numpy()


@pytest.mark.parametrize("tiles", [1, 5])
def test_mma_matches_the_float64_product_of_tf32_inputs(device, rng, tiles):
    a, b, c = _tiles(rng, tiles, scale=1e3)
    got = _mma(device, a, b, c)
    a64, b64, c64 = (v.astype(np.float64) for v in (a, b, c))
    want = a64 @ b64 + c64
    bound = np.abs(c64) + np.abs(a64) @ np.abs(b64)
    u = 2.0 ** -24
    gamma9 = 9 * u / (1 - 9 * u)
    err = np.abs(got - want)
    assert (err <= gamma9 * bound).all(), f"worst error {np.max(err / (gamma9 * bound)):.2f}x the FP32 accumulation bound"


def test_mma_fragment_positions(device):
    # Integers below 2^11 are exact in TF32 and every sum below is exact in FP32: a = distinct
    # values, b = the identity (d = a + c, each of a's elements where it belongs), then b
    # distinct against a one-hot a (d's row m = b's row k(m)).
    a = np.arange(16 * 8, dtype=np.float32).reshape(1, 16, 8)
    c = 1000 * np.arange(16 * 8, dtype=np.float32).reshape(1, 16, 8)
    assert np.array_equal(_mma(device, a, np.eye(8, dtype=np.float32)[None], c), a + c)
    b = np.arange(64, dtype=np.float32).reshape(1, 8, 8) + 1
    pick = np.zeros((1, 16, 8), np.float32)
    rows = (np.arange(16) * 3) % 8
    pick[0, np.arange(16), rows] = 1
    assert np.array_equal(_mma(device, pick, b, np.zeros((1, 16, 8), np.float32)), b[:, rows, :])


def test_mma_rejects_bad_shapes(device):
    z = lambda *s: pyconvnet.tensor(np.zeros(s, np.float32), device)  # noqa: E731
    with pytest.raises(ValueError, match=r"mma_m16n8k8_tf32: argument 'b' must have shape \(2, 8, 8\); got \(2, 8, 16\)"):
        _C.mma_m16n8k8_tf32(z(2, 16, 8), z(2, 8, 16), z(2, 16, 8))
    with pytest.raises(ValueError, match=r"mma_m16n8k8_tf32: argument 'a' must have rank 3 \(T, 16, 8\)"):
        _C.mma_m16n8k8_tf32(z(16, 8), z(1, 8, 8), z(1, 16, 8))
