"""Margin losses (hinge, squared hinge, categorical hinge) and the Kullback-Leibler divergence, Keras 2.2 formulas.

The hinges take targets in ``{-1, 1}`` (Keras 2.2 does not convert 0/1 labels) and scores ``p`` from a linear or
tanh output; the categorical hinge takes one-hot targets.
"""

from __future__ import annotations

import numpy as np

from tinynet import backend
from tinynet.losses.base import ElementwiseLoss, Loss


class Hinge(ElementwiseLoss):
    """``f = max(1 - y p, 0)``; ``f' = -y`` inside the margin (``y p < 1``), 0 outside."""

    name = "hinge"

    def elementwise(self, y_true, y_pred):
        return np.maximum(1 - y_true * y_pred, 0)

    def derivative(self, y_true, y_pred):
        return np.where(1 - y_true * y_pred > 0, -y_true, 0)


class SquaredHinge(ElementwiseLoss):
    """``f = max(1 - y p, 0)^2``; ``f' = -2 y max(1 - y p, 0)``."""

    name = "squared_hinge"

    def elementwise(self, y_true, y_pred):
        return np.maximum(1 - y_true * y_pred, 0) ** 2

    def derivative(self, y_true, y_pred):
        return -2 * y_true * np.maximum(1 - y_true * y_pred, 0)


def _rows(array: np.ndarray) -> np.ndarray:
    """``(N, ..., K)`` as ``(N, M, K)``: the per-position losses over the last axis, averaged over the ``M``."""
    return array.reshape(len(array), -1, array.shape[-1])


class CategoricalHinge(Loss):
    """The multi-class hinge: the true class's score must beat the best wrong one by a margin of 1::

        pos = sum_k y_k p_k;   neg = max_k (1 - y_k) p_k;   loss = max(0, neg - pos + 1)

    Backward (per position, ``M`` positions per sample): where the margin is violated,
    ``dloss/dp = -y + (1 - y_j) onehot(j)`` with ``j = argmax_k (1 - y_k) p_k`` (the first index on ties, a
    subgradient; the ``1 - y_j`` is 0 when every wrong score is negative and the max is 0), else 0; the
    mean over ``M`` positions and ``N`` samples divides it by ``M N``.
    """

    name = "categorical_hinge"

    @staticmethod
    def _parts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y, p = _rows(y_true), _rows(y_pred)
        wrong = (1 - y) * p
        return y, wrong, np.maximum(wrong.max(axis=-1) - (y * p).sum(axis=-1) + 1, 0)

    def per_sample(self, y_true, y_pred):
        return self._parts(y_true, y_pred)[2].mean(axis=-1)

    def mean_gradient(self, y_true, y_pred):
        y, wrong, values = self._parts(y_true, y_pred)
        grad = -y.astype(np.float64)
        runner_up = wrong.argmax(axis=-1)[..., None]
        # d neg / dp_j = 1 - y_j at the argmax: 0 when the max is the true class's own (zeroed) entry.
        pick = np.take_along_axis(grad, runner_up, -1) + 1 - np.take_along_axis(y, runner_up, -1)
        np.put_along_axis(grad, runner_up, pick, -1)
        grad *= (values > 0)[..., None]
        return (grad / (y.shape[1] * len(y))).reshape(y_pred.shape).astype(y_pred.dtype, copy=False)


class KLDivergence(Loss):
    """Kullback-Leibler divergence of the prediction ``p`` from the target distribution ``y``, summed over the last
    axis (averaged over any others)::

        loss = sum_k y'_k log(y'_k / p'_k),   y' = clip(y, eps, 1),  p' = clip(p, eps, 1)

    Backward: ``dloss/dp_k = -y'_k / p_k`` where ``p`` is inside the clip range, 0 where the clip is flat; the
    mean over ``M`` positions and ``N`` samples divides it by ``M N``.
    """

    name = "kullback_leibler_divergence"

    def per_sample(self, y_true, y_pred):
        eps = backend.epsilon()
        y, p = np.clip(_rows(y_true), eps, 1), np.clip(_rows(y_pred), eps, 1)
        return (y * np.log(y / p)).sum(axis=-1).mean(axis=-1)

    def mean_gradient(self, y_true, y_pred):
        eps = backend.epsilon()
        y = np.clip(y_true, eps, 1)
        p = np.clip(y_pred, eps, 1)
        grad = np.where(p == y_pred, -y / p, 0)
        positions = grad[0].size // grad.shape[-1]
        return (grad / (positions * len(grad))).astype(y_pred.dtype, copy=False)
