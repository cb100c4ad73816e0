"""float64 NumPy references for every op of the engine, forward and backward.

Written to be obviously right, not fast: loops over kernel taps and windows, no clever
indexing. Every function takes and returns NumPy arrays and computes in float64 whatever dtype it
is given. The tests compare the engine's CPU and CUDA kernels against these, and check these
backward functions against finite differences of these forward functions.

Conventions (the same as the engine's):
- images are NCHW; convolution weights (K, C/groups, R, S); linear weights (out, in);
- convolution is cross-correlation, output size floor((H + 2p - R) / s) + 1;
- LRN uses the alpha/size convention and normalises within channel groups (docs/alexnet.md);
- max-pool sends the gradient to the first maximum of each window in row-major scan order (its
  tap: the window's argmax);
- dropout is inverted: kept units are scaled by 1 / (1 - p);
- SGD: v <- momentum*v - weight_decay*lr*w - lr*dw; w <- w + v.
"""
from __future__ import annotations

import numpy as np


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def _f64(*arrays):
    return [None if a is None else np.asarray(a, dtype=np.float64) for a in arrays]


def conv_output_size(h, r, stride, padding):
    """floor((h + 2*padding - r) / stride) + 1."""
    return (h + 2 * padding - r) // stride + 1


# ---------------------------------------------------------------------------- convolution

