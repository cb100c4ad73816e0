"""How well a network classifies: top-k errors, and the loss and errors over a dataset split
with the centre crop or the ten crops of the paper's test procedure."""
from __future__ import annotations

import numpy as np

from .errors import UserError
from .inference import probabilities


def topk_errors(probs_or_logits: np.ndarray, labels: np.ndarray, ks=(1, 5)) -> dict:
    """Number of examples whose label is not among the k highest scores, for each k."""
    order = np.argsort(-probs_or_logits, axis=1, kind="stable")
    out = {}
    for k in ks:
        hit = (order[:, :min(k, order.shape[1])] == labels[:, None]).any(axis=1)
        out[k] = int((~hit).sum())
    return out


def evaluate(model, data, split: str, batch_size: int, ten_crop: bool = False, group=None) -> dict:
    """Loss and top-1/top-5 error of `model` on a split of `data` (a pyconvnet.data.TrainingData):
    centre crop, or the softmax averaged over 10 crops. With a group of ranks (data sharded over
    them, pyconvnet.distributed), each rank evaluates its part and the sums are shared."""
    loss_sum, n, e1, e5 = 0.0, 0, 0, 0
    for x, labels_host, repeats in data.eval_batches(split, batch_size, ten_crop=ten_crop):
        m = len(labels_host)
        probs = probabilities(model, x, repeats)
        loss_sum += float(-np.log(np.maximum(probs[np.arange(m), labels_host], 1e-30)).sum())
        errs = topk_errors(probs, labels_host)
        n, e1, e5 = n + m, e1 + errs[1], e5 + errs[5]
    if group is not None and group.size > 1:
        loss_sum, n, e1, e5 = group.sum([loss_sum, n, e1, e5])
        n, e1, e5 = int(n), int(e1), int(e5)
    if n == 0:
        raise UserError(f"the {split} split is empty: nothing to evaluate")
    return {"loss": loss_sum / n, "top1_error": e1 / n, "top5_error": e5 / n, "count": n}
