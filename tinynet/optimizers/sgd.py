"""SGD with Keras 2's exact equations: momentum, Nesterov momentum and time-based learning-rate decay."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet.kernels.sgd import sgd_update
from tinynet.optimizers.base import Optimizer, check_real


class SGD(Optimizer):
    r"""Stochastic gradient descent exactly as Keras 2.2/2.3 writes it.

    With ``t = iterations``, the number of updates already applied (0 for the first batch; it lives on the
    optimizer, never resets between epochs and ignores ``initial_epoch``), for every parameter ``p`` with gradient
    ``g`` and velocity ``v`` (zero at the start)::

        lr_t = lr / (1 + decay * t)                       (time-based decay; lr_t = lr when decay = 0)
        v    = momentum * v - lr_t * g
        p    = p + v                                      (classical momentum)
        p    = p + momentum * v - lr_t * g                (nesterov=True: look ahead along the new velocity)

    With ``momentum = 0`` both reduce to ``p = p - lr_t * g``. Keras's Nesterov form is the "Sutskever" rewrite
    that needs no gradient at the look-ahead point: it applies the momentum step twice, once through ``v`` and
    once explicitly.

    Why a step *against* ``g`` lowers the loss: to first order ``L(p - lr g) = L(p) - lr ||g||^2``, which is
    smaller for a small enough ``lr``. Momentum keeps a decaying sum of past steps, ``v_t = -sum_s momentum^(t-s)
    lr_s g_s``, so directions that agree from step to step speed up and those that flip sign cancel out; a
    ``momentum`` above 1 would make that sum grow without bound, hence ``0 <= momentum <= 1`` (as Keras 3 demands).

    Shapes and state: each velocity has its parameter's shape and dtype, created at zero on the parameter's first
    update (and only when ``momentum > 0``); with ``iterations`` that is all the optimizer keeps. Velocities belong
    to the parameter arrays themselves, not to their names, so one optimizer may serve several models, even models
    whose layers have the same names. It reads ``layer.grads`` and changes ``layer.params`` in place, and nothing
    else. :meth:`get_slots` and :meth:`set_slots` name the velocities by layer and parameter for saving.

    ``clipnorm`` / ``clipvalue`` and a schedule in place of ``learning_rate`` work as in every optimizer
    (:class:`tinynet.optimizers.Optimizer`). ``lr=`` is accepted as Keras 2.2 named it; ``optimizer.lr`` and
    ``optimizer.learning_rate`` are the base rate.
    A learning rate too large for a parameter's float type (``1e39`` is infinite in float32) is refused at
    ``compile`` (or at the first update of a model built later) rather than left to turn every weight infinite.
    """

    slot_names = ("velocities",)

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.0,
        decay: float = 0.0,
        nesterov: bool = False,
        lr: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(f"SGD: unexpected keyword argument(s) {', '.join(sorted(kwargs))}")
        super().__init__(learning_rate, decay, lr, clipnorm, clipvalue)
        self.momentum = momentum
        self.nesterov = bool(nesterov)

    @property
    def momentum(self) -> float:
        return self._momentum

    @momentum.setter
    def momentum(self, value: float) -> None:
        self._momentum = check_real("SGD", "momentum", value, upper=1)

    def slots_in_use(self) -> tuple[str, ...]:
        return self.slot_names if self.momentum != 0 else ()  # plain SGD keeps no velocity at all

    def update_step(self, param: np.ndarray, grad: np.ndarray, slots: tuple[np.ndarray, ...],
                    learning_rate: float) -> int:
        # One fused pass per slice, in the parameter's dtype (tinynet.kernels.sgd: same bits as the NumPy form).
        velocity = slots[0] if slots else None
        return sgd_update(param, velocity, grad, learning_rate, self.momentum, self.nesterov)

    @property
    def velocities(self) -> dict[tuple[str, str], np.ndarray]:
        """The live velocities by ``(layer name, parameter name)`` (read-only view; see :meth:`get_slots`)."""
        return self._slots["velocities"].by_name()

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
