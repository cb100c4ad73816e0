"""Where every random draw of a run comes from. Each is a Philox4x32-10 stream (csrc/philox.h), a
pure function of (key, stream, counter), so a run is a function of its seed and resuming needs
only the position:

- the shuffle of epoch e and the augmentation of image k presented in epoch e: key = the run's
  seed, counters from position(e, k) = e * 2^32 + k, `per_item` words per position
  (draws(seed, stream, e, k, per_item, count));
- the dropout masks of step s (counted over the whole run, not within an epoch) in layer i: key
  dropout_key(seed, s, i); the mask of the sample at position b of the step's batch is Philox
  row b (ops.dropout's first_row), whichever process computes it;
- the train/val split of pyconvnet.prepare: key = its seed, a counter range per class.
"""
from __future__ import annotations

from . import _C

STREAM_DROPOUT = 1  # pcn::kStreamDropout (csrc/philox.h)
STREAM_AUGMENT = 2  # pcn::kStreamAugment
STREAM_SHUFFLE = 3  # pcn::kStreamShuffle
STREAM_SPLIT = 4    # pcn::kStreamSplit
MAX_EPOCH = 1 << 29  # position() * per_item (at most 8) stays below 2^64
MAX_ITEM = 1 << 32
_DROPOUT_MIX = 1_000_003  # odd: (seed, step, layer) -> key is one-to-one for steps and layers < _DROPOUT_MIX
_KEY_MASK = (1 << 64) - 1


def position(epoch: int, item: int) -> int:
    """The position of item `item` (an image index, or 0) in epoch `epoch`: epoch * 2^32 + item."""
    if not 0 <= epoch < MAX_EPOCH or not 0 <= item < MAX_ITEM:
        raise ValueError(f"keys.position: epoch must be in [0, 2^29) and item in [0, 2^32); got {epoch}, {item}")
    return (epoch << 32) + item


def draws(seed: int, stream: int, epoch: int, item: int, per_item: int, count: int):
    """uint32 (count,): the words of `stream` from counter per_item * position(epoch, item) on."""
    return _C.philox_words(seed, stream, per_item * position(epoch, item), count)


def dropout_key(seed: int, global_step: int, layer_index: int) -> int:
    """The Philox key of the dropout mask of layer `layer_index` (its index in the model) at step
    `global_step` of the run (epoch * steps per epoch + step), distinct for every step and layer."""
    return ((int(seed) * _DROPOUT_MIX + int(global_step)) * _DROPOUT_MIX + int(layer_index)) & _KEY_MASK
