"""Metrics reported by ``fit``/``evaluate``: functions ``metric(y_true, y_pred) -> per-sample values``, averaged
over a batch by the model, and :func:`resolve`, which turns ``compile(metrics=[...])`` into named metrics.

Names in the logs follow Keras 2.2.4 (``keras/engine/training.py``, ``compile``): ``'accuracy'`` and ``'acc'``
both log as ``acc`` (and ``val_acc``), resolved to the accuracy that matches the loss; any other name logs under
the name of the function it resolves to (``'mae'`` logs ``mean_absolute_error``); a callable under its
``__name__``. Metrics are not weighted by ``sample_weight`` (Keras 2.2.4's ``metrics``, not ``weighted_metrics``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinynet import losses

MetricFunction = Callable[[np.ndarray, np.ndarray], Any]


def categorical_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """1.0 where ``argmax(y_pred) == argmax(y_true)`` (ties go to the first index, as ``np.argmax`` and Keras do)."""
    return (np.argmax(y_pred, axis=-1) == np.argmax(y_true, axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """1.0 where ``argmax(y_pred)`` equals the integer label."""
    return (np.argmax(y_pred, axis=-1) == np.asarray(y_true).reshape(-1)).astype(np.float64)


def binary_accuracy(y_true: np.ndarray, y_pred: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Mean over the last axis of ``(y_pred > threshold) == y_true``."""
    return ((y_pred > threshold) == (y_true > 0.5)).reshape(len(y_pred), -1).mean(axis=-1)


def _in_top_k(y_pred: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    # TensorFlow's in_top_k: the label counts as in the top k when fewer than k classes score strictly higher, so
    # classes tied at the boundary are all in.
    label_scores = y_pred[np.arange(len(labels)), labels]
    return ((y_pred > label_scores[:, None]).sum(axis=-1) < k).astype(np.float64)


def top_k_categorical_accuracy(y_true: np.ndarray, y_pred: np.ndarray, k: int = 5) -> np.ndarray:
    """1.0 where the true class (``argmax(y_true)``) is among the ``k`` highest predictions."""
    return _in_top_k(y_pred, np.argmax(y_true, axis=-1), k)


def sparse_top_k_categorical_accuracy(y_true: np.ndarray, y_pred: np.ndarray, k: int = 5) -> np.ndarray:
    """1.0 where the integer label is among the ``k`` highest predictions."""
    return _in_top_k(y_pred, np.asarray(y_true).reshape(-1).astype(np.intp), k)


# The losses double as metrics under their Keras function names (Keras 2's metrics module imports them).
mean_squared_error = losses.mean_squared_error
mean_absolute_error = losses.mean_absolute_error
mean_absolute_percentage_error = losses.mean_absolute_percentage_error
mean_squared_logarithmic_error = losses.mean_squared_logarithmic_error

_BY_NAME: dict[str, tuple[str, MetricFunction]] = {
    function.__name__: (function.__name__, function)
    for function in (categorical_accuracy, sparse_categorical_accuracy, binary_accuracy,
                     top_k_categorical_accuracy, sparse_top_k_categorical_accuracy)
}
for _alias, _name in (("mse", "mean_squared_error"), ("mae", "mean_absolute_error"),
                      ("mape", "mean_absolute_percentage_error"), ("msle", "mean_squared_logarithmic_error"),
                      ("mean_squared_error", "mean_squared_error"), ("mean_absolute_error", "mean_absolute_error"),
                      ("mean_absolute_percentage_error", "mean_absolute_percentage_error"),
                      ("mean_squared_logarithmic_error", "mean_squared_logarithmic_error")):
    _BY_NAME[_alias] = (_name, losses.get(_name).per_sample)


def get(name: str) -> MetricFunction:
    """The metric function of a Keras metric name (``'mae'``, ``'top_k_categorical_accuracy'``...)."""
    return _lookup(name)[1]


def _lookup(name: str) -> tuple[str, MetricFunction]:
    if name not in _BY_NAME:
        raise ValueError(f"metrics: unknown metric {name!r}; expected 'accuracy'/'acc', a function "
                         f"metric(y_true, y_pred), or one of {', '.join(_BY_NAME)}")
    return _BY_NAME[name]


def resolve(requested: Any, loss: Any, where: str) -> list[tuple[str, MetricFunction]]:
    """``compile(metrics=...)`` as ``(log key, function)`` pairs, one per metric asked for, in order."""
    if requested is None:
        return []
    if not isinstance(requested, list | tuple):
        raise TypeError(f"{where}: metrics must be a list of names such as ['accuracy'] or functions "
                        f"metric(y_true, y_pred), got {requested!r}")
    resolved: list[tuple[str, MetricFunction]] = []
    for metric in requested:
        if isinstance(metric, str):
            if metric in ("accuracy", "acc"):
                resolved.append(("acc", get(loss.accuracy_metric)))
                continue
            try:
                resolved.append(_lookup(metric))
            except ValueError as error:
                raise ValueError(f"{where}: {error}") from None
        elif callable(metric):
            name = getattr(metric, "name", None) or getattr(metric, "__name__", type(metric).__name__)
            resolved.append((str(name), metric))
        else:
            raise TypeError(f"{where}: each metric must be a name or a function metric(y_true, y_pred), "
                            f"got {metric!r}")
    keys = ["loss", *(key for key, _ in resolved)]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"{where}: metrics {list(requested)!r} log more than one value under "
                         f"{', '.join(duplicates)}; ask for each metric once")
    return resolved


def batch_value(function: MetricFunction, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """A metric's value on one batch: the mean of its per-sample values (a callable may return a scalar)."""
    return float(np.mean(function(y_true, y_pred), dtype=np.float64))
