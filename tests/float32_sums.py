"""The comparison helper of the convolution and linear tests: a float32 result that is a sum of
products, against the float64 reference, with a tolerance derived from the sum's length.

Why this tolerance. Each output of conv2d / linear and of their gradients is a sum of n
products of float32 values (n = C/groups*R*S for conv2d's y, in-features for linear's y, the
batch times the output pixels for dw, ...). The reference sees exactly the same float32 inputs,
so the only error is float32 rounding of the products and of the running sums. Its worst-case
bound is about n*u*sum|terms| (u = eps/2), but independent roundings add up like a random walk,
and with high probability the error stays below lambda*sqrt(n)*u*sum|terms| (Higham & Mary,
"A new approach to probabilistic rounding error analysis", SIAM J. Sci. Comput. 2019). We take
lambda = 8, i.e. atol = 4*sqrt(n)*eps*max(sum|terms|), where sum|terms| is computed exactly, by
the reference applied to the absolute values of the inputs. rtol = 2*eps covers the final
rounding of the output and of a bias added to it. For conv3 (n = 2304, unit normal inputs) this
is atol ~ 0.03 on outputs of size ~50: 6e-4 relative; a kernel that drops or repeats a single
tap or pixel misses by far more.
"""
from __future__ import annotations

import numpy as np

from helpers import assert_close

EPS32 = float(np.finfo(np.float32).eps)


def _fp32_atol(abs_sum, n_terms):
    abs_sum = np.asarray(abs_sum)
    scale = float(abs_sum.max()) if abs_sum.size else 0.0
    # Never 0: where every term is 0 the result must be exactly 0, and 0/0 would read as a miss.
    return max(4.0 * np.sqrt(max(n_terms, 1)) * EPS32 * scale, float(np.finfo(np.float32).tiny))


def assert_sum_close(actual, expected, abs_sum, n_terms, what):
    """assert_close with atol = 4*sqrt(n_terms)*eps32*max(abs_sum) and rtol = 2*eps32 (above)."""
    return assert_close(actual, expected, rtol=2 * EPS32, atol=_fp32_atol(abs_sum, n_terms), what=what)


# ---------------------------------------------------------------------------------------- TF32
U_TF32 = 2.0 ** -11  # TF32's unit roundoff: 10 stored mantissa bits, round to nearest


def tf32_atol(sq_sum):
    """The operand-rounding part of a TF32 kernel's tolerance, per output (docs/kernels_tc.md).

    A TF32 kernel rounds both factors of every term t_i = x_i y_i to TF32 before the tensor core
    multiplies them exactly and sums in FP32: it sums t_i (1 + d_i) with
    |d_i| <= 2 u + u^2 = b, u = 2^-11. The FP32 sum's own rounding is covered by assert_sum_close's
    tolerance; the operand rounding adds sum_i t_i d_i. Its worst case, b * sum|t_i|, is about
    1e-3 of the output's scale whatever the length n, too loose to see a dropped or repeated term
    of a long sum. But the d_i are independent and centred (round to nearest of unrelated
    inputs), so by Hoeffding's inequality |sum_i t_i d_i| <= lambda * b * sqrt(sum_i t_i^2) with
    probability at least 1 - 2 exp(-lambda^2 / 2); we take lambda = 8 as for FP32 (2e-14 per
    element). sum t_i^2 is computed exactly, by the reference applied to the squared inputs. For
    unit normal inputs sqrt(sum t^2) ~ sqrt(n), so the bound grows with sqrt(n) like the FP32 one
    but 2^13 times larger: conv3 (n = 2304) ~ 0.4 on outputs of size ~50, still under the size of
    one typical term.
    """
    b = 2 * U_TF32 + U_TF32 ** 2
    return 8.0 * b * np.sqrt(np.asarray(sq_sum, np.float64))


def assert_products_close(actual, expected, abs_sum, sq_sum, n_terms, precision, what):
    """assert_sum_close for a kernel of `precision` ("fp32", "tf32", "3xtf32"): FP32 and 3xTF32
    kernels get the FP32 tolerance unchanged; TF32 kernels add tf32_atol(sq_sum) per element."""
    if precision != "tf32":
        return assert_sum_close(actual, expected, abs_sum, n_terms, what)
    return assert_close(actual, expected, rtol=2 * EPS32, atol=_fp32_atol(abs_sum, n_terms) + tf32_atol(sq_sum),
                        what=f"{what} (tf32)")
