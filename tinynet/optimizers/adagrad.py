"""Adagrad with Keras 2.2.4's exact equations (accumulator from zero, epsilon outside the square root)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet.kernels.adagrad import adagrad_update
from tinynet.optimizers.base import Optimizer, check_epsilon


class Adagrad(Optimizer):
    r"""Adagrad (Duchi, Hazan & Singer 2011) exactly as Keras 2.2.4 writes it.

    For every parameter ``p`` with gradient ``g`` and accumulator ``a`` (zero at the start), with ``lr_t`` the
    learning rate after Keras 2's decay (or a schedule's value)::

        a = a + g**2
        p = p - lr_t * g / (sqrt(a) + epsilon)

    Why: ``sqrt(a)`` is the root of the sum of every squared gradient a component has seen, so a component that has
    had large or frequent gradients takes ever smaller steps, and a rarely active one (a rare feature's weight)
    keeps large steps. Since ``a`` only grows, the effective rate decays like ``1 / sqrt(t)`` for steady gradients:
    a convergence guarantee for convex problems, and the reason it can stall in long non-convex runs.

    Keras 2.2.4 defaults: ``lr=0.01, epsilon=None`` (1e-7), ``decay=0``. Keras 3 starts the accumulator at 0.1
    (``initial_accumulator_value``) and puts epsilon inside the root; tinynet follows 2.2.4. One slot per
    parameter: ``accumulators``.
    """

    slot_names = ("accumulators",)

    def __init__(self, learning_rate: Any = 0.01, epsilon: float | None = None, decay: float = 0.0, lr: Any = None,
                 clipnorm: float | None = None, clipvalue: float | None = None) -> None:
        super().__init__(learning_rate, decay, lr, clipnorm, clipvalue)
        self.epsilon = check_epsilon("Adagrad", epsilon)

    def update_step(self, param: np.ndarray, grad: np.ndarray, slots: tuple[np.ndarray, ...],
                    learning_rate: float) -> int:
        return adagrad_update(param, grad, slots[0], learning_rate, self.epsilon)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}
