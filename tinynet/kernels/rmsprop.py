"""The RMSprop update in one pass (see :class:`tinynet.optimizers.RMSprop` for the equations and their why).

Keras 2.2.4, element by element, with ``a`` the accumulator (zero at the start)::

    a = rho * a + (1 - rho) * g**2
    p = p - lr * g / (sqrt(a) + epsilon)

The loop performs the same floating-point operations, in the same order and in the parameter's dtype (scalars are
cast to it; no fastmath, so no fused multiply-adds), as :func:`rmsprop_update_reference`: both give identical bits.
"""

from __future__ import annotations

import numba
import numpy as np

from tinynet.kernels._operands import check_update_operands, flat_grad

__all__ = ["rmsprop_update", "rmsprop_update_reference"]


@numba.njit(cache=True, nogil=True)
def _rmsprop(param, grad, accumulator, learning_rate, rho, one_minus_rho, epsilon):
    non_finite = 0
    for k in range(param.size):
        g = grad[k]
        a = rho * accumulator[k] + one_minus_rho * (g * g)
        accumulator[k] = a
        value = param[k] - learning_rate * g / (np.sqrt(a) + epsilon)
        param[k] = value
        if not np.isfinite(value):
            non_finite += 1
    return non_finite


def rmsprop_update(param: np.ndarray, grad: np.ndarray, accumulator: np.ndarray, learning_rate: float, rho: float,
                   epsilon: float) -> int:
    """Update ``param`` and ``accumulator`` in place; return how many updated values are NaN or infinite."""
    check_update_operands("rmsprop_update", param, grad, accumulator=accumulator)
    dtype = param.dtype.type
    return int(_rmsprop(param.reshape(-1), flat_grad(grad, param), accumulator.reshape(-1), dtype(learning_rate),
                        dtype(rho), dtype(1.0 - rho), dtype(epsilon)))


def rmsprop_update_reference(param, grad, accumulator, learning_rate, rho, epsilon) -> None:
    """The same update with NumPy operators (for the tests)."""
    dtype = param.dtype.type
    accumulator[...] = dtype(rho) * accumulator + dtype(1.0 - rho) * (grad * grad)
    param -= dtype(learning_rate) * grad / (np.sqrt(accumulator) + dtype(epsilon))
