import numpy as np
import pytest

import pyconvnet
from pyconvnet import ops, reference as ref
from helpers import assert_close

# v = m v - wd lr w - lr dw and w + v in float32: a few roundings of O(1) terms, which can cancel,
# so the error is absolute, ~ 4 * 2^-24 * (|v| + |w|) < 1e-6 for standard normal inputs.
TOL = dict(rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(96, 3, 11, 11), (1000,), (7,), (3, 5, 2), (0,)])
def test_sgd_update_matches_reference(device, rng, shape):
    w, v = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    wt, vt = pyconvnet.tensor(w, device), pyconvnet.tensor(v, device)
    w_ref, v_ref = w, v
    for step in range(3):  # a few steps, each on the previous one's outputs
        dw = rng.standard_normal(shape).astype(np.float32)
        assert ops.sgd_update(wt, pyconvnet.tensor(dw, device), vt, lr=0.01) is None
        w_ref, v_ref = ref.sgd_update(w_ref, dw, v_ref, lr=0.01, momentum=0.9, weight_decay=0.0005)
        assert_close(vt, v_ref, **TOL, what=f"v after step {step}")
        assert_close(wt, w_ref, **TOL, what=f"w after step {step}")
        w_ref, v_ref = wt.numpy(), vt.numpy()  # compare each step alone, not the drift


def test_sgd_update_hyperparameters(device, rng):
    w, v, dw = (rng.standard_normal((4, 6)).astype(np.float32) for _ in range(3))
    wt, vt = pyconvnet.tensor(w, device), pyconvnet.tensor(v, device)
    ops.sgd_update(wt, pyconvnet.tensor(dw, device), vt, lr=0.1, momentum=0.5, weight_decay=0.01)
    w_ref, v_ref = ref.sgd_update(w, dw, v, lr=0.1, momentum=0.5, weight_decay=0.01)
    assert_close(vt, v_ref, **TOL)
    assert_close(wt, w_ref, **TOL)


def test_sgd_update_propagates_nan(device):
    w, v = pyconvnet.zeros(4, device=device), pyconvnet.zeros(4, device=device)
    dw = pyconvnet.tensor(np.array([np.nan, 0, 0, 0], np.float32), device)
    ops.sgd_update(w, dw, v, lr=0.01)
    assert np.isnan(w.numpy()[0]) and np.isnan(v.numpy()[0]) and not np.isnan(w.numpy()[1:]).any()


def test_sgd_update_needs_tensors_to_update(device):
    w, v = pyconvnet.zeros(4, device=device), pyconvnet.zeros(4, device=device)
    with pytest.raises(TypeError, match=r"sgd_update: argument 'w' must be a pyconvnet.Tensor \(it is updated in place\); got ndarray"):
        ops.sgd_update(np.zeros(4, np.float32), w, v, lr=0.01)
    with pytest.raises(TypeError, match=r"sgd_update: argument 'v' must be a pyconvnet.Tensor"):
        ops.sgd_update(w, w, np.zeros(4, np.float32), lr=0.01)


def test_sgd_update_rejects_bad_arguments(device):
    w, dw, v = (pyconvnet.zeros(4, device=device) for _ in range(3))
    with pytest.raises(ValueError, match=r"sgd_update: argument 'w' must not share memory with dw or v"):
        ops.sgd_update(w, dw, w, lr=0.01)
    with pytest.raises(ValueError, match=r"sgd_update: argument 'w' must not share memory with dw or v"):
        ops.sgd_update(w, w.reshape(2, 2).reshape(4), v, lr=0.01)
    with pytest.raises(ValueError, match=r"sgd_update: argument 'v' must have shape \(4,\); got \(5,\)"):
        ops.sgd_update(w, dw, pyconvnet.zeros(5, device=device), lr=0.01)
    with pytest.raises(ValueError, match=r"sgd_update: argument 'lr' must be a finite number >= 0; got nan"):
        ops.sgd_update(w, dw, v, lr=float("nan"))
    with pytest.raises(ValueError, match=r"sgd_update: argument 'momentum' must be a finite number >= 0; got -0.9"):
        ops.sgd_update(w, dw, v, lr=0.01, momentum=-0.9)
    with pytest.raises(ValueError, match=r"sgd_update: argument 'weight_decay' must be a finite number >= 0; got inf"):
        ops.sgd_update(w, dw, v, lr=0.01, weight_decay=float("inf"))
