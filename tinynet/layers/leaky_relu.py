"""LeakyReLU: a rectifier that lets a small slope ``alpha`` through for negative inputs."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet.layers.base import Layer, check_non_negative_number


class LeakyReLU(Layer):
    r"""Leaky rectified linear unit, Keras 2's ``LeakyReLU(alpha=0.3)``.

    Shapes: any ``(N, ...)`` in, the same shape out; no parameters.

    Forward, element by element::

        y = x            if x > 0
        y = alpha * x    if x <= 0

    Backward: each output depends on its own input only, through a straight line, so the Jacobian is diagonal
    and its diagonal is the slope of the piece ``x`` fell in::

        dx = dy * (1 if x > 0 else alpha)

    At the kink ``x == 0`` the derivative does not exist; tinynet uses ``alpha`` there, as TensorFlow's
    ``leaky_relu`` gradient does (Keras 2.3 calls it). Keras 2.2 built the function as
    ``relu(x) - alpha * relu(-x)``, whose gradient at exactly 0 is 0; the forward values are the same.

    Cache: the boolean mask ``x > 0`` (one byte per element, a quarter of the float32 input).

    Unlike ``ReLU``, a unit never dies: a negative input still passes ``alpha`` of its gradient back, so a unit
    pushed below zero for every sample can recover.
    """

    def __init__(self, alpha: float = 0.3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = check_non_negative_number(alpha, "alpha", self.name)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        positive = x > 0
        y = np.where(positive, x, self.dtype.type(self.alpha) * x)
        self._cache = positive
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        positive = self._take_cache()
        dy = self._check_output_gradient(dy, positive.shape)
        if not self.needs_input_gradient:
            return None
        return np.where(positive, dy, self.dtype.type(self.alpha) * dy)

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"alpha": self.alpha}
