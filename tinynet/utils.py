"""Utilities with Keras 2 names: ``to_categorical``, ``Sequence`` and ``set_random_seed``."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tinynet.backend import set_random_seed

__all__ = ["Sequence", "set_random_seed", "to_categorical"]


class Sequence:
    """A dataset served one batch at a time, as ``keras.utils.Sequence``: subclass it and write ``__len__`` (the
    number of batches in an epoch) and ``__getitem__(index)`` returning the batch ``(x, y)`` or
    ``(x, y, sample_weight)``; ``on_epoch_end`` runs after every epoch (to reshuffle, say).

    ``fit``, ``evaluate`` and ``predict`` take one in place of arrays. Unlike a generator, a Sequence can be
    indexed, so ``fit(shuffle=True)`` visits its batches in a new order every epoch (the model's shuffle stream).
    """

    def __getitem__(self, index: int):
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def on_epoch_end(self) -> None:
        """Called at the end of every epoch; does nothing unless overridden."""

    def __iter__(self):
        for index in range(len(self)):
            yield self[index]


def to_categorical(y, num_classes: int | None = None, dtype: npt.DTypeLike = "float32") -> np.ndarray:
    """One-hot encode integer class labels, as ``keras.utils.to_categorical`` does.

    ``y`` of shape ``(N,)`` (a trailing axis of size 1 is squeezed, as in Keras) becomes ``(N, num_classes)``;
    other shapes gain a last axis. ``num_classes`` defaults to ``max(y) + 1``.
    """
    try:
        y = np.asarray(y)
    except ValueError as error:
        raise ValueError(f"to_categorical: y must be a rectangular array of labels; nested lists of different "
                         f"lengths cannot become one ({error})") from None
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise TypeError("to_categorical: y must hold integer class labels, got non-integer floats")
    elif y.dtype.kind not in "iub":
        raise TypeError(f"to_categorical: y must hold integer class labels, got dtype {y.dtype}")
    shape = y.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    labels = y.reshape(-1).astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"to_categorical: labels must be >= 0, got minimum {labels.min()}")
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    elif isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer) or num_classes <= 0:
        raise ValueError(f"to_categorical: num_classes must be a positive int, got {num_classes!r}")
    if labels.size and labels.max() >= num_classes:
        raise ValueError(f"to_categorical: label {labels.max()} is out of range for num_classes={num_classes}")
    try:
        dtype = np.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"to_categorical: dtype must be a NumPy dtype such as 'float32', got {dtype!r}") from None
    try:
        categorical = np.zeros((labels.size, num_classes), dtype=dtype)
    except MemoryError:
        raise ValueError(f"to_categorical: a one-hot array of {labels.size} labels x {num_classes} classes does not "
                         f"fit in memory; check the labels (largest: {labels.max()}) or pass num_classes") from None
    categorical[np.arange(labels.size), labels] = 1
    return categorical.reshape(*shape, num_classes)
