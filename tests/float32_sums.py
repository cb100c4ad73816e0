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


def assert_sum_close(actual, expected, abs_sum, n_terms, what):
    """assert_close with atol = 4*sqrt(n_terms)*eps32*max(abs_sum) and rtol = 2*eps32 (above)."""
    abs_sum = np.asarray(abs_sum)
    scale = float(abs_sum.max()) if abs_sum.size else 0.0
    # Never 0: where every term is 0 the result must be exactly 0, and 0/0 would read as a miss.
    atol = max(4.0 * np.sqrt(max(n_terms, 1)) * EPS32 * scale, float(np.finfo(np.float32).tiny))
    return assert_close(actual, expected, rtol=2 * EPS32, atol=atol, what=what)
