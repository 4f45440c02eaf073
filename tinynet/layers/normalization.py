"""BatchNormalization: standardise each feature over the batch, then scale and shift it with learned weights."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet import initializers as initializers_module
from tinynet.layers import batch_shard
from tinynet.layers.base import Layer


class BatchNormalization(Layer):
    r"""Batch normalization (Ioffe and Szegedy, 2015), Keras 2's ``BatchNormalization``.

    Shapes: any ``(N, ..., C, ...)`` in, the same shape out. ``axis`` (default -1, the channels of ``(N, H, W, C)``
    images or the features of ``(N, D)`` rows) is the feature axis, counted with the batch axis like Keras;
    every other axis is *reduced*: the statistics of feature ``c`` come from ``m`` values, the batch times the
    spatial positions (``m = N*H*W`` after a convolution). Weights, all of shape ``(C,)``, in Keras's
    ``get_weights`` order: ``gamma`` (if ``scale``), ``beta`` (if ``center``), then the non-trainable
    ``moving_mean`` and ``moving_variance`` (in ``layer.state``: the optimizer never touches them).

    Forward at training (``training=True``), per feature ``c``, sums over the ``m`` reduced positions::

        mu     = (1/m) sum x                              the batch mean
        var    = (1/m) sum (x - mu)^2                     the batch variance (biased, as tf.nn.moments)
        x_hat  = (x - mu) / sqrt(var + epsilon)
        y      = gamma * x_hat + beta

    and the moving statistics follow the batch ones (Keras 2.2/2.3, ``moving_average_update``)::

        moving_mean     = momentum * moving_mean     + (1 - momentum) * mu
        moving_variance = momentum * moving_variance + (1 - momentum) * var * m / (m - (1 + epsilon))

    The factor ``m / (m - 1 - epsilon)`` is Keras 2's: the moving variance tracks the *unbiased* sample variance
    (Bessel's correction, with Keras's epsilon in it), while normalisation uses the biased one. Keras 2.2's
    TensorFlow backend also asked for ``zero_debias``; tinynet does not reproduce that quirk.

    Where tinynet follows Keras 2, not Keras 3 (whose ``BatchNormalization`` differs on both points):

    * **Bessel-corrected moving variance.** Keras 3 moves ``moving_variance`` towards the biased batch variance
      ``var`` itself; tinynet, like Keras 2, towards ``var * m / (m - 1 - epsilon)``. With ``m = 2`` and
      ``epsilon = 1e-3`` that is about twice the batch variance.
    * **A frozen layer still normalises with the batch.** With ``trainable=False`` (a "frozen" layer, as when
      fine-tuning), Keras 3 runs the layer in inference mode, with the moving statistics, even inside ``fit``.
      Keras 2, and tinynet, keep ``training`` as given: a training forward normalises with the batch's ``mu``
      and ``var``, and the backward pass is the training one. Only the state stays frozen: Keras 2 drops the
      updates of a layer that is not trainable (``Layer.updates`` is empty), so ``gamma``, ``beta`` *and* the
      moving statistics stay as they were. To freeze a layer the Keras 3 way, call it with ``training=False``.

    Forward at inference (``training=False``): the same formula with the moving statistics in place of
    ``mu`` and ``var``, no update. Then ``y`` is an affine function of ``x`` per feature.

    Backward at inference: ``s = 1 / sqrt(moving_variance + epsilon)`` is a constant, so::

        dbeta  = sum dy            dgamma = sum dy * x_hat            dx = dy * gamma * s

    Backward at training, the derivation. Write ``s = 1 / sqrt(var + epsilon)`` and ``g = dy * gamma``
    (``= dL/dx_hat``); all sums run over the ``m`` reduced positions of one feature.

    1. ``y = gamma * x_hat + beta``: ``dbeta = sum dy``, ``dgamma = sum dy * x_hat``, ``dL/dx_hat = g``.
    2. ``x_hat_i = (x_i - mu) * s`` depends on ``x_j`` three ways: directly (``delta_ij``), through ``mu``
       (``dmu/dx_j = 1/m``) and through ``var`` (``dvar/dx_j = 2 (x_j - mu) / m``; the term through ``mu``
       vanishes because ``sum (x_i - mu) = 0``). With ``ds/dvar = -s^3 / 2``::

           dx_hat_i / dx_j = s * (delta_ij - 1/m) - (x_i - mu) * s^3 * (x_j - mu) / m
                           = s * (delta_ij - 1/m - x_hat_i * x_hat_j / m)

    3. Contract with ``g``::

           dx_j = sum_i g_i dx_hat_i/dx_j = (s / m) * (m * g_j - sum_i g_i - x_hat_j * sum_i g_i x_hat_i)

       Read it as: the gradient ``g`` with its mean removed (the shift the batch mean undoes) and its
       component along ``x_hat`` removed (the scaling the batch variance undoes), divided by the batch's
       standard deviation. So ``sum_j dx_j = 0`` and ``sum_j dx_j x_hat_j = 0``: moving the whole batch, or
       scaling it, does not change a batch-normalised output.

    In data-parallel training (:mod:`tinynet.layers.batch_shard`) every mean above runs over the *global* batch:
    each process adds its per-feature sums to the others' (:meth:`_batch_mean`), so the statistics, the moving
    statistics and ``dx`` are those of one process running the whole batch (synchronised batch normalization).

    Cache: ``x_hat`` and ``s`` (per feature), and whether the pass was a training one. ``center=False`` drops
    ``beta`` (and ``dbeta``), ``scale=False`` drops ``gamma`` (``gamma = 1``).
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int | np.integer):
            raise TypeError(f"{self.name}: axis must be an int (the feature axis), got {axis!r}")
        for argument, value in (("momentum", momentum), ("epsilon", epsilon)):
            if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
                raise TypeError(f"{self.name}: {argument} must be a number, got {value!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"{self.name}: momentum must be in [0, 1], got {momentum!r}")
        if not epsilon > 0:
            raise ValueError(f"{self.name}: epsilon must be > 0, got {epsilon!r}")
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers_module.get(beta_initializer, owner=f"{self.name} beta_initializer")
        self.gamma_initializer = initializers_module.get(gamma_initializer, owner=f"{self.name} gamma_initializer")
        self.moving_mean_initializer = initializers_module.get(
            moving_mean_initializer, owner=f"{self.name} moving_mean_initializer")
        self.moving_variance_initializer = initializers_module.get(
            moving_variance_initializer, owner=f"{self.name} moving_variance_initializer")

    def build(self, input_shape: tuple[int, ...]) -> None:
        input_shape = self._validate_shape(input_shape, "input_shape")
        rank = len(input_shape) + 1  # with the batch axis, as Keras counts ``axis``
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ValueError(f"{self.name}: axis {self.axis} is not a feature axis of inputs of shape "
                             f"(batch, {', '.join(map(str, input_shape))}); expected one of 1..{rank - 1} "
                             f"or -1..-{rank - 1}")
        self.feature_axis = self.axis % rank
        self.reduction_axes = tuple(a for a in range(rank) if a != self.feature_axis)
        features = input_shape[self.feature_axis - 1]
        # Keras's creation order, which is also get_weights' order: gamma, beta, moving_mean, moving_variance.
        if self.scale:
            self.add_weight("gamma", (features,), self.gamma_initializer)
        if self.center:
            self.add_weight("beta", (features,), self.beta_initializer)
        self.add_weight("moving_mean", (features,), self.moving_mean_initializer, trainable=False)
        self.add_weight("moving_variance", (features,), self.moving_variance_initializer, trainable=False)
        super().build(input_shape)

    def _broadcast(self, vector: np.ndarray) -> np.ndarray:
        """A ``(C,)`` vector shaped to broadcast along the feature axis of a batch."""
        shape = [1] * (len(self._built_input_shape) + 1)
        shape[self.feature_axis] = -1
        return vector.reshape(shape)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        if training:
            mean, count = self._batch_mean(x)
            centered = x - mean
            variance, _ = self._batch_mean(centered * centered)
            inverse_std = 1.0 / np.sqrt(variance + self.dtype.type(self.epsilon))
            x_hat = centered * inverse_std
            if self.trainable:  # Keras 2 runs no state update of a frozen layer (its ``updates`` are empty)
                self._update_moving_statistics(mean.reshape(-1), variance.reshape(-1), count)
        else:
            moving_variance = self.state["moving_variance"]
            inverse_std = self._broadcast(1.0 / np.sqrt(moving_variance + self.dtype.type(self.epsilon)))
            x_hat = (x - self._broadcast(self.state["moving_mean"])) * inverse_std
        y = x_hat * self._broadcast(self.params["gamma"]) if self.scale else x_hat.copy()
        if self.center:
            y += self._broadcast(self.params["beta"])
        self._cache = (x_hat, inverse_std, bool(training))
        return y

    def _batch_mean(self, values: np.ndarray) -> tuple[np.ndarray, int]:
        """The per-feature mean of ``values`` over the reduced axes (kept, to broadcast), and how many values
        each feature's mean is over: the batch's, or in data-parallel training the global batch's."""
        shard = batch_shard.current()
        if shard is None:
            return values.mean(axis=self.reduction_axes, keepdims=True), values.size // values.shape[self.feature_axis]
        sums = values.sum(axis=self.reduction_axes, keepdims=True)
        count = values.size // values.shape[self.feature_axis] // len(values) * shard.global_size
        return shard.sum_over_shards(sums if shard.counted else np.zeros_like(sums)) / count, count

    def _update_moving_statistics(self, mean: np.ndarray, variance: np.ndarray, count: int) -> None:
        # In place: whatever holds these arrays (a saver, a checkpoint) sees the new values.
        momentum = self.dtype.type(self.momentum)
        unbiased = variance * self.dtype.type(count / (count - (1.0 + self.epsilon)))
        moving_mean, moving_variance = self.state["moving_mean"], self.state["moving_variance"]
        moving_mean *= momentum
        moving_mean += (1 - momentum) * mean
        moving_variance *= momentum
        moving_variance += (1 - momentum) * unbiased

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        x_hat, inverse_std, training = self._take_cache()
        dy = self._check_output_gradient(dy, x_hat.shape)
        axes = self.reduction_axes
        if self.center:
            self.grads["beta"] = dy.sum(axis=axes)
        if self.scale:
            self.grads["gamma"] = (dy * x_hat).sum(axis=axes)
        if not self.needs_input_gradient:
            return None
        g = dy * self._broadcast(self.params["gamma"]) if self.scale else dy
        if not training:
            return g * inverse_std
        # dx = (s / m) * (m g - sum g - x_hat sum(g x_hat)), written with means (the 1/m taken inside).
        g_mean, _ = self._batch_mean(g)
        g_along_x_hat, _ = self._batch_mean(g * x_hat)
        return (g - g_mean - x_hat * g_along_x_hat) * inverse_std

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers_module.serialize(self.beta_initializer),
            "gamma_initializer": initializers_module.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers_module.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers_module.serialize(self.moving_variance_initializer),
        }
