"""Activation layers: ``Activation(name)`` for any named function and ``ReLU`` with Keras 2.2's options."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet import activations
from tinynet.layers.base import Layer


class Activation(Layer):
    r"""Applies a named element-wise function: ``Activation('relu' | 'softmax' | 'sigmoid' | 'tanh' | 'linear' |
    'elu' | 'selu' | 'softplus' | 'softsign' | 'hard_sigmoid' | 'exponential')``, Keras 2.2.4's formulas.

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
    r"""Rectified linear unit with Keras 2.2's options, computed the way Keras's backend ``relu`` composes them::

        a = x * [x > threshold]                       (strictly greater: x == threshold gives 0)
        a = clip(a, 0, max_value)                     (only when max_value is set)
        y = a - negative_slope * max(threshold - x, 0)

    For ``0 <= threshold < max_value`` that is the piecewise function of Keras's docstring::

        y = max_value                          if x >= max_value
        y = x                                  if threshold < x < max_value
        y = negative_slope * (x - threshold)   otherwise (x <= threshold)

    and Keras 2 and 3 give the same numbers. The edges follow the composition, not the prose: ``x == threshold``
    lands in the last piece, so ``y = 0`` there whatever ``threshold`` (not ``x``); a negative ``threshold`` with
    ``max_value`` set clips ``threshold < x < 0`` to 0 (the clip's lower bound), without ``max_value`` it passes
    ``x`` through.

    Shapes: any ``(N, ...)`` in, the same shape out; no parameters.

    Backward: each output depends on its own input only, through a straight piece, so the Jacobian is diagonal
    and ``dx = dy * slope(x)``, the slope of the piece the forward put ``x`` in: ``negative_slope`` for
    ``x <= threshold`` (the threshold itself included, as in the forward's strict ``x > threshold``), 0 where the
    clip is flat (``x >= max_value``, and ``x <= 0`` under a negative threshold with ``max_value``), 1 elsewhere.
    The default ``ReLU()`` is ``Activation('relu')``: slope 0 at ``x == 0``. Cache: the input ``x``.

    The planner fuses only the default ``ReLU()`` (no ``max_value``, ``negative_slope`` or ``threshold``) into its
    pooling kernels (:func:`tinynet.engine.planner`); every other ReLU runs this layer's own code.
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

    def _is_plain(self) -> bool:
        return self.max_value is None and self.negative_slope == 0 and self.threshold == 0

    def _slope(self, x: np.ndarray) -> np.ndarray:
        threshold = x.dtype.type(self.threshold)
        passes = x > threshold
        if self.max_value is not None:
            passes &= (x > 0) & (x < x.dtype.type(self.max_value))  # where clip(a, 0, max_value) is the identity
        slope = passes.astype(x.dtype)
        if self.negative_slope != 0:
            slope[x <= threshold] = self.negative_slope
        return slope

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        if self._is_plain():
            y = np.maximum(x, 0, dtype=x.dtype)
        else:
            threshold = x.dtype.type(self.threshold)  # compared in the layer's precision, like Keras's floatx
            y = np.where(x > threshold, x, 0).astype(x.dtype, copy=False)
            if self.max_value is not None:
                np.clip(y, 0, x.dtype.type(self.max_value), out=y)
            if self.negative_slope != 0:
                y -= x.dtype.type(self.negative_slope) * np.maximum(threshold - x, 0)
        self._cache = x
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        x = self._take_cache()
        return self._check_output_gradient(dy, x.shape) * self._slope(x)

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {
            "max_value": self.max_value, "negative_slope": self.negative_slope, "threshold": self.threshold,
        }
