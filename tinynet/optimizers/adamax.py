"""Adamax with Keras 2.2.4's exact equations."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet.kernels.adamax import adamax_update
from tinynet.optimizers.base import Optimizer, check_epsilon, check_rate


class Adamax(Optimizer):
    r"""Adamax (Kingma & Ba 2014, section 7) exactly as Keras 2.2.4 writes it.

    With ``t = iterations + 1``, ``lr`` after Keras 2's decay (or a schedule's value), and for every parameter ``p``
    with gradient ``g``, moment ``m`` and infinity norm ``u`` (both zero at the start)::

        lr_t = lr / (1 - beta_1**t)                       (once per step)
        m    = beta_1 * m + (1 - beta_1) * g
        u    = max(beta_2 * u, |g|)
        p    = p - lr_t * m / (u + epsilon)

    Why: Adam scales by an L2 average of past gradients, ``v``; generalising to the Lp norm and letting ``p -> inf``
    gives ``u_t = max(beta_2 u_{t-1}, |g_t|)``, a decaying maximum. It needs no bias correction (a maximum is not
    pulled towards its zero start), so only ``m``'s correction remains, in ``lr_t``.

    Keras 2.2.4 defaults: ``lr=0.002, beta_1=0.9, beta_2=0.999, epsilon=None`` (1e-7), ``decay=0``. Slots per
    parameter: ``first_moments`` and ``infinity_norms``.
    """

    slot_names = ("first_moments", "infinity_norms")

    def __init__(self, learning_rate: Any = 0.002, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float | None = None, decay: float = 0.0, lr: Any = None, clipnorm: float | None = None,
                 clipvalue: float | None = None) -> None:
        super().__init__(learning_rate, decay, lr, clipnorm, clipvalue)
        self.beta_1 = check_rate("Adamax", "beta_1", beta_1)
        self.beta_2 = check_rate("Adamax", "beta_2", beta_2)
        self.epsilon = check_epsilon("Adamax", epsilon)
        self._learning_rate_t = 0.0

    def prepare_step(self, learning_rate: float) -> None:
        self._learning_rate_t = learning_rate / (1.0 - self.beta_1 ** (self.iterations + 1))

    def update_step(self, param: np.ndarray, grad: np.ndarray, slots: tuple[np.ndarray, ...],
                    learning_rate: float) -> int:
        return adamax_update(param, grad, slots[0], slots[1], self._learning_rate_t, self.beta_1, self.beta_2,
                             self.epsilon)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
