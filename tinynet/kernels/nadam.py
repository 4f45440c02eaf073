"""The Nadam update in one pass (see :class:`tinynet.optimizers.Nadam` for the equations and their why).

Keras 2.2.4, element by element, with moments ``m``, ``v`` zero at the start; the step's scalars (momentum caches
``mu_t``, ``mu_{t+1}``, the products ``m_schedule``) are computed once per step by the optimizer::

    g'   = g / (1 - m_schedule_new)
    m    = beta_1 * m + (1 - beta_1) * g
    m'   = m / (1 - m_schedule_next)
    v    = beta_2 * v + (1 - beta_2) * g**2
    v'   = v / (1 - beta_2 ** t)
    mbar = (1 - mu_t) * g' + mu_{t+1} * m'
    p    = p - lr * mbar / (sqrt(v') + epsilon)

Same operations, order and dtype as :func:`nadam_update_reference`: identical bits.
"""

from __future__ import annotations

import numba
import numpy as np

from tinynet.kernels._operands import check_update_operands, flat_grad

__all__ = ["nadam_update", "nadam_update_reference"]


@numba.njit(cache=True, nogil=True)
def _nadam(param, grad, first_moment, second_moment, learning_rate, beta_1, one_minus_beta_1, beta_2,
           one_minus_beta_2, epsilon, one_minus_schedule_new, one_minus_schedule_next, one_minus_beta_2_power,
           one_minus_momentum_t, momentum_next):
    non_finite = 0
    for k in range(param.size):
        g = grad[k]
        g_prime = g / one_minus_schedule_new
        m = beta_1 * first_moment[k] + one_minus_beta_1 * g
        m_prime = m / one_minus_schedule_next
        v = beta_2 * second_moment[k] + one_minus_beta_2 * (g * g)
        v_prime = v / one_minus_beta_2_power
        m_bar = one_minus_momentum_t * g_prime + momentum_next * m_prime
        first_moment[k] = m
        second_moment[k] = v
        value = param[k] - learning_rate * m_bar / (np.sqrt(v_prime) + epsilon)
        param[k] = value
        if not np.isfinite(value):
            non_finite += 1
    return non_finite


def nadam_update(param: np.ndarray, grad: np.ndarray, first_moment: np.ndarray, second_moment: np.ndarray,
                 learning_rate: float, beta_1: float, beta_2: float, epsilon: float, schedule_new: float,
                 schedule_next: float, beta_2_power: float, momentum_t: float, momentum_next: float) -> int:
    """Update ``param`` and the moments in place; return how many updated values are NaN or infinite."""
    check_update_operands("nadam_update", param, grad, first_moment=first_moment, second_moment=second_moment)
    dtype = param.dtype.type
    return int(_nadam(param.reshape(-1), flat_grad(grad, param), first_moment.reshape(-1),
                      second_moment.reshape(-1), dtype(learning_rate), dtype(beta_1), dtype(1.0 - beta_1),
                      dtype(beta_2), dtype(1.0 - beta_2), dtype(epsilon), dtype(1.0 - schedule_new),
                      dtype(1.0 - schedule_next), dtype(1.0 - beta_2_power), dtype(1.0 - momentum_t),
                      dtype(momentum_next)))


def nadam_update_reference(param, grad, first_moment, second_moment, learning_rate, beta_1, beta_2, epsilon,
                           schedule_new, schedule_next, beta_2_power, momentum_t, momentum_next) -> None:
    """The same update with NumPy operators (for the tests)."""
    dtype = param.dtype.type
    g_prime = grad / dtype(1.0 - schedule_new)
    first_moment[...] = dtype(beta_1) * first_moment + dtype(1.0 - beta_1) * grad
    m_prime = first_moment / dtype(1.0 - schedule_next)
    second_moment[...] = dtype(beta_2) * second_moment + dtype(1.0 - beta_2) * (grad * grad)
    v_prime = second_moment / dtype(1.0 - beta_2_power)
    m_bar = dtype(1.0 - momentum_t) * g_prime + dtype(momentum_next) * m_prime
    param -= dtype(learning_rate) * m_bar / (np.sqrt(v_prime) + dtype(epsilon))
