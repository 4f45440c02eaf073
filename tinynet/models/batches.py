"""Where the batches of an epoch come from: arrays cut into (shuffled) batches, or a
:class:`tinynet.utils.Sequence` or Python generator that yields them (Keras 2's ``fit_generator`` inputs).

Either way ``epoch()`` yields ``(x, y, sample_weight)`` batches ready for the public step (cast to the model's
float type; ``sample_weight`` None when no weighting was asked), and the fit and evaluation loops do not care
which kind they read.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from tinynet.models.checks import check_x, check_xy
from tinynet.models.sample_weights import sample_weights
from tinynet.utils import Sequence

Batch = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]


def is_batch_source(data: Any) -> bool:
    """Whether ``data`` yields batches itself (a Sequence, a generator or another iterator), not arrays."""
    return isinstance(data, Sequence) or (hasattr(data, "__next__") and hasattr(data, "__iter__"))


class ArrayBatches:
    """Batches of ``batch_size`` samples of arrays already checked, in a new order each epoch when shuffled (drawn
    from the model's shuffle stream), gathered and cast one batch at a time: the dataset is never copied to
    float."""

    def __init__(self, model: Any, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None, batch_size: int,
                 shuffle: bool = False) -> None:
        self.model, self.x, self.y, self.weights = model, x, y, weights
        self.batch_size, self.shuffle = batch_size, shuffle
        self.samples = len(x)
        self.steps = math.ceil(self.samples / batch_size)

    def epoch(self) -> Iterator[Batch]:
        model = self.model
        # Unshuffled (evaluate, validation, shuffle=False) a batch is a slice: a view, copied only if it must be cast.
        order = model._shuffle_generator.permutation(self.samples) if self.shuffle else None
        for step in range(self.steps):
            start, stop = step * self.batch_size, (step + 1) * self.batch_size
            indices = slice(start, stop) if order is None else order[start:stop]
            weights = None if self.weights is None else self.weights[indices]
            yield model._gather(self.x, indices), model._gather_targets(self.y, indices), weights

    def on_epoch_end(self) -> None:
        pass


class SourceBatches:
    """``steps`` batches per epoch from a Sequence (``len(sequence)`` by default; its batches in a shuffled order
    when ``shuffle``; ``on_epoch_end`` after each epoch) or a generator (``steps`` required; it must go on
    yielding across epochs, as Keras's do). Each batch is ``(x, y)`` or ``(x, y, sample_weight)`` and is checked
    as ``fit`` checks arrays; ``class_weight`` applies to each batch's targets. With ``targets=False`` (predict)
    a batch may be ``x`` alone, and only ``x`` is used."""

    def __init__(self, model: Any, source: Any, steps: Any, where: str, steps_argument: str,
                 shuffle: bool = False, class_weight: Any = None, targets: bool = True) -> None:
        self.model, self.source, self.where = model, source, where
        self.shuffle, self.class_weight, self.targets = shuffle, class_weight, targets
        self.is_sequence = isinstance(source, Sequence)
        if steps is None:
            if not self.is_sequence:
                raise ValueError(f"{where}: {steps_argument} is required with a generator (how many batches make "
                                 "an epoch); a tinynet.utils.Sequence knows its length")
            steps = len(source)
        if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps <= 0:
            raise ValueError(f"{where}: {steps_argument} must be a positive int, got {steps!r}")
        if self.is_sequence and steps > len(source):
            raise ValueError(f"{where}: {steps_argument}={steps} exceeds the {len(source)} batches of the Sequence")
        self.steps = int(steps)
        self.samples = None  # unknown until the batches are read

    def epoch(self) -> Iterator[Batch]:
        if self.is_sequence:
            count = len(self.source)
            order = self.model._shuffle_generator.permutation(count) if self.shuffle else np.arange(count)
            for index in order[:self.steps]:
                yield self._checked(self.source[int(index)])
            return
        for step in range(self.steps):
            try:
                batch = next(self.source)
            except StopIteration:
                raise ValueError(f"{self.where}: the generator stopped after {step} of the {self.steps} batches of "
                                 "an epoch; a generator for fit must yield batches without end") from None
            yield self._checked(batch)

    def on_epoch_end(self) -> None:
        if self.is_sequence:
            self.source.on_epoch_end()

    def _checked(self, batch: Any) -> Batch:
        model, entry_point = self.model, self.where.rsplit(".", 1)[-1]
        if not self.targets:
            x = batch[0] if isinstance(batch, tuple | list) else batch
            return model._gather(check_x(model, x, entry_point), slice(None)), None, None
        if not isinstance(batch, tuple | list) or len(batch) not in (2, 3):
            raise ValueError(f"{self.where}: each batch must be a tuple (x, y) or (x, y, sample_weight), got "
                             f"{type(batch).__name__}" + (f" of length {len(batch)}" if isinstance(batch, tuple | list)
                                                          else ""))
        x, y = check_xy(model, batch[0], batch[1], entry_point)
        weights = sample_weights(batch[2] if len(batch) == 3 else None, self.class_weight, y, self.where)
        return model._gather(x, slice(None)), model._gather_targets(y, slice(None)), weights
