"""The float64 references' backward functions against finite differences of their forwards, and
their forwards against independent formulations (direct sums) on small inputs."""
import numpy as np
import pytest

from pyconvnet import reference as ref
from helpers import assert_close, numeric_grad

FD = dict(rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("stride,padding,groups,kernel", [
    (1, 0, 1, (3, 3)), (2, 1, 2, (3, 2)), (3, 2, 1, (2, 2)), ((2, 1), (0, 1), 3, (1, 3)), (4, 2, 1, (5, 5)),
])
def test_conv2d_backward_matches_finite_differences(rng, stride, padding, groups, kernel):
    c = 2 * groups
    x = rng.standard_normal((2, c, 7, 8))
    w = rng.standard_normal((2 * groups, c // groups, *kernel))
    b = rng.standard_normal(2 * groups)
    y = ref.conv2d(x, w, b, stride, padding, groups)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = ref.conv2d_backward(dy, x, w, stride, padding, groups)
    assert_close(dx, numeric_grad(lambda v: ref.conv2d(v, w, b, stride, padding, groups), x, dy), **FD, what="dx")
    assert_close(dw, numeric_grad(lambda v: ref.conv2d(x, v, b, stride, padding, groups), w, dy), **FD, what="dw")
    assert_close(db, numeric_grad(lambda v: ref.conv2d(x, w, v, stride, padding, groups), b, dy), **FD, what="db")


def test_conv2d_forward_matches_direct_sum(rng):
    x, w, b = rng.standard_normal((2, 4, 6, 5)), rng.standard_normal((6, 2, 3, 2)), rng.standard_normal(6)
    s, p, g = 2, 1, 2
    y = ref.conv2d(x, w, b, s, p, g)
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    direct = np.zeros_like(y)
    for n in range(2):
        for k in range(6):
            gi = k // 3
            for i in range(y.shape[2]):
                for j in range(y.shape[3]):
                    win = xp[n, gi * 2:gi * 2 + 2, i * s:i * s + 3, j * s:j * s + 2]
                    direct[n, k, i, j] = b[k] + np.sum(win * w[k])
    assert_close(y, direct, rtol=1e-12, atol=1e-12)
    assert y.shape == (2, 6, 3, 3)


def test_linear_backward_matches_finite_differences(rng):
    x, w, b = rng.standard_normal((3, 5)), rng.standard_normal((4, 5)), rng.standard_normal(4)
    dy = rng.standard_normal((3, 4))
    dx, dw, db = ref.linear_backward(dy, x, w)
    assert_close(dx, numeric_grad(lambda v: ref.linear(v, w, b), x, dy), **FD)
    assert_close(dw, numeric_grad(lambda v: ref.linear(x, v, b), w, dy), **FD)
    assert_close(db, numeric_grad(lambda v: ref.linear(x, w, v), b, dy), **FD)


def test_relu_backward_matches_finite_differences(rng):
    # Keep away from the kink at 0, where the derivative is undefined.
    x = rng.uniform(0.1, 1.0, (3, 7)) * rng.choice([-1, 1], (3, 7))
    dy = rng.standard_normal(x.shape)
    assert_close(ref.relu_backward(dy, ref.relu(x)), numeric_grad(ref.relu, x, dy), **FD)


@pytest.mark.parametrize("size,groups,channels", [(5, 1, 7), (5, 2, 8), (3, 2, 6), (1, 1, 3), (7, 1, 4)])
def test_lrn_backward_matches_finite_differences(rng, size, groups, channels):
    # Large alpha so the normalisation matters in the gradient.
    kw = dict(size=size, alpha=0.5, beta=0.75, k=2.0, groups=groups)
    x = rng.standard_normal((2, channels, 3, 2)) * 2
    dy = rng.standard_normal(x.shape)
    assert_close(ref.lrn_backward(dy, x, **kw), numeric_grad(lambda v: ref.lrn(v, **kw), x, dy), **FD)


def test_lrn_groups_do_not_mix(rng):
    x = rng.standard_normal((1, 4, 2, 2))
    y = ref.lrn(x, size=5, alpha=1.0, groups=2)
    x2 = x.copy()
    x2[:, 2:] *= 10  # change the second group only
    assert np.array_equal(ref.lrn(x2, size=5, alpha=1.0, groups=2)[:, :2], y[:, :2])


def test_lrn_uses_alpha_over_size(rng):
    x = rng.standard_normal((1, 1, 1, 1))
    y = ref.lrn(x, size=5, alpha=0.5, beta=1.0, k=2.0)
    assert np.allclose(y, x / (2.0 + 0.5 / 5 * x ** 2))


@pytest.mark.parametrize("kernel,stride,h,w", [(3, 2, 7, 9), (2, 2, 6, 6), (3, 1, 5, 4), (2, 3, 8, 7)])
def test_max_pool_backward_matches_finite_differences(rng, kernel, stride, h, w):
    # Distinct values spaced well apart: no ties within eps, so max is differentiable.
    x = rng.permutation(2 * 3 * h * w).reshape(2, 3, h, w).astype(np.float64) * 0.01
    dy = rng.standard_normal(ref.max_pool2d(x, kernel, stride).shape)
    assert_close(ref.max_pool2d_backward(dy, x, kernel, stride),
                 numeric_grad(lambda v: ref.max_pool2d(v, kernel, stride), x, dy, eps=1e-4), **FD)


def test_max_pool_ties_go_to_first_in_scan_order():
    x = np.ones((1, 1, 3, 3))
    dx = ref.max_pool2d_backward(np.ones((1, 1, 1, 1)), x, 3, 2)
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 0, 0] = 1
    assert np.array_equal(dx, expected)


def test_max_pool_taps_are_the_first_maximum_or_nan():
    x = np.array([[0, 2, 1, 2], [2, 0, 2, 1], [-0.0, 0, 0, -0.0], [1, np.nan, -0.0, 0]])
    # Windows 2x2 at stride 2: ties (first 2), a NaN (its first), signed zeros (equal: the first).
    assert ref.max_pool2d_taps(x[None, None], 2, 2).tolist() == [[[[1, 1], [3, 0]]]]
    x = np.array([[0, 5, 1], [4, 5, 9], [7, 8, 6]], np.float64)[None, None]
    assert ref.max_pool2d_taps(x, 3, 1).item() == 5  # r * kernel + c of the 9 at (1, 2)
    assert ref.max_pool2d_taps(x, 1, 1).tolist() == np.zeros((1, 1, 3, 3)).tolist()


def test_max_pool_backward_from_taps():
    # Tap t of window (i, j) is element (i*stride + t // kernel, j*stride + t % kernel); 9 and
    # more select nothing.
    dy = np.array([[1.0, 2.0], [4.0, 8.0]])[None, None]
    taps = np.array([[8, 6], [2, 9]])[None, None]
    dx = ref.max_pool2d_backward_taps(dy, taps, 5, 5, 3, 2)
    expected = np.zeros((1, 1, 5, 5))
    expected[0, 0, 2, 2] = 1 + 2 + 4  # the corner the first three windows share
    assert np.array_equal(dx, expected)


def test_dropout_backward_matches_finite_differences(rng):
    x = rng.standard_normal((4, 6))
    mask = rng.random(x.shape) > 0.3
    dy = rng.standard_normal(x.shape)
    assert_close(ref.dropout_backward(dy, mask, 0.3), numeric_grad(lambda v: ref.dropout(v, mask, 0.3), x, dy), **FD)


def test_cross_entropy_gradient_matches_finite_differences(rng):
    logits = rng.standard_normal((5, 7)) * 3
    labels = rng.integers(0, 7, 5)
    _, d = ref.cross_entropy(logits, labels)
    num = numeric_grad(lambda v: np.array(ref.cross_entropy(v, labels)[0]), logits, np.array(1.0))
    assert_close(d, num, **FD)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]])
    loss, d = ref.cross_entropy(logits, np.array([0, 0]))
    assert np.isfinite(loss) and np.all(np.isfinite(d))
    assert np.isclose(loss, (0.0 + 2e4) / 2)


def test_softmax_rows_sum_to_one(rng):
    p = ref.softmax(rng.standard_normal((4, 1000)) * 50)
    assert np.allclose(p.sum(axis=1), 1.0)


def test_sgd_update_is_the_papers_rule(rng):
    w, dw, v = rng.standard_normal((3, 3)), rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    w2, v2 = ref.sgd_update(w, dw, v, lr=0.01, momentum=0.9, weight_decay=0.0005)
    assert np.allclose(v2, 0.9 * v - 0.0005 * 0.01 * w - 0.01 * dw)
    assert np.allclose(w2, w + v2)
