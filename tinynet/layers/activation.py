"""Activation layers: ``Activation(name)`` for any named function and ``ReLU`` with Keras 2.2's options."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet import activations
from tinynet.layers.base import Layer


class Activation(Layer):
    r"""Applies a named element-wise function: ``Activation('relu' | 'softmax' | 'sigmoid' | 'tanh' | 'linear')``.

    Shapes: any ``(N, ...)`` in, the same shape out (softmax normalises over the last axis).

    Forward ``y = f(x)``; backward ``dx = f'(dy)`` written with the output ``y`` alone (the table and the
    softmax derivation are in :mod:`tinynet.activations`). Each output depends only on its own input (softmax:
    on its own row), so the Jacobian is diagonal (block-diagonal) and ``dx`` is ``dy`` times the local slope,
    never a full matrix product. No parameters. Cache: the output ``y``.
    """

    def __init__(self, activation: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation = activations.get(activation, owner=f"{self.name} activation")

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y = self.activation.forward(self._prepare_input(x))
        self._cache = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        y = self._take_cache()
        return self.activation.backward(self._check_output_gradient(dy, y.shape), y)

    def backward_preactivation(self, dz: np.ndarray) -> np.ndarray:
        """The gradient before the activation is the input gradient: pass it through (fused softmax loss)."""
        y = self._take_cache()
        return self._check_output_gradient(dz, y.shape)

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"activation": self.activation.name}


class ReLU(Layer):
    r"""Rectified linear unit with Keras 2.2's options::

        y = max_value                     if x >= max_value
        y = x                             if threshold <= x < max_value
        y = negative_slope * (x - threshold)   if x < threshold

    Shapes: any ``(N, ...)`` in, the same shape out; no parameters.

    Backward: each output depends on its own input only, through a straight piece, so the Jacobian is diagonal
    and ``dx = dy * slope(x)``, the slope of the piece ``x`` fell in (1, 0 or ``negative_slope``); at the
    kink ``x == threshold`` the right-hand slope (1) is used, except for the default ``threshold = 0`` with
    ``negative_slope = 0`` where ``x = 0`` gets 0 like ``Activation('relu')``. Cache: the input ``x``.
    """

    def __init__(
        self, max_value: float | None = None, negative_slope: float = 0.0, threshold: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        for argument, value in (("max_value", max_value), ("negative_slope", negative_slope),
                                ("threshold", threshold)):
            if value is None and argument == "max_value":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) \
                    or np.isnan(value):
                raise TypeError(f"{self.name}: {argument} must be a number, got {value!r}")
        if max_value is not None and max_value < 0:
            raise ValueError(f"{self.name}: max_value must be >= 0 or None, got {max_value!r}")
        if negative_slope < 0:
            raise ValueError(f"{self.name}: negative_slope must be >= 0, got {negative_slope!r}")
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope = float(negative_slope)
        self.threshold = float(threshold)

    def _slope(self, x: np.ndarray) -> np.ndarray:
        above = x > self.threshold if self.negative_slope == 0 else x >= self.threshold
        slope = np.where(above, 1, self.negative_slope).astype(x.dtype)
        if self.max_value is not None:
            slope[x >= self.max_value] = 0
        return slope

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        if self.max_value is None and self.negative_slope == 0 and self.threshold == 0:
            y = np.maximum(x, 0, dtype=x.dtype)
        else:
            y = np.where(x >= self.threshold, x, self.negative_slope * (x - self.threshold)).astype(x.dtype)
            if self.max_value is not None:
                np.minimum(y, self.max_value, out=y)
        self._cache = x
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        x = self._take_cache()
        return self._check_output_gradient(dy, x.shape) * self._slope(x)

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {
            "max_value": self.max_value, "negative_slope": self.negative_slope, "threshold": self.threshold,
        }
