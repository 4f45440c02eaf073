"""Adam (with AMSGrad) with Keras 2.2.4's exact equations, and AdamW: Adam with decoupled weight decay."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinynet.kernels.adam import adam_update
from tinynet.optimizers.base import Optimizer, check_epsilon, check_rate, check_real


class Adam(Optimizer):
    r"""Adam (Kingma & Ba 2014) exactly as Keras 2.2.4 writes it, with the AMSGrad variant.

    With ``t = iterations + 1`` (1 for the first update), ``lr`` after Keras 2's decay (or a schedule's value), and
    for every parameter ``p`` with gradient ``g`` and moments ``m``, ``v`` (and ``vhat``) zero at the start::

        lr_t = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)       (once per step)
        m    = beta_1 * m + (1 - beta_1) * g
        v    = beta_2 * v + (1 - beta_2) * g**2
        vhat = max(vhat, v)                                      (amsgrad=True; the denominator then uses vhat)
        p    = p - lr_t * m / (sqrt(v) + epsilon)

    Why: ``m`` and ``v`` are moving averages of the gradient and its square. Started at zero, they are biased
    towards zero early on: ``E[m_t] = (1 - beta_1**t) E[g]``, ``E[v_t] = (1 - beta_2**t) E[g**2]``. Dividing
    ``m`` by ``1 - beta_1**t`` and ``v`` by ``1 - beta_2**t`` removes the bias; Keras folds both corrections into
    ``lr_t`` (the paper's "efficient version", section 2), which moves ``epsilon`` by a factor
    ``sqrt(1 - beta_2**t)`` compared with the paper's first form. The step is then momentum (``m``) divided by
    RMSprop's scale (``sqrt(v)``). AMSGrad (Reddi et al. 2018) divides by the largest ``v`` seen so far, so the
    effective per-component rate never grows, which repairs Adam's convergence counter-examples.

    Keras 2.2.4 defaults: ``lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=None`` (1e-7), ``decay=0``,
    ``amsgrad=False``. Slots per parameter: ``first_moments``, ``second_moments`` and, with AMSGrad,
    ``max_second_moments``.
    """

    slot_names: tuple[str, ...] = ("first_moments", "second_moments", "max_second_moments")

    def __init__(self, learning_rate: Any = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float | None = None, decay: float = 0.0, amsgrad: bool = False, lr: Any = None,
                 clipnorm: float | None = None, clipvalue: float | None = None) -> None:
        super().__init__(learning_rate, decay, lr, clipnorm, clipvalue)
        owner = type(self).__name__
        self.beta_1 = check_rate(owner, "beta_1", beta_1)
        self.beta_2 = check_rate(owner, "beta_2", beta_2)
        self.epsilon = check_epsilon(owner, epsilon)
        if not isinstance(amsgrad, bool | np.bool_):
            raise TypeError(f"{owner}: amsgrad must be True or False, got {amsgrad!r}")
        self.amsgrad = bool(amsgrad)
        self._learning_rate_t = 0.0
        self._weight_decay_rate = 0.0

    def slots_in_use(self) -> tuple[str, ...]:
        return self.slot_names if self.amsgrad else self.slot_names[:2]

    def prepare_step(self, learning_rate: float) -> None:
        t = self.iterations + 1
        self._learning_rate_t = learning_rate * (math.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t))
        self._weight_decay_rate = learning_rate

    def update_step(self, param: np.ndarray, grad: np.ndarray, slots: tuple[np.ndarray, ...],
                    learning_rate: float) -> int:
        max_second_moment = slots[2] if self.amsgrad else None
        return adam_update(param, grad, slots[0], slots[1], max_second_moment, self._learning_rate_t, self.beta_1,
                           self.beta_2, self.epsilon, self._decoupled_weight_decay(), self._weight_decay_rate)

    def _decoupled_weight_decay(self) -> float:
        return 0.0

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter 2019), as tf.keras (2.11+) and Keras 3 define it.

    Before each Adam step (:class:`Adam`'s equations, Keras 2.2.4's form), every parameter shrinks towards zero::

        p = p - p * weight_decay * lr        (lr: the rate in force, after decay or schedule, before bias correction)

    Why decoupled: adding ``weight_decay * p`` to the gradient (L2 regularisation) would have it divided by Adam's
    ``sqrt(v)`` like the rest, so weights with large gradients would be decayed less. Applying the shrinkage
    outside the adaptive step decays every weight at the same relative rate ``weight_decay * lr`` per step, which is
    what weight decay means for SGD. As in Keras 3, every trainable parameter is decayed, biases included.

    Defaults (Keras 3's): ``learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
    amsgrad=False``; Keras 2's ``decay`` is accepted as for :class:`Adam`. Keras 3 writes the moment updates as
    ``m += (g - m) * (1 - beta_1)``, equal in exact arithmetic to Keras 2.2.4's form used here.
    """

    def __init__(self, learning_rate: Any = 0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float | None = None, decay: float = 0.0, amsgrad: bool = False,
                 lr: Any = None, clipnorm: float | None = None, clipvalue: float | None = None) -> None:
        super().__init__(learning_rate, beta_1, beta_2, epsilon, decay, amsgrad, lr, clipnorm, clipvalue)
        self.weight_decay = check_real("AdamW", "weight_decay", weight_decay)

    def _decoupled_weight_decay(self) -> float:
        return self.weight_decay

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "weight_decay": self.weight_decay}
