"""Which rows of a global batch this process computes: the one thing data-parallel training tells the layers.

In data-parallel training (:mod:`tinynet.distributed`) every process runs the same model on its own rows
``[start, stop)`` of each *global* batch of ``global_size`` samples. Two layers must then see past their rows to
compute what one process running the whole global batch would:

* :class:`~tinynet.layers.Dropout` draws the mask of the whole global batch (every process holds the same
  generator state) and keeps its own rows of it, so the masks, and where the generator stands afterwards, do not
  depend on how many processes share the batch;
* :class:`~tinynet.layers.BatchNormalization` normalises with the statistics of the global batch: it adds its
  per-feature sums over the processes with :attr:`BatchShard.sum_over_shards`.

Outside data-parallel training :func:`current` is None and both layers run exactly their one-process code. The
training loop sets the shard for one step with :func:`holding`; nothing here knows about MPI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BatchShard:
    """This process's rows ``[start, stop)`` of a global batch of ``global_size`` samples.

    ``counted`` is False for a process that has no row of this batch (a last batch smaller than the number of
    processes): it then computes one stand-in row with weight zero, so that it takes part in every exchange and
    draws the same random numbers as the others, and that row must add nothing to the batch statistics.
    ``sum_over_shards(array)`` returns the sum of ``array`` over all processes (the same bits on every one).
    """

    global_size: int
    start: int
    stop: int
    sum_over_shards: Callable[[np.ndarray], np.ndarray]
    counted: bool = True

    @property
    def rows(self) -> int:
        return self.stop - self.start


_current: BatchShard | None = None


def current() -> BatchShard | None:
    """The shard of the step running now, or None outside data-parallel training."""
    return _current


@contextmanager
def holding(shard: BatchShard | None) -> Iterator[BatchShard | None]:
    """Make ``shard`` the current one for the duration of a step (None: one-process behaviour)."""
    global _current
    previous, _current = _current, shard
    try:
        yield shard
    finally:
        _current = previous


def global_rows(draw: Callable[[tuple[int, ...]], np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """``draw(shape)``, or, in a shard of ``shape[0]`` rows, this shard's rows of ``draw`` for the global batch.

    Random words drawn in C order fill the rows one after another, so the rows of a global draw are what a
    process running the whole batch draws for them, and every process's generator advances by the same count."""
    shard = _current
    if shard is None or shape[0] != shard.rows:
        return draw(shape)
    return draw((shard.global_size, *shape[1:]))[shard.start:shard.stop]
