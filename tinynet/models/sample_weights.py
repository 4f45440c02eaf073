"""Per-sample weights from what ``fit``/``evaluate``/``train_on_batch`` are given, as Keras 2.2.4's
``standardize_weights`` (``keras/engine/training_utils.py``) makes them.

* ``sample_weight``: one non-negative weight per sample, ``(samples,)``.
* ``class_weight``: ``{class index: weight}``, turned into sample weights from the targets: the class of a
  one-hot row is its argmax, of an integer label the label, of a single 0/1 output the value. Every class in the
  data must have a weight.
* Both given: ``sample_weight`` wins and ``class_weight`` is ignored, as in Keras 2.2.4.
* Neither: ``None``, and the loss is the plain batch mean (not a mean with weights of 1, which would round
  differently).

The losses apply the weights (:mod:`tinynet.losses.base`); metrics are not weighted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet.models.checks import as_rectangular_array


def _check_sample_weight(sample_weight: Any, samples: int, where: str) -> np.ndarray:
    weights = as_rectangular_array(sample_weight, f"{where}: sample_weight")
    if weights.dtype.kind not in "fiub":
        raise TypeError(f"{where}: sample_weight must be numeric, got dtype {weights.dtype}")
    if weights.ndim != 1 or len(weights) != samples:
        raise ValueError(f"{where}: sample_weight must have shape ({samples},), one weight per sample, got "
                         f"{weights.shape}")
    weights = weights.astype(np.float64)
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"{where}: sample_weight must hold finite, non-negative numbers")
    return weights


def target_classes(y: np.ndarray, where: str) -> np.ndarray:
    """The class index of every sample's target, as Keras reads it for ``class_weight``."""
    if y.ndim == 1:
        classes = y
    elif y.ndim == 2 and y.shape[1] > 1:
        classes = np.argmax(y, axis=1)
    elif y.ndim == 2:
        classes = y[:, 0]
    else:
        raise ValueError(f"{where}: class_weight needs targets of shape (samples,) or (samples, classes), got "
                         f"{y.shape}; pass sample_weight instead")
    if classes.dtype.kind == "f":
        if np.any(classes != np.round(classes)):
            raise ValueError(f"{where}: class_weight needs integer class targets, got non-integer values")
        classes = classes.astype(np.int64)
    return classes


def _class_sample_weights(class_weight: Any, y: np.ndarray, where: str) -> np.ndarray:
    if not isinstance(class_weight, dict):
        raise TypeError(f"{where}: class_weight must be a dict {{class index: weight}}, got "
                        f"{type(class_weight).__name__}")
    table: dict[int, float] = {}
    for key, value in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, int | np.integer):
            raise TypeError(f"{where}: class_weight keys must be integer class indices, got {key!r}")
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) \
                or not np.isfinite(value) or value < 0:
            raise ValueError(f"{where}: class_weight[{key}] must be a finite, non-negative number, got {value!r}")
        table[int(key)] = float(value)
    classes = target_classes(y, where)
    present = np.unique(classes)
    missing = [int(label) for label in present if int(label) not in table]
    if missing:
        raise ValueError(f"{where}: class_weight must contain all classes in the data; classes {missing} exist "
                         "in the data but not in class_weight")
    weights = np.empty(len(classes))
    for label in present:  # a pass per class, not per sample
        weights[classes == label] = table[int(label)]
    return weights


def sample_weights(sample_weight: Any, class_weight: Any, y: np.ndarray, where: str) -> np.ndarray | None:
    """The per-sample weights of targets ``y`` (float64, ``(samples,)``), or None when no weighting was asked."""
    if sample_weight is not None:
        return _check_sample_weight(sample_weight, len(y), where)
    if class_weight is not None:
        return _class_sample_weights(class_weight, y, where)
    return None
