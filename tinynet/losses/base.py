"""The loss contract, and Keras 2's per-sample weighting that every loss inherits.

A loss is an object with these methods, all over a batch of ``N`` samples:

* ``per_sample(y_true, y_pred) -> (N,)``                 the loss ``l_i`` of each sample (Keras's loss *function*);
* ``mean_gradient(y_true, y_pred) -> dL/dy_pred``        the gradient of their plain mean ``L = mean_i l_i``;
* ``__call__(y_true, y_pred, sample_weight=None)``        the (weighted) mean, what ``fit`` reports and minimises;
* ``gradient(y_true, y_pred, sample_weight=None)``        its gradient, the array the last layer's backward receives.

A subclass writes the first two; the base class turns them into the weighted pair. Losses that follow a softmax
also write ``softmax_mean_gradient(y_true, probabilities) -> dL/dz`` (with respect to the softmax's *input*), and
the base class gives the weighted ``softmax_gradient``.

Weighting, as Keras 2.2.4's ``weighted_masked_objective`` (``keras/engine/training_utils.py``) does it: with
per-sample losses ``l_i`` and weights ``w_i >= 0``::

    L_w = mean_i(l_i w_i) / mean_i(w_i != 0)  =  sum_i l_i w_i / nnz(w)

so weights rescale samples without changing the loss's scale when all of them are 1, and zero-weight samples
drop out of the count. Each ``l_i`` depends only on sample ``i``'s prediction, so::

    dL_w/dy_i = w_i / nnz(w) * dl_i/dy_i  =  dL/dy_i * (N w_i / nnz(w))

the plain mean's gradient (``dl_i/dy_i / N``) scaled per sample: one multiplication for every loss, fused softmax
included (``(p - y) / N * N w_i / nnz(w)``). Without weights nothing is scaled, so the unweighted path is exactly
the plain mean. One deviation: Keras divides 0 by 0 (NaN) when every weight of a batch is zero; tinynet reports
that batch's loss as 0 with a zero gradient, since there is nothing in it to learn from.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet import backend


def clipped(probabilities: np.ndarray) -> np.ndarray:
    """Probabilities clipped to ``[eps, 1 - eps]`` before a log, as Keras 2 does."""
    eps = backend.epsilon()
    return np.clip(probabilities, eps, 1 - eps)


def weighted_mean(values: np.ndarray, sample_weight: np.ndarray) -> float:
    """``mean(l w) / mean(w != 0)`` in float64 (0 when every weight is 0)."""
    nonzero = np.count_nonzero(sample_weight)
    if nonzero == 0:
        return 0.0
    return float(np.sum(values * np.asarray(sample_weight, dtype=np.float64), dtype=np.float64) / nonzero)


def scale_by_weights(mean_gradient: np.ndarray, sample_weight: np.ndarray | None) -> np.ndarray:
    """The gradient of the weighted mean from the plain mean's: each sample's rows times ``N w_i / nnz(w)``."""
    if sample_weight is None:
        return mean_gradient
    weights = np.asarray(sample_weight, dtype=np.float64)
    nonzero = np.count_nonzero(weights)
    scale = weights * (len(weights) / nonzero) if nonzero else np.zeros_like(weights)
    scaled = mean_gradient * scale.reshape(-1, *(1,) * (mean_gradient.ndim - 1))
    return scaled.astype(mean_gradient.dtype, copy=False)


def elements_per_sample(y_pred: np.ndarray) -> int:
    """How many outputs one sample has: the per-sample losses average over all of them."""
    return int(np.prod(y_pred.shape[1:], dtype=np.int64))


class Loss:
    """Base class. Subclasses set ``name`` and implement ``per_sample`` and ``mean_gradient``."""

    name = "loss"
    #: True when ``softmax_mean_gradient`` is available (the model fuses it with a final softmax).
    fuses_with_softmax = False
    #: The accuracy that ``metrics=['accuracy']`` means with this loss.
    accuracy_metric = "categorical_accuracy"

    def per_sample(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def mean_gradient(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def softmax_mean_gradient(self, y_true: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{self.name} has no fused softmax gradient")

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
        values = self.per_sample(y_true, y_pred)
        if sample_weight is None:
            return float(np.mean(values, dtype=np.float64))
        return weighted_mean(values, sample_weight)

    def gradient(self, y_true: np.ndarray, y_pred: np.ndarray,
                 sample_weight: np.ndarray | None = None) -> np.ndarray:
        """``dL_w/dy_pred`` of the (weighted) batch mean."""
        return scale_by_weights(self.mean_gradient(y_true, y_pred), sample_weight)

    def softmax_gradient(self, y_true: np.ndarray, probabilities: np.ndarray,
                         sample_weight: np.ndarray | None = None) -> np.ndarray:
        """``dL_w/dz`` with respect to the logits of the softmax that produced ``probabilities``."""
        return scale_by_weights(self.softmax_mean_gradient(y_true, probabilities), sample_weight)

    def check_targets(self, y: np.ndarray, output_shape: tuple[int, ...], argument: str = "y") -> np.ndarray:
        """Validate targets against the model's per-sample output shape; return them ready for this loss."""
        y = np.asarray(y)
        if y.shape[1:] != tuple(output_shape):
            raise ValueError(
                f"{argument}: loss '{self.name}' expects targets of shape (samples, "
                f"{', '.join(map(str, output_shape))}) to match the model output, got {y.shape}"
            )
        return y

    def get_config(self) -> dict[str, Any]:
        return {}


class ElementwiseLoss(Loss):
    """A loss that is the mean, over every output of a sample, of one function ``f(y, p)`` of each output.

    ``l_i = mean_k f(y_ik, p_ik)``, so ``dL/dp_ik = f'(y_ik, p_ik) / (K N)`` with ``K`` the outputs per sample.
    Keras 2 averages over the last axis and the weighting averages the rest: the same mean. Subclasses write
    ``elementwise`` (``f``) and ``derivative`` (``df/dp``).
    """

    def elementwise(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def derivative(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def per_sample(self, y_true, y_pred):
        return self.elementwise(y_true, y_pred).reshape(len(y_pred), -1).mean(axis=-1)

    def mean_gradient(self, y_true, y_pred):
        scale = elements_per_sample(y_pred) * len(y_pred)
        return (self.derivative(y_true, y_pred) / scale).astype(y_pred.dtype, copy=False)
