"""The cross-entropies (categorical, sparse categorical, binary), each with its hand-written gradient.

The categorical ones also give ``softmax_mean_gradient(y_true, probabilities) -> dL/dz``, the gradient with
respect to the softmax's *input* (the logits), which the model uses instead of chaining the two backward passes.
With ``from_logits=True`` (Keras 2.3) the loss takes the logits itself and there is no softmax layer to fuse with;
``label_smoothing=s`` (Keras 2.3) trains on ``y (1 - s) + s / K`` (``y (1 - s) + s / 2`` for the binary one).

Why the fused gradient is ``(p - y) / N``: with ``p = softmax(z)`` and ``L = -(1/N) sum_n sum_k y_nk log p_nk``,
``d log p_k / d z_i = delta_ki - p_i``, so ``dL/dz_ni = -(1/N) sum_k y_nk (delta_ki - p_ni)
= (p_ni sum_k y_nk - y_ni) / N``, which is ``(p_ni - y_ni) / N`` when each target row sums to 1 (one-hot or a
probability distribution). It never divides by a small ``p`` the way the chained form ``-y / p`` does.

The Keras 2 clipping, and where the fused gradient differs from it: Keras renormalises ``p`` to sum to 1 and
clips it to ``[eps, 1 - eps]`` (``eps = 1e-7``) before the log, so a sample whose true-class probability is below
``eps`` has its loss capped at ``-log(eps) ~= 16.118`` and, in Keras, a zero gradient (the clip is flat there).
tinynet reports the same clipped loss value, but the fused gradient keeps pushing such a sample (``p - y`` is
nearly ``-1`` on its true class) rather than ignoring it: that is the exact gradient of the unclipped loss, and
the better behaviour. The unfused :meth:`CategoricalCrossentropy.gradient` follows Keras exactly, clip included.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet import backend
from tinynet.losses.base import Loss, clipped


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(_log_softmax(logits))


def _check_options(name: str, from_logits: Any, label_smoothing: Any = 0.0) -> None:
    if not isinstance(from_logits, bool | np.bool_):
        raise TypeError(f"{name}: from_logits must be True or False, got {from_logits!r}")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, int | float | np.floating) \
            or not 0 <= label_smoothing <= 1:
        raise ValueError(f"{name}: label_smoothing must be a number in [0, 1], got {label_smoothing!r}")


class CategoricalCrossentropy(Loss):
    r"""Cross-entropy between one-hot (or probability) targets ``y`` and predicted probabilities ``p``.

    Shapes: ``y_true`` and ``y_pred`` ``(N, K)``; per-sample losses ``(N,)``. No cache: a pure function.

    Forward, per sample, as Keras 2 computes it::

        q = clip(p / sum_k p_k, eps, 1 - eps)
        loss = -sum_k y_k log q_k

    Backward of the batch mean (unfused; exactly Keras's, including the flat clip)::

        g_k  = -y_k / q_k  where eps < q_k < 1 - eps, else 0        (dL/dq)
        dL/dp_j = (g_j - sum_k g_k q_k) / S / N                    (through q = p / S, S = sum_k p_k)

    Fused with a softmax: ``dL/dz = (p - y) / N`` (see the module docstring for the derivation and the one case,
    clipped probabilities, where it differs from Keras).
    """

    name = "categorical_crossentropy"
    fuses_with_softmax = True

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0) -> None:
        _check_options(self.name, from_logits, label_smoothing)
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)
        # Logits reach the loss without a softmax layer, so there is no softmax to fuse with.
        self.fuses_with_softmax = not self.from_logits

    def get_config(self) -> dict[str, Any]:
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing}

    def _smoothed(self, y_true: np.ndarray) -> np.ndarray:
        # Keras 2.3: y (1 - s) + s / K, spreading s of each target's mass evenly over the K classes.
        if not self.label_smoothing:
            return y_true
        return y_true * (1 - self.label_smoothing) + self.label_smoothing / y_true.shape[-1]

    def per_sample(self, y_true, y_pred):
        y_true = self._smoothed(y_true)
        if self.from_logits:  # -sum y log softmax(z), with the log-softmax computed stably
            return -(y_true * _log_softmax(y_pred)).sum(axis=-1)
        total = y_pred.sum(axis=-1, keepdims=True)
        return -(y_true * np.log(clipped(y_pred / total))).sum(axis=-1)

    def mean_gradient(self, y_true, y_pred):
        y_true = self._smoothed(y_true)
        batch = y_pred.shape[0]
        if self.from_logits:  # d/dz of -sum_k y_k log softmax(z)_k = softmax(z) sum_k y_k - y
            probabilities = _softmax(y_pred)
            grad = probabilities * y_true.sum(axis=-1, keepdims=True) - y_true
            return (grad / batch).astype(y_pred.dtype, copy=False)
        total = y_pred.sum(axis=-1, keepdims=True)
        q = y_pred / total
        eps = backend.epsilon()
        inside = (q > eps) & (q < 1 - eps)
        g = np.where(inside, -y_true / np.where(inside, q, 1), 0)
        return ((g - (g * q).sum(axis=-1, keepdims=True)) / total / batch).astype(y_pred.dtype, copy=False)

    def softmax_mean_gradient(self, y_true, probabilities):
        y_true = self._smoothed(y_true)
        return ((probabilities - y_true) / probabilities.shape[0]).astype(probabilities.dtype, copy=False)

    def check_targets(self, y, output_shape, argument="y"):
        y = super().check_targets(y, output_shape, argument)
        if y.dtype.kind not in "fiub":
            raise TypeError(f"{argument}: expected numeric one-hot targets, got dtype {y.dtype}")
        return y


class SparseCategoricalCrossentropy(Loss):
    r"""Categorical cross-entropy with integer class labels instead of one-hot rows.

    Shapes: ``y_true`` ``(N,)`` integer labels (or ``(N, 1)``), ``y_pred`` ``(N, K)`` probabilities.

    Forward, per sample with label ``c``, renormalised and clipped exactly as :class:`CategoricalCrossentropy`
    (so the two agree on one-hot targets, and with Keras when a row of ``p`` does not sum to 1)::

        S = sum_k p_k;   q_c = p_c / S;   loss = -log clip(q_c, eps, 1 - eps)

    Backward of the batch mean: ``g = dL/dq_c = -1 / q_c`` (0 where clipped, as the clip is flat), and through
    ``q_c = p_c / S``, whose derivative is ``(delta_jc - q_c) / S``::

        dL/dp_j = g * (delta_jc - q_c) / (S N)
                = (1 - delta_jc / q_c) / (S N)     inside the clip range, where g q_c = -1; 0 outside

    Every class gets a gradient, not only the true one: raising any ``p_j`` lowers ``q_c`` through ``S``. On a
    softmax output (``S = 1``) the extra uniform part ``1 / N`` is what the softmax's Jacobian sends to zero, so
    the fused gradient is still ``dL/dz = (p - onehot(c)) / N``.

    Keras 3 (NumPy and JAX backends) renormalises then clips, as here. Keras 2.2's TensorFlow backend clipped
    first and let ``sparse_softmax_cross_entropy_with_logits(log p)`` renormalise; the two orders differ only
    where some probability is clipped.
    """

    name = "sparse_categorical_crossentropy"
    fuses_with_softmax = True
    accuracy_metric = "sparse_categorical_accuracy"

    def __init__(self, from_logits: bool = False) -> None:
        _check_options(self.name, from_logits)
        self.from_logits = bool(from_logits)
        self.fuses_with_softmax = not self.from_logits

    def get_config(self) -> dict[str, Any]:
        return {"from_logits": self.from_logits}

    @staticmethod
    def _labels(y_true: np.ndarray) -> np.ndarray:
        return y_true.reshape(-1).astype(np.intp, copy=False)

    def per_sample(self, y_true, y_pred):
        labels = self._labels(y_true)
        if self.from_logits:  # -log softmax(z)_c
            return -_log_softmax(y_pred)[np.arange(len(labels)), labels]
        picked = y_pred[np.arange(len(labels)), labels] / y_pred.sum(axis=-1)
        return -np.log(clipped(picked))

    def mean_gradient(self, y_true, y_pred):
        if self.from_logits:
            return self.softmax_mean_gradient(y_true, _softmax(y_pred)).astype(y_pred.dtype, copy=False)
        labels = self._labels(y_true)
        rows = np.arange(len(labels))
        total = y_pred.sum(axis=-1)
        q = y_pred[rows, labels] / total
        eps = backend.epsilon()
        inside = (q > eps) & (q < 1 - eps)
        g = np.where(inside, -1.0 / np.where(inside, q, 1), 0)  # dL/dq_c per sample
        grad = np.empty_like(y_pred)
        grad[...] = (-g * q / total / len(labels))[:, None]   # the part through S, the same for every class
        grad[rows, labels] += g / total / len(labels)          # plus the direct part on the true class
        return grad

    def softmax_mean_gradient(self, y_true, probabilities):
        labels = self._labels(y_true)
        grad = probabilities.copy()
        grad[np.arange(len(labels)), labels] -= 1
        grad /= len(labels)
        return grad

    def check_targets(self, y, output_shape, argument="y"):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"{argument}: loss '{self.name}' expects integer labels of shape (samples,), "
                             f"got {y.shape}")
        if y.dtype.kind == "f":
            if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
                raise TypeError(f"{argument}: loss '{self.name}' expects integer class labels, got non-integer "
                                "floats")
        elif y.dtype.kind not in "iu":
            raise TypeError(f"{argument}: loss '{self.name}' expects integer class labels, got dtype {y.dtype}")
        classes = output_shape[-1]
        if y.size and (y.min() < 0 or y.max() >= classes):
            raise ValueError(f"{argument}: labels must lie in [0, {classes - 1}] for a {classes}-way output, "
                             f"got values in [{y.min()}, {y.max()}]")
        return y.astype(np.int64, copy=False)


class BinaryCrossentropy(Loss):
    r"""Binary cross-entropy on probabilities (after a sigmoid), averaged over the last axis as Keras does::

        q = clip(p, eps, 1 - eps);  loss = mean_k -(y_k log q_k + (1 - y_k) log(1 - q_k))

    Shapes: ``y_true`` and ``y_pred`` ``(N, ..., K)``, targets in ``[0, 1]``; per-sample losses ``(N,)``.

    Backward of the batch mean: the derivative of ``-(y log q + (1 - y) log(1 - q))`` is
    ``-y / q + (1 - y) / (1 - q) = (q - y) / (q (1 - q))``, and the means over ``K`` outputs and ``N`` samples
    divide it by ``K N``: ``dL/dp = (q - y) / (q (1 - q)) / (K N)`` (0 where ``p`` was clipped, as the clip is
    flat there). Fused with a sigmoid it would be ``(p - y) / (K N)``; tinynet chains the two instead.

    With ``from_logits=True`` the predictions are logits ``z`` and the loss is computed without a log of a small
    number, ``max(z, 0) - z y + log(1 + exp(-|z|))`` (TensorFlow's ``sigmoid_cross_entropy_with_logits``), whose
    derivative is ``sigmoid(z) - y``.
    """

    name = "binary_crossentropy"
    accuracy_metric = "binary_accuracy"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0) -> None:
        _check_options(self.name, from_logits, label_smoothing)
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)

    def get_config(self) -> dict[str, Any]:
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing}

    def _smoothed(self, y_true: np.ndarray) -> np.ndarray:
        if not self.label_smoothing:
            return y_true
        return y_true * (1 - self.label_smoothing) + 0.5 * self.label_smoothing

    def per_sample(self, y_true, y_pred):
        y_true = self._smoothed(y_true)
        if self.from_logits:
            values = np.maximum(y_pred, 0) - y_pred * y_true + np.log1p(np.exp(-np.abs(y_pred)))
        else:
            q = clipped(y_pred)
            values = -(y_true * np.log(q) + (1 - y_true) * np.log(1 - q))
        return values.reshape(len(y_pred), -1).mean(axis=-1)

    def mean_gradient(self, y_true, y_pred):
        y_true = self._smoothed(y_true)
        if self.from_logits:
            grad = (1 / (1 + np.exp(-y_pred)) - y_true) / y_pred[0].size / len(y_pred)
        else:
            q = clipped(y_pred)
            inside = q == y_pred
            grad = np.where(inside, (q - y_true) / (q * (1 - q)), 0) / y_pred[0].size / len(y_pred)
        return grad.astype(y_pred.dtype, copy=False)
