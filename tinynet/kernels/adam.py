"""The Adam update (with AMSGrad and AdamW's decoupled weight decay) in one pass; see
:class:`tinynet.optimizers.Adam` and :class:`tinynet.optimizers.AdamW` for the equations and their why.

Keras 2.2.4, element by element, with moments ``m``, ``v`` (and ``vhat`` for AMSGrad) zero at the start and the
bias-corrected rate ``lr_t`` computed once per step by the optimizer::

    p    = p - p * weight_decay * lr                 (AdamW only, before the Adam step: Keras 3's order)
    m    = beta_1 * m + (1 - beta_1) * g
    v    = beta_2 * v + (1 - beta_2) * g**2
    vhat = max(vhat, v)                              (amsgrad)
    p    = p - lr_t * m / (sqrt(v or vhat) + epsilon)

Same operations, order and dtype as :func:`adam_update_reference`: identical bits.
"""

from __future__ import annotations

import numba
import numpy as np

from tinynet.kernels._operands import check_update_operands, flat_grad

__all__ = ["adam_update", "adam_update_reference"]


@numba.njit(cache=True, nogil=True)
def _adam(param, grad, first_moment, second_moment, max_second_moment, amsgrad, learning_rate_t, beta_1,
          one_minus_beta_1, beta_2, one_minus_beta_2, epsilon, decoupled, weight_decay, learning_rate):
    non_finite = 0
    for k in range(param.size):
        g = grad[k]
        value = param[k]
        if decoupled:
            value = value - value * weight_decay * learning_rate
        m = beta_1 * first_moment[k] + one_minus_beta_1 * g
        v = beta_2 * second_moment[k] + one_minus_beta_2 * (g * g)
        first_moment[k] = m
        second_moment[k] = v
        if amsgrad:
            largest = max_second_moment[k]
            if largest > v or np.isnan(largest):  # np.maximum's rule: a NaN on either side wins
                v = largest
            max_second_moment[k] = v
        value = value - learning_rate_t * m / (np.sqrt(v) + epsilon)
        param[k] = value
        if not np.isfinite(value):
            non_finite += 1
    return non_finite


def adam_update(param: np.ndarray, grad: np.ndarray, first_moment: np.ndarray, second_moment: np.ndarray,
                max_second_moment: np.ndarray | None, learning_rate_t: float, beta_1: float, beta_2: float,
                epsilon: float, weight_decay: float = 0.0, learning_rate: float = 0.0) -> int:
    """Update ``param`` and the moments in place; return how many updated values are NaN or infinite.

    ``max_second_moment`` is AMSGrad's ``vhat`` (``None`` without AMSGrad). ``weight_decay > 0`` first applies
    AdamW's ``p -= p * weight_decay * learning_rate`` with the learning rate before bias correction.
    """
    slots = {"first_moment": first_moment, "second_moment": second_moment}
    if max_second_moment is not None:
        slots["max_second_moment"] = max_second_moment
    check_update_operands("adam_update", param, grad, **slots)
    dtype = param.dtype.type
    amsgrad = max_second_moment is not None
    # Numba wants an array of the same type in both cases; AMSGrad off never reads it.
    vhat = max_second_moment.reshape(-1) if max_second_moment is not None else first_moment.reshape(-1)
    return int(_adam(param.reshape(-1), flat_grad(grad, param), first_moment.reshape(-1), second_moment.reshape(-1),
                     vhat, amsgrad, dtype(learning_rate_t), dtype(beta_1), dtype(1.0 - beta_1), dtype(beta_2),
                     dtype(1.0 - beta_2), dtype(epsilon), weight_decay > 0, dtype(weight_decay),
                     dtype(learning_rate)))


def adam_update_reference(param, grad, first_moment, second_moment, max_second_moment, learning_rate_t, beta_1,
                          beta_2, epsilon, weight_decay=0.0, learning_rate=0.0) -> None:
    """The same update with NumPy operators (for the tests)."""
    dtype = param.dtype.type
    if weight_decay > 0:
        param -= param * dtype(weight_decay) * dtype(learning_rate)
    first_moment[...] = dtype(beta_1) * first_moment + dtype(1.0 - beta_1) * grad
    second_moment[...] = dtype(beta_2) * second_moment + dtype(1.0 - beta_2) * (grad * grad)
    denominator_moment = second_moment
    if max_second_moment is not None:
        np.maximum(max_second_moment, second_moment, out=max_second_moment)
        denominator_moment = max_second_moment
    param -= dtype(learning_rate_t) * first_moment / (np.sqrt(denominator_moment) + dtype(epsilon))
