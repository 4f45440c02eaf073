"""Nadam with Keras 2.2.4's exact equations: Dozat's warming momentum schedule and its ``m_schedule`` product."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet.kernels.nadam import nadam_update
from tinynet.optimizers.base import Optimizer, check_epsilon, check_rate, check_real


class Nadam(Optimizer):
    r"""Nadam (Dozat 2016: Adam with Nesterov momentum) exactly as Keras 2.2.4 writes it.

    With ``t = iterations + 1`` and ``lr`` the learning rate (Nadam has no ``decay``; a schedule may replace the
    number), once per step::

        mu_t            = beta_1 * (1 - 0.5 * 0.96 ** (t * schedule_decay))          (momentum cache)
        mu_{t+1}        = beta_1 * (1 - 0.5 * 0.96 ** ((t + 1) * schedule_decay))
        m_schedule_new  = m_schedule * mu_t                                         (m_schedule starts at 1)
        m_schedule_next = m_schedule * mu_t * mu_{t+1}

    and for every parameter ``p`` with gradient ``g`` and moments ``m``, ``v`` (zero at the start)::

        g'   = g / (1 - m_schedule_new)
        m    = beta_1 * m + (1 - beta_1) * g,          m' = m / (1 - m_schedule_next)
        v    = beta_2 * v + (1 - beta_2) * g**2,       v' = v / (1 - beta_2**t)
        mbar = (1 - mu_t) * g' + mu_{t+1} * m'
        p    = p - lr * mbar / (sqrt(v') + epsilon)

    after which ``m_schedule = m_schedule_new``.

    Why: Nesterov momentum evaluates the momentum step one step ahead. Dozat rewrites it for Adam by mixing the
    current bias-corrected gradient ``g'`` with the *next* step's momentum ``m'``, weighted by ``1 - mu_t`` and
    ``mu_{t+1}``. The momentum ``mu_t`` warms up from ``beta_1 / 2`` towards ``beta_1`` (Sutskever et al.'s
    recommendation), so the bias correction of ``m`` uses the product of all momenta so far, ``m_schedule``,
    instead of ``beta_1**t``. That product is optimizer state beyond the slots: it is saved in the model file
    (:meth:`get_state`), so a resumed run continues with the same bits.

    Keras 2.2.4 defaults: ``lr=0.002, beta_1=0.9, beta_2=0.999, epsilon=None`` (1e-7), ``schedule_decay=0.004``.
    Keras 3 changed the momentum schedule to ``mu_t = beta_1 * (1 - 0.5 * 0.96 ** t)`` (no ``schedule_decay``),
    which warms up within tens of steps instead of thousands; tinynet follows 2.2.4. Slots per parameter:
    ``first_moments`` and ``second_moments``.
    """

    slot_names = ("first_moments", "second_moments")
    has_decay = False

    def __init__(self, learning_rate: Any = 0.002, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float | None = None, schedule_decay: float = 0.004, lr: Any = None,
                 clipnorm: float | None = None, clipvalue: float | None = None) -> None:
        super().__init__(learning_rate, 0.0, lr, clipnorm, clipvalue)
        self.beta_1 = check_rate("Nadam", "beta_1", beta_1)
        self.beta_2 = check_rate("Nadam", "beta_2", beta_2)
        self.epsilon = check_epsilon("Nadam", epsilon)
        self.schedule_decay = check_real("Nadam", "schedule_decay", schedule_decay)
        self.m_schedule = 1.0
        self._step: tuple[float, ...] = ()

    def prepare_step(self, learning_rate: float) -> None:
        t = self.iterations + 1
        momentum_t = self.beta_1 * (1.0 - 0.5 * 0.96 ** (t * self.schedule_decay))
        momentum_next = self.beta_1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * self.schedule_decay))
        schedule_new = self.m_schedule * momentum_t
        schedule_next = self.m_schedule * momentum_t * momentum_next
        self._step = (schedule_new, schedule_next, self.beta_2 ** t, momentum_t, momentum_next)

    def finish_step(self) -> None:
        self.m_schedule = self._step[0]

    def update_step(self, param: np.ndarray, grad: np.ndarray, slots: tuple[np.ndarray, ...],
                    learning_rate: float) -> int:
        return nadam_update(param, grad, slots[0], slots[1], learning_rate, self.beta_1, self.beta_2, self.epsilon,
                            *self._step)

    def get_state(self) -> dict[str, float]:
        return {"m_schedule": self.m_schedule}

    def set_state(self, state: dict[str, Any]) -> None:
        unknown = set(state) - {"m_schedule"}
        if unknown:
            raise ValueError(f"Nadam: unknown state {', '.join(map(repr, sorted(unknown)))}; it keeps m_schedule")
        if "m_schedule" in state:
            self.m_schedule = check_real("Nadam", "m_schedule", state["m_schedule"], upper=1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "schedule_decay": self.schedule_decay}
