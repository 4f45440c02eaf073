"""Metrics reported by ``fit``/``evaluate``: per-sample values, averaged over a batch by the model."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def categorical_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """1.0 where ``argmax(y_pred) == argmax(y_true)`` (ties go to the first index, as ``np.argmax`` and Keras do)."""
    return (np.argmax(y_pred, axis=-1) == np.argmax(y_true, axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """1.0 where ``argmax(y_pred)`` equals the integer label."""
    return (np.argmax(y_pred, axis=-1) == np.asarray(y_true).reshape(-1)).astype(np.float64)


def binary_accuracy(y_true: np.ndarray, y_pred: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Mean over the last axis of ``(y_pred > threshold) == y_true``."""
    return ((y_pred > threshold) == (y_true > 0.5)).reshape(len(y_pred), -1).mean(axis=-1)


_BY_NAME: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "binary_accuracy": binary_accuracy,
}


def get(name: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    if name not in _BY_NAME:
        raise ValueError(f"metrics: unknown metric {name!r}; expected 'accuracy'/'acc' or one of "
                         f"{', '.join(_BY_NAME)}")
    return _BY_NAME[name]
