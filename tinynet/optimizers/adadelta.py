"""Adadelta with Keras 2.2.4's exact equations (and its default learning rate 1.0)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet.kernels.adadelta import adadelta_update
from tinynet.optimizers.base import Optimizer, check_epsilon, check_rate


class Adadelta(Optimizer):
    r"""Adadelta (Zeiler 2012) exactly as Keras 2.2.4 writes it.

    For every parameter ``p`` with gradient ``g``, accumulators ``a`` (of squared gradients) and ``d`` (of squared
    updates), both zero at the start, with ``lr_t`` after Keras 2's decay (or a schedule's value)::

        a      = rho * a + (1 - rho) * g**2
        update = g * sqrt(d + epsilon) / sqrt(a + epsilon)       (the new a, the previous d)
        p      = p - lr_t * update
        d      = rho * d + (1 - rho) * update**2

    Why: like RMSprop, ``g / sqrt(a)`` normalises each component by the typical gradient size. Zeiler notes that
    this ratio has no units (a step should have the units of ``p``), and multiplies by ``sqrt(d)``, the typical size
    of recent *steps*: the units match and the method needs no learning rate, hence Keras's ``lr=1.0`` (a plain
    multiplier). ``epsilon`` starts the process (``d = 0`` at first) and keeps both roots finite.

    Keras 2.2.4 defaults: ``lr=1.0, rho=0.95, epsilon=None`` (1e-7), ``decay=0``. Keras 3 changed the default
    learning rate to 0.001, a thousand times smaller; tinynet follows 2.2.4. Slots per parameter:
    ``accumulators`` and ``delta_accumulators``.
    """

    slot_names = ("accumulators", "delta_accumulators")

    def __init__(self, learning_rate: Any = 1.0, rho: float = 0.95, epsilon: float | None = None,
                 decay: float = 0.0, lr: Any = None, clipnorm: float | None = None,
                 clipvalue: float | None = None) -> None:
        super().__init__(learning_rate, decay, lr, clipnorm, clipvalue)
        self.rho = check_rate("Adadelta", "rho", rho)
        self.epsilon = check_epsilon("Adadelta", epsilon)

    def update_step(self, param: np.ndarray, grad: np.ndarray, slots: tuple[np.ndarray, ...],
                    learning_rate: float) -> int:
        return adadelta_update(param, grad, slots[0], slots[1], learning_rate, self.rho, self.epsilon)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}