def conv2d(x, w, b=None, stride=1, padding=0, groups=1):
    """y[n, k, i, j] = b[k] + sum_{c, r, s} xpad[n, g*Cg + c, i*sh + r, j*sw + s] * w[k, c, r, s],
    where g = k // (K / groups) is the group of output channel k and Cg = C / groups."""
    x, w, b = _f64(x, w, b)
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    n, c, h, wd = x.shape
    k, cg, r, s = w.shape
    if c != cg * groups or k % groups:
        raise ValueError(f"reference.conv2d: C={c} must equal C/groups={cg} * groups={groups}, and K={k} be divisible by groups")
    kg = k // groups
    ho, wo = conv_output_size(h, r, sh, ph), conv_output_size(wd, s, sw, pw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros((n, k, ho, wo))
    for g in range(groups):
        xg = xp[:, g * cg:(g + 1) * cg]
        wg = w[g * kg:(g + 1) * kg]
        for dr in range(r):
            for ds in range(s):
                patch = xg[:, :, dr:dr + sh * (ho - 1) + 1:sh, ds:ds + sw * (wo - 1) + 1:sw]  # (n, cg, ho, wo)
                y[:, g * kg:(g + 1) * kg] += np.einsum("nchw,kc->nkhw", patch, wg[:, :, dr, ds])
    if b is not None:
        y += b[None, :, None, None]
    return y


def conv2d_backward(dy, x, w, stride=1, padding=0, groups=1):
    """(dx, dw, db) of conv2d: the transpose of each tap's contribution in conv2d."""
    dy, x, w = _f64(dy, x, w)
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    n, c, h, wd = x.shape
    k, cg, r, s = w.shape
    kg = k // groups
    ho, wo = dy.shape[2], dy.shape[3]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for g in range(groups):
        dyg = dy[:, g * kg:(g + 1) * kg]
        for dr in range(r):
            for ds in range(s):
                rows = slice(dr, dr + sh * (ho - 1) + 1, sh)
                cols = slice(ds, ds + sw * (wo - 1) + 1, sw)
                patch = xp[:, g * cg:(g + 1) * cg, rows, cols]
                dw[g * kg:(g + 1) * kg, :, dr, ds] += np.einsum("nkhw,nchw->kc", dyg, patch)
                dxp[:, g * cg:(g + 1) * cg, rows, cols] += np.einsum(
                    "nkhw,kc->nchw", dyg, w[g * kg:(g + 1) * kg, :, dr, ds])
    dx = dxp[:, :, ph:ph + h, pw:pw + wd]
    db = dy.sum(axis=(0, 2, 3))
    return dx, dw, db


# ---------------------------------------------------------------------------- fully connected

def linear(x, w, b=None):
    """y = x @ w.T + b; x (N, in), w (out, in)."""
    x, w, b = _f64(x, w, b)
    y = x @ w.T
    return y if b is None else y + b


def linear_backward(dy, x, w):
    """(dx, dw, db) of linear."""
    dy, x, w = _f64(dy, x, w)
    return dy @ w, dy.T @ x, dy.sum(axis=0)


# ---------------------------------------------------------------------------- ReLU

def relu(x):
    x, = _f64(x)
    return np.where(x < 0, 0.0, x)  # NaN stays NaN


def relu_backward(dy, y):
    dy, y = _f64(dy, y)
    return np.where(y > 0, dy, 0.0)


# ---------------------------------------------------------------------------- LRN

def _lrn_window(c_total, groups, size):
    """For each channel i, the channels j of its group with |i - j| <= size // 2."""
    cg = c_total // groups
    half = size // 2
    windows = []
    for i in range(c_total):
        g0 = (i // cg) * cg
        lo, hi = max(g0, i - half), min(g0 + cg - 1, i + half)
        windows.append(range(lo, hi + 1))
    return windows


def lrn(x, size=5, alpha=1e-4, beta=0.75, k=2.0, groups=1):
    """b_i = a_i / (k + alpha/size * sum_{j in window(i)} a_j^2)^beta, windows within groups."""
    x, = _f64(x)
    y = np.empty_like(x)
    for i, win in enumerate(_lrn_window(x.shape[1], groups, size)):
        scale = k + alpha / size * sum(x[:, j] ** 2 for j in win)
        y[:, i] = x[:, i] * scale ** -beta
    return y


def lrn_backward(dy, x, size=5, alpha=1e-4, beta=0.75, k=2.0, groups=1):
    """dx of lrn. With s_i = k + alpha/size * sum_{j in win(i)} x_j^2 and y_i = x_i s_i^-beta:
    dx_m = dy_m s_m^-beta - 2 beta alpha/size x_m sum_{i : m in win(i)} dy_i x_i s_i^(-beta-1).
    Windows are symmetric (m in win(i) iff i in win(m)), so that sum runs over win(m)."""
    dy, x = _f64(dy, x)
    wins = _lrn_window(x.shape[1], groups, size)
    scale = np.empty_like(x)
    for i, win in enumerate(wins):
        scale[:, i] = k + alpha / size * sum(x[:, j] ** 2 for j in win)
    t = dy * x * scale ** (-beta - 1)
    dx = np.empty_like(x)
    for m, win in enumerate(wins):
        dx[:, m] = dy[:, m] * scale[:, m] ** -beta - 2 * beta * alpha / size * x[:, m] * sum(t[:, i] for i in win)
    return dx


# ---------------------------------------------------------------------------- max-pool

def pool_output_size(h, kernel, stride):
    """floor((h - kernel) / stride) + 1."""
    return (h - kernel) // stride + 1


def max_pool2d(x, kernel=3, stride=2):
    x, = _f64(x)
    n, c, h, w = x.shape
    ho, wo = pool_output_size(h, kernel, stride), pool_output_size(w, kernel, stride)
    y = np.empty((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            win = x[:, :, i * stride:i * stride + kernel, j * stride:j * stride + kernel]
            y[:, :, i, j] = win.reshape(n, c, -1).max(axis=2)  # NaN propagates
    return y


def max_pool2d_taps(x, kernel=3, stride=2):
    """Each window's argmax r*kernel + c within the window (row r, column c): its first maximum in
    row-major scan order (a NaN counts as the maximum: the first NaN), as int64 (N, C, Ho, Wo)."""
    x, = _f64(x)
    n, c, h, w = x.shape
    ho, wo = pool_output_size(h, kernel, stride), pool_output_size(w, kernel, stride)
    taps = np.empty((n, c, ho, wo), np.int64)
    for i in range(ho):
        for j in range(wo):
            win = x[:, :, i * stride:i * stride + kernel, j * stride:j * stride + kernel]
            taps[:, :, i, j] = np.argmax(win.reshape(n, c, -1), axis=2)  # first occurrence; NaN wins
    return taps


def max_pool2d_backward_taps(dy, taps, h, w, kernel=3, stride=2):
    """dx (N, C, h, w): each window's gradient goes to its tap t, element (t // kernel, t % kernel)
    of the window, nowhere for t >= kernel**2; overlapping windows accumulate in window order."""
    dy, = _f64(dy)
    taps = np.asarray(taps, np.int64)
    n, c, ho, wo = dy.shape
    dx = np.zeros((n, c, h, w))
    for i in range(ho):
        for j in range(wo):
            for a in range(n):
                for b in range(c):
                    t = taps[a, b, i, j]
                    if t < kernel * kernel:
                        dx[a, b, i * stride + t // kernel, j * stride + t % kernel] += dy[a, b, i, j]
    return dx


def max_pool2d_backward(dy, x, kernel=3, stride=2):
    """Each window's gradient goes to its first maximum in row-major scan order (max_pool2d_taps);
    overlapping windows accumulate. (A NaN in a window counts as its maximum.)"""
    x = np.asarray(x)
    return max_pool2d_backward_taps(dy, max_pool2d_taps(x, kernel, stride), x.shape[2], x.shape[3], kernel, stride)


# ---------------------------------------------------------------------------- add

def add(a, b):
    """a + b elementwise (where two columns' gradients of one input meet)."""
    a, b = _f64(a, b)
    return a + b


# ---------------------------------------------------------------------------- dropout

def dropout(x, mask, p):
    """Inverted dropout with a given keep mask (1 = kept): y = x * mask / (1 - p)."""
    x, mask = _f64(x, mask)
    return x * mask / (1.0 - p)


def dropout_backward(dy, mask, p):
    dy, mask = _f64(dy, mask)
    return dy * mask / (1.0 - p)


# ---------------------------------------------------------------------------- softmax and loss

def softmax(x):
    """Softmax over the last axis, shifted by the row maximum for stability."""
    x, = _f64(x)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def cross_entropy(logits, labels):
    """(loss, dlogits): mean over the batch of -log softmax(logits)[label]; dlogits of that mean."""
    logits, = _f64(logits)
    labels = np.asarray(labels).astype(np.int64)
    n, rows = logits.shape[0], np.arange(logits.shape[0])
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=1)
    # The sum over the other classes, taken without the label's term: when the label holds
    # nearly all the mass, p_label - 1 and log(total) - shifted_label would cancel to a few
    # digits even in float64 (p_label within 1e-12 of 1 leaves 4); -other / total and
    # log1p(other / e_label) keep them all.
    e_label = e[rows, labels]
    other = np.where(np.arange(logits.shape[1])[None, :] == labels[:, None], 0.0, e).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_row = np.where(e_label > 0, np.log1p(other / e_label), np.log(total) - shifted[rows, labels])
    loss = float(np.mean(per_row)) if n else 0.0
    d = e / total[:, None]
    d[rows, labels] = -other / total
    return loss, d / max(n, 1)


def topk_hits(logits, labels, ks=(1, 5)):
    """For each k, the number of rows whose label is among the k highest logits, in the order of a
    stable sort of -logits: ties go to the lower class index, NaN ranks behind every number."""
    order = np.argsort(-np.asarray(logits, np.float64), axis=1, kind="stable")
    labels = np.asarray(labels).astype(np.int64)
    return tuple(int((order[:, :k] == labels[:, None]).any(axis=1).sum()) for k in ks)


# ---------------------------------------------------------------------------- SGD

def sgd_update(w, dw, v, lr, momentum=0.9, weight_decay=0.0005):
    """The paper's rule; returns the new (w, v)."""
    w, dw, v = _f64(w, dw, v)
    v = momentum * v - weight_decay * lr * w - lr * dw
    return w + v, v


# ---------------------------------------------------------------------------- augmentation

def augment(images, mean, offsets, flips, lighting, crop, repeats=1):
    """The network input cut from a batch of prepared images (csrc/ops/augment.h):
    out[m, c, i, j] = images[m // repeats, y + i, x + jj, c] - mean[y + i, x + jj, c] + lighting[m, c]
    with (y, x) = offsets[m] and jj = crop - 1 - j where flips[m] else j. images (N, H, W, 3),
    mean (H, W, 3), offsets (M, 2), flips (M,), lighting (M, 3), M = N * repeats -> (M, 3, crop, crop)."""
    images, mean, lighting = _f64(images, mean, lighting)
    offsets, flips = np.asarray(offsets), np.asarray(flips)
    out = np.empty((len(offsets), 3, crop, crop))
    for m, ((y, x), flip) in enumerate(zip(offsets, flips)):
        patch = images[m // repeats, y:y + crop, x:x + crop] - mean[y:y + crop, x:x + crop]
        if flip:
            patch = patch[:, ::-1]
        out[m] = patch.transpose(2, 0, 1) + lighting[m][:, None, None]
    return out
