"""The Adamax update in one pass (see :class:`tinynet.optimizers.Adamax` for the equations and their why).

Keras 2.2.4, element by element, with ``m`` and the infinity norm ``u`` zero at the start and ``lr_t = lr / (1 -
beta_1 ** t)`` computed once per step by the optimizer::

    m = beta_1 * m + (1 - beta_1) * g
    u = max(beta_2 * u, |g|)
    p = p - lr_t * m / (u + epsilon)

Same operations, order and dtype as :func:`adamax_update_reference`: identical bits.
"""

from __future__ import annotations

import numba
import numpy as np

from tinynet.kernels._operands import check_update_operands, flat_grad

__all__ = ["adamax_update", "adamax_update_reference"]


@numba.njit(cache=True, nogil=True)
def _adamax(param, grad, first_moment, infinity_norm, learning_rate_t, beta_1, one_minus_beta_1, beta_2, epsilon):
    non_finite = 0
    for k in range(param.size):
        g = grad[k]
        m = beta_1 * first_moment[k] + one_minus_beta_1 * g
        u = beta_2 * infinity_norm[k]
        magnitude = abs(g)
        if magnitude > u or np.isnan(magnitude):  # np.maximum's rule: a NaN on either side wins
            u = magnitude
        first_moment[k] = m
        infinity_norm[k] = u
        value = param[k] - learning_rate_t * m / (u + epsilon)
        param[k] = value
        if not np.isfinite(value):
            non_finite += 1
    return non_finite


def adamax_update(param: np.ndarray, grad: np.ndarray, first_moment: np.ndarray, infinity_norm: np.ndarray,
                  learning_rate_t: float, beta_1: float, beta_2: float, epsilon: float) -> int:
    """Update ``param``, ``m`` and ``u`` in place; return how many updated values are NaN or infinite."""
    check_update_operands("adamax_update", param, grad, first_moment=first_moment, infinity_norm=infinity_norm)
    dtype = param.dtype.type
    return int(_adamax(param.reshape(-1), flat_grad(grad, param), first_moment.reshape(-1),
                       infinity_norm.reshape(-1), dtype(learning_rate_t), dtype(beta_1), dtype(1.0 - beta_1),
                       dtype(beta_2), dtype(epsilon)))


def adamax_update_reference(param, grad, first_moment, infinity_norm, learning_rate_t, beta_1, beta_2,
                            epsilon) -> None:
    """The same update with NumPy operators (for the tests)."""
    dtype = param.dtype.type
    first_moment[...] = dtype(beta_1) * first_moment + dtype(1.0 - beta_1) * grad
    np.maximum(dtype(beta_2) * infinity_norm, np.abs(grad), out=infinity_norm)
    param -= dtype(learning_rate_t) * first_moment / (infinity_norm + dtype(epsilon))
