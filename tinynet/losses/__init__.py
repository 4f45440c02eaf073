"""Losses with Keras 2 names, each with its hand-written gradient, and Keras 2.2.4's per-sample weighting.

``base.py``           the contract (``per_sample``, ``mean_gradient``) and the weighting every loss inherits
``crossentropy.py``   categorical, sparse categorical and binary cross-entropy (``from_logits``, ``label_smoothing``)
``regression.py``     mean squared / absolute / percentage / squared-log error, Huber, log-cosh, Poisson
``margin.py``         hinge, squared hinge, categorical hinge, Kullback-Leibler divergence

``get(name)`` accepts the Keras names and their aliases (``mse``, ``mae``, ``mape``, ``msle``, ``kld``,
``huber``...). The function-style names (``losses.categorical_crossentropy(y_true, y_pred)``) return per-sample
losses, as Keras's loss functions do.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinynet.losses.base import ElementwiseLoss, Loss
from tinynet.losses.crossentropy import BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy
from tinynet.losses.margin import CategoricalHinge, Hinge, KLDivergence, SquaredHinge
from tinynet.losses.regression import (
    Huber,
    LogCosh,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
    Poisson,
)

__all__ = [
    "BinaryCrossentropy", "CategoricalCrossentropy", "CategoricalHinge", "ElementwiseLoss", "Hinge", "Huber",
    "KLDivergence", "LogCosh", "Loss", "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredError",
    "MeanSquaredLogarithmicError", "Poisson", "SparseCategoricalCrossentropy", "SquaredHinge", "get",
]

_CLASSES: tuple[type[Loss], ...] = (
    CategoricalCrossentropy, SparseCategoricalCrossentropy, BinaryCrossentropy, MeanSquaredError, MeanAbsoluteError,
    MeanAbsolutePercentageError, MeanSquaredLogarithmicError, Huber, LogCosh, Poisson, Hinge, SquaredHinge,
    CategoricalHinge, KLDivergence,
)
_BY_NAME: dict[str, type[Loss]] = {cls.name: cls for cls in _CLASSES}
# Keras 2's aliases (keras/losses.py), plus 'huber' for Keras 2.3's huber_loss.
_ALIASES: dict[str, str] = {
    "mse": "mean_squared_error", "MSE": "mean_squared_error", "mae": "mean_absolute_error",
    "MAE": "mean_absolute_error", "mape": "mean_absolute_percentage_error",
    "MAPE": "mean_absolute_percentage_error", "msle": "mean_squared_logarithmic_error",
    "MSLE": "mean_squared_logarithmic_error", "kld": "kullback_leibler_divergence",
    "KLD": "kullback_leibler_divergence", "huber": "huber_loss",
}


# Keras's function-style names: per-sample losses, with the keyword options Keras 2.3 gives them.
def categorical_crossentropy(y_true: np.ndarray, y_pred: np.ndarray, from_logits: bool = False,
                             label_smoothing: float = 0.0) -> np.ndarray:
    return CategoricalCrossentropy(from_logits, label_smoothing).per_sample(y_true, y_pred)


def sparse_categorical_crossentropy(y_true: np.ndarray, y_pred: np.ndarray, from_logits: bool = False) -> np.ndarray:
    return SparseCategoricalCrossentropy(from_logits).per_sample(y_true, y_pred)


def binary_crossentropy(y_true: np.ndarray, y_pred: np.ndarray, from_logits: bool = False,
                        label_smoothing: float = 0.0) -> np.ndarray:
    return BinaryCrossentropy(from_logits, label_smoothing).per_sample(y_true, y_pred)


def huber_loss(y_true: np.ndarray, y_pred: np.ndarray, delta: float = 1.0) -> np.ndarray:
    return Huber(delta).per_sample(y_true, y_pred)


mean_squared_error = MeanSquaredError().per_sample
mean_absolute_error = MeanAbsoluteError().per_sample
mean_absolute_percentage_error = MeanAbsolutePercentageError().per_sample
mean_squared_logarithmic_error = MeanSquaredLogarithmicError().per_sample
logcosh = LogCosh().per_sample
poisson = Poisson().per_sample
hinge = Hinge().per_sample
squared_hinge = SquaredHinge().per_sample
categorical_hinge = CategoricalHinge().per_sample
kullback_leibler_divergence = KLDivergence().per_sample
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kullback_leibler_divergence

_FUNCTIONS: dict[Callable, str] = {
    categorical_crossentropy: "categorical_crossentropy", sparse_categorical_crossentropy:
    "sparse_categorical_crossentropy", binary_crossentropy: "binary_crossentropy", huber_loss: "huber_loss",
    mean_squared_error: "mean_squared_error", mean_absolute_error: "mean_absolute_error",
    mean_absolute_percentage_error: "mean_absolute_percentage_error",
    mean_squared_logarithmic_error: "mean_squared_logarithmic_error", logcosh: "logcosh", poisson: "poisson",
    hinge: "hinge", squared_hinge: "squared_hinge", categorical_hinge: "categorical_hinge",
    kullback_leibler_divergence: "kullback_leibler_divergence",
}


def get(identifier: str | Loss | type | Callable) -> Loss:
    """A loss from its Keras name or alias (``'categorical_crossentropy'``, ``'mae'``...), a :class:`Loss`
    instance or class, or one of the function-style names above."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, str):
        name = _ALIASES.get(identifier, identifier)
        if name in _BY_NAME:
            return _BY_NAME[name]()
        raise ValueError(f"loss: unknown loss {identifier!r}; expected one of {', '.join(sorted(_BY_NAME))} "
                         f"(or an alias: {', '.join(sorted(_ALIASES, key=str.lower))})")
    for function, name in _FUNCTIONS.items():
        if identifier == function:
            return _BY_NAME[name]()
    raise TypeError(f"loss: expected a loss name or a tinynet.losses.Loss, got {type(identifier).__name__}")
