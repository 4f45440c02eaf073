"""The Adadelta update in one pass (see :class:`tinynet.optimizers.Adadelta` for the equations and their why).

Keras 2.2.4, element by element, with accumulators ``a`` (squared gradients) and ``d`` (squared updates), both
zero at the start::

    a      = rho * a + (1 - rho) * g**2
    update = g * sqrt(d + epsilon) / sqrt(a + epsilon)        (the new a, the old d)
    p      = p - lr * update
    d      = rho * d + (1 - rho) * update**2

Same operations, order and dtype as :func:`adadelta_update_reference`: identical bits.
"""

from __future__ import annotations

import numba
import numpy as np

from tinynet.kernels._operands import check_update_operands, flat_grad

__all__ = ["adadelta_update", "adadelta_update_reference"]


@numba.njit(cache=True, nogil=True)
def _adadelta(param, grad, accumulator, delta_accumulator, learning_rate, rho, one_minus_rho, epsilon):
    non_finite = 0
    for k in range(param.size):
        g = grad[k]
        a = rho * accumulator[k] + one_minus_rho * (g * g)
        accumulator[k] = a
        d = delta_accumulator[k]
        update = g * np.sqrt(d + epsilon) / np.sqrt(a + epsilon)
        value = param[k] - learning_rate * update
        param[k] = value
        delta_accumulator[k] = rho * d + one_minus_rho * (update * update)
        if not np.isfinite(value):
            non_finite += 1
    return non_finite


def adadelta_update(param: np.ndarray, grad: np.ndarray, accumulator: np.ndarray, delta_accumulator: np.ndarray,
                    learning_rate: float, rho: float, epsilon: float) -> int:
    """Update ``param`` and both accumulators in place; return how many updated values are NaN or infinite."""
    check_update_operands("adadelta_update", param, grad, accumulator=accumulator,
                          delta_accumulator=delta_accumulator)
    dtype = param.dtype.type
    return int(_adadelta(param.reshape(-1), flat_grad(grad, param), accumulator.reshape(-1),
                         delta_accumulator.reshape(-1), dtype(learning_rate), dtype(rho), dtype(1.0 - rho),
                         dtype(epsilon)))


def adadelta_update_reference(param, grad, accumulator, delta_accumulator, learning_rate, rho, epsilon) -> None:
    """The same update with NumPy operators (for the tests)."""
    dtype = param.dtype.type
    rho, one_minus_rho, epsilon = dtype(rho), dtype(1.0 - rho), dtype(epsilon)
    accumulator[...] = rho * accumulator + one_minus_rho * (grad * grad)
    update = grad * np.sqrt(delta_accumulator + epsilon) / np.sqrt(accumulator + epsilon)
    param -= dtype(learning_rate) * update
    delta_accumulator[...] = rho * delta_accumulator + one_minus_rho * (update * update)
