"""Losses with Keras 2 names, each with its hand-written gradient.

A loss is an object with three methods, all over a batch of ``N`` samples:

* ``per_sample(y_true, y_pred) -> (N,)``   the loss of each sample (Keras's loss *function*);
* ``__call__(y_true, y_pred) -> float``    their mean, what ``fit`` reports and minimises;
* ``gradient(y_true, y_pred) -> dL/dy_pred`` of that mean, the array the last layer's backward receives.

Losses that follow a softmax also give ``softmax_gradient(y_true, probabilities) -> dL/dz``, the gradient with
respect to the softmax's *input* (the logits), which the model uses instead of chaining the two backward passes.

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


def _clipped(probabilities: np.ndarray) -> np.ndarray:
    eps = backend.epsilon()
    return np.clip(probabilities, eps, 1 - eps)


class Loss:
    """Base class. Subclasses set ``name`` and implement ``per_sample`` and ``gradient``."""

    name = "loss"
    #: True when ``softmax_gradient`` is available (the model fuses it with a final softmax).
    fuses_with_softmax = False
    #: The accuracy that ``metrics=['accuracy']`` means with this loss.
    accuracy_metric = "categorical_accuracy"

    def per_sample(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(np.mean(self.per_sample(y_true, y_pred), dtype=np.float64))

    def gradient(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def softmax_gradient(self, y_true: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{self.name} has no fused softmax gradient")

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

    def per_sample(self, y_true, y_pred):
        total = y_pred.sum(axis=-1, keepdims=True)
        return -(y_true * np.log(_clipped(y_pred / total))).sum(axis=-1)

    def gradient(self, y_true, y_pred):
        batch = y_pred.shape[0]
        total = y_pred.sum(axis=-1, keepdims=True)
        q = y_pred / total
        eps = backend.epsilon()
        inside = (q > eps) & (q < 1 - eps)
        g = np.where(inside, -y_true / np.where(inside, q, 1), 0)
        return ((g - (g * q).sum(axis=-1, keepdims=True)) / total / batch).astype(y_pred.dtype, copy=False)

    def softmax_gradient(self, y_true, probabilities):
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

    @staticmethod
    def _labels(y_true: np.ndarray) -> np.ndarray:
        return y_true.reshape(-1).astype(np.intp, copy=False)

    def per_sample(self, y_true, y_pred):
        labels = self._labels(y_true)
        picked = y_pred[np.arange(len(labels)), labels] / y_pred.sum(axis=-1)
        return -np.log(_clipped(picked))

    def gradient(self, y_true, y_pred):
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

    def softmax_gradient(self, y_true, probabilities):
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

    def gradient(self, y_true, y_pred):
        return (2 * (y_pred - y_true) / y_pred[0].size / len(y_pred)).astype(y_pred.dtype, copy=False)


class BinaryCrossentropy(Loss):
    r"""Binary cross-entropy on probabilities (after a sigmoid), averaged over the last axis as Keras does::

        q = clip(p, eps, 1 - eps);  loss = mean_k -(y_k log q_k + (1 - y_k) log(1 - q_k))

    Shapes: ``y_true`` and ``y_pred`` ``(N, ..., K)``, targets in ``[0, 1]``; per-sample losses ``(N,)``.

    Backward of the batch mean: the derivative of ``-(y log q + (1 - y) log(1 - q))`` is
    ``-y / q + (1 - y) / (1 - q) = (q - y) / (q (1 - q))``, and the means over ``K`` outputs and ``N`` samples
    divide it by ``K N``: ``dL/dp = (q - y) / (q (1 - q)) / (K N)`` (0 where ``p`` was clipped, as the clip is
    flat there). Fused with a sigmoid it would be ``(p - y) / (K N)``; tinynet chains the two instead.
    """

    name = "binary_crossentropy"
    accuracy_metric = "binary_accuracy"

    def per_sample(self, y_true, y_pred):
        q = _clipped(y_pred)
        values = -(y_true * np.log(q) + (1 - y_true) * np.log(1 - q))
        return values.reshape(len(y_pred), -1).mean(axis=-1)

    def gradient(self, y_true, y_pred):
        q = _clipped(y_pred)
        inside = q == y_pred
        grad = np.where(inside, (q - y_true) / (q * (1 - q)), 0) / y_pred[0].size / len(y_pred)
        return grad.astype(y_pred.dtype, copy=False)


_BY_NAME: dict[str, type[Loss]] = {
    cls.name: cls
    for cls in (CategoricalCrossentropy, SparseCategoricalCrossentropy, MeanSquaredError, BinaryCrossentropy)
}
_BY_NAME["mse"] = MeanSquaredError

# Keras's function-style names: ``losses.categorical_crossentropy(y_true, y_pred)`` gives per-sample losses.
categorical_crossentropy = CategoricalCrossentropy().per_sample
sparse_categorical_crossentropy = SparseCategoricalCrossentropy().per_sample
mean_squared_error = MeanSquaredError().per_sample
binary_crossentropy = BinaryCrossentropy().per_sample


def get(identifier: str | Loss) -> Loss:
    """A loss from its Keras name (``'categorical_crossentropy'``...) or a :class:`Loss` instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, str):
        if identifier in _BY_NAME:
            return _BY_NAME[identifier]()
        raise ValueError(f"loss: unknown loss {identifier!r}; expected one of {', '.join(sorted(_BY_NAME))}")
    for name, function in (("categorical_crossentropy", categorical_crossentropy),
                           ("sparse_categorical_crossentropy", sparse_categorical_crossentropy),
                           ("mean_squared_error", mean_squared_error),
                           ("binary_crossentropy", binary_crossentropy)):
        if identifier == function:
            return _BY_NAME[name]()
    raise TypeError(f"loss: expected a loss name or a tinynet.losses.Loss, got {type(identifier).__name__}")
