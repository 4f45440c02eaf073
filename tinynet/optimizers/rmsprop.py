"""RMSprop with Keras 2.2.4's exact equations (epsilon outside the square root, no momentum, no centering)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet.kernels.rmsprop import rmsprop_update
from tinynet.optimizers.base import Optimizer, check_epsilon, check_rate


class RMSprop(Optimizer):
    r"""RMSprop (Hinton's lecture 6e) exactly as Keras 2.2.4 writes it.

    For every parameter ``p`` with gradient ``g`` and accumulator ``a`` (zero at the start), with ``lr_t`` the
    learning rate after Keras 2's decay ``lr / (1 + decay * iterations)`` (or a schedule's value)::

        a = rho * a + (1 - rho) * g**2
        p = p - lr_t * g / (sqrt(a) + epsilon)

    Why: ``a`` is an exponential moving average of ``g**2`` over roughly the last ``1 / (1 - rho)`` steps, so
    ``sqrt(a)`` estimates the typical size of each gradient component. Dividing by it gives every component a step of
    about ``lr_t`` whatever its scale: steep directions are slowed, flat ones sped up. ``epsilon`` keeps the division
    finite where gradients have been zero.

    Keras 2.2.4 defaults: ``lr=0.001, rho=0.9, epsilon=None`` (``K.epsilon()`` = 1e-7), ``decay=0``. Keras 3 puts
    epsilon *inside* the square root (``sqrt(a + epsilon)``) and adds ``momentum`` and ``centered``; tinynet follows
    2.2.4. One slot per parameter: ``accumulators``.
    """

    slot_names = ("accumulators",)

    def __init__(self, learning_rate: Any = 0.001, rho: float = 0.9, epsilon: float | None = None,
                 decay: float = 0.0, lr: Any = None, clipnorm: float | None = None,
                 clipvalue: float | None = None) -> None:
        super().__init__(learning_rate, decay, lr, clipnorm, clipvalue)
        self.rho = check_rate("RMSprop", "rho", rho)
        self.epsilon = check_epsilon("RMSprop", epsilon)

    def update_step(self, param: np.ndarray, grad: np.ndarray, slots: tuple[np.ndarray, ...],
                    learning_rate: float) -> int:
        return rmsprop_update(param, grad, slots[0], learning_rate, self.rho, self.epsilon)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}
