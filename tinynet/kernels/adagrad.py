"""The Adagrad update in one pass (see :class:`tinynet.optimizers.Adagrad` for the equations and their why).

Keras 2.2.4, element by element, with ``a`` the accumulator (zero at the start; Keras 3 starts it at 0.1)::

    a = a + g**2
    p = p - lr * g / (sqrt(a) + epsilon)

Same operations, order and dtype as :func:`adagrad_update_reference`: identical bits.
"""

from __future__ import annotations

import numba
import numpy as np

from tinynet.kernels._operands import check_update_operands, flat_grad

__all__ = ["adagrad_update", "adagrad_update_reference"]


@numba.njit(cache=True, nogil=True)
def _adagrad(param, grad, accumulator, learning_rate, epsilon):
    non_finite = 0
    for k in range(param.size):
        g = grad[k]
        a = accumulator[k] + g * g
        accumulator[k] = a
        value = param[k] - learning_rate * g / (np.sqrt(a) + epsilon)
        param[k] = value
        if not np.isfinite(value):
            non_finite += 1
    return non_finite


def adagrad_update(param: np.ndarray, grad: np.ndarray, accumulator: np.ndarray, learning_rate: float,
                   epsilon: float) -> int:
    """Update ``param`` and ``accumulator`` in place; return how many updated values are NaN or infinite."""
    check_update_operands("adagrad_update", param, grad, accumulator=accumulator)
    dtype = param.dtype.type
    return int(_adagrad(param.reshape(-1), flat_grad(grad, param), accumulator.reshape(-1), dtype(learning_rate),
                        dtype(epsilon)))


def adagrad_update_reference(param, grad, accumulator, learning_rate, epsilon) -> None:
    """The same update with NumPy operators (for the tests)."""
    dtype = param.dtype.type
    accumulator += grad * grad
    param -= dtype(learning_rate) * grad / (np.sqrt(accumulator) + dtype(epsilon))
