"""ELU: the exponential linear unit as a layer, with its ``alpha`` (Keras 2's ``ELU(alpha=1.0)``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet import activations
from tinynet.layers.base import Layer, check_non_negative_number


class ELU(Layer):
    r"""Exponential linear unit (Clevert et al., 2015), Keras 2's ``ELU(alpha=1.0)``.

    Shapes: any ``(N, ...)`` in, the same shape out; no parameters.

    Forward, element by element::

        y = x                      if x > 0
        y = alpha * (e^x - 1)      if x <= 0

    Backward: each output depends on its own input only, so the Jacobian is diagonal. Its diagonal is 1 on the
    straight piece and ``alpha e^x`` on the curved one, and ``alpha e^x = y + alpha`` there, so the slope can be
    read off the output::

        dx = dy * (1 if y > 0 else y + alpha)

    ``y > 0`` tells the pieces apart only when ``alpha >= 0`` (a negative ``alpha`` would make ``y > 0`` for
    ``x < 0``), hence the check in the constructor. At ``x = 0`` the slope is ``alpha`` (TensorFlow's rule:
    ``dy * (y + 1)`` for ``y <= 0``, times ``alpha``), which is continuous for the default ``alpha = 1``.

    ``ELU()`` computes what ``Activation('elu')`` does; ``activations.elu`` holds the shared formula.
    Cache: the output ``y``.
    """

    def __init__(self, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = check_non_negative_number(alpha, "alpha", self.name)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y = activations.elu(self._prepare_input(x), self.alpha)
        self._cache = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        y = self._take_cache()
        dy = self._check_output_gradient(dy, y.shape)
        if not self.needs_input_gradient:
            return None
        return activations.elu_backward(dy, y, self.alpha)

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"alpha": self.alpha}
