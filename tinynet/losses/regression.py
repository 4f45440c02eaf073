"""Regression losses with Keras 2 names: each the mean over a sample's outputs of one function of ``x = p - y``
(or of ``p`` and ``y``), written beside its derivative.

All share :class:`~tinynet.losses.base.ElementwiseLoss`: ``l_i = mean_k f(y_ik, p_ik)`` and
``dL/dp_ik = f'(y_ik, p_ik) / (K N)``. Where ``f`` has a kink (``|x|`` at 0, Huber's switch) the derivative
returned is the one-sided value NumPy's ``sign``/``clip`` give, a valid subgradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet import backend
from tinynet.losses.base import ElementwiseLoss, Loss


class MeanSquaredError(Loss):
    r"""Mean squared error: ``loss = mean_k (p_k - y_k)^2`` per sample (Keras averages over the last axis).

    Shapes: ``y_true`` and ``y_pred`` ``(N, ..., K)``; per-sample losses ``(N,)``.

    Backward of the batch mean ``L = (1/N) sum_n (1/K) sum_k (p_nk - y_nk)^2``: each ``p_nk`` appears in one
    square, whose derivative is ``2 (p_nk - y_nk)``, weighted by the two means, so
    ``dL/dp = 2 (p - y) / (K N)`` with ``K`` the size of the last axis. No cache: the loss is a pure function.
    """

    name = "mean_squared_error"
    accuracy_metric = "categorical_accuracy"

    def per_sample(self, y_true, y_pred):
        return np.mean((y_pred - y_true) ** 2, axis=-1).reshape(len(y_pred), -1).mean(axis=-1)

    def mean_gradient(self, y_true, y_pred):
        return (2 * (y_pred - y_true) / y_pred[0].size / len(y_pred)).astype(y_pred.dtype, copy=False)


class MeanAbsoluteError(ElementwiseLoss):
    """``f = |p - y|``, ``f' = sign(p - y)``."""

    name = "mean_absolute_error"

    def elementwise(self, y_true, y_pred):
        return np.abs(y_pred - y_true)

    def derivative(self, y_true, y_pred):
        return np.sign(y_pred - y_true)


class MeanAbsolutePercentageError(ElementwiseLoss):
    """``f = 100 |y - p| / max(|y|, eps)``, ``f' = 100 sign(p - y) / max(|y|, eps)`` (Keras 2's guard against a
    zero target)."""

    name = "mean_absolute_percentage_error"

    def elementwise(self, y_true, y_pred):
        return 100 * np.abs(y_true - y_pred) / np.maximum(np.abs(y_true), backend.epsilon())

    def derivative(self, y_true, y_pred):
        return 100 * np.sign(y_pred - y_true) / np.maximum(np.abs(y_true), backend.epsilon())


class MeanSquaredLogarithmicError(ElementwiseLoss):
    """``f = (log(max(p, eps) + 1) - log(max(y, eps) + 1))^2``; ``f' = 2 d / (p + 1)`` where ``p > eps`` and 0
    where the clip is flat."""

    name = "mean_squared_logarithmic_error"

    def elementwise(self, y_true, y_pred):
        eps = backend.epsilon()
        return (np.log(np.maximum(y_pred, eps) + 1) - np.log(np.maximum(y_true, eps) + 1)) ** 2

    def derivative(self, y_true, y_pred):
        eps = backend.epsilon()
        difference = np.log(np.maximum(y_pred, eps) + 1) - np.log(np.maximum(y_true, eps) + 1)
        return np.where(y_pred > eps, 2 * difference / (np.maximum(y_pred, eps) + 1), 0)


class Huber(ElementwiseLoss):
    """Keras 2.3's ``huber_loss``: quadratic near 0, linear beyond ``delta``, so outliers pull with a bounded force::

        f = x^2 / 2                    if |x| <= delta
            delta (|x| - delta / 2)    otherwise;          f' = clip(x, -delta, delta)
    """

    name = "huber_loss"

    def __init__(self, delta: float = 1.0) -> None:
        if isinstance(delta, bool) or not isinstance(delta, int | float | np.floating) or not delta > 0:
            raise ValueError(f"huber_loss: delta must be a positive number, got {delta!r}")
        self.delta = float(delta)

    def get_config(self) -> dict[str, Any]:
        return {"delta": self.delta}

    def elementwise(self, y_true, y_pred):
        error = np.abs(y_pred - y_true)
        quadratic = np.minimum(error, self.delta)
        return 0.5 * quadratic ** 2 + self.delta * (error - quadratic)

    def derivative(self, y_true, y_pred):
        return np.clip(y_pred - y_true, -self.delta, self.delta)


class LogCosh(ElementwiseLoss):
    """``f = log cosh x``, computed as Keras does, ``x + softplus(-2x) - log 2``, which never overflows;
    ``f' = tanh x``."""

    name = "logcosh"

    def elementwise(self, y_true, y_pred):
        x = y_pred - y_true
        return x + np.logaddexp(0, -2 * x) - np.log(2)

    def derivative(self, y_true, y_pred):
        return np.tanh(y_pred - y_true)


class Poisson(ElementwiseLoss):
    """The Poisson negative log-likelihood up to a constant: ``f = p - y log(p + eps)``, ``f' = 1 - y / (p + eps)``
    (``p`` the predicted rate, after an exponential or softplus)."""

    name = "poisson"

    def elementwise(self, y_true, y_pred):
        return y_pred - y_true * np.log(y_pred + backend.epsilon())

    def derivative(self, y_true, y_pred):
        return 1 - y_true / (y_pred + backend.epsilon())
