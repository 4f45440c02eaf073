"""The SGD update as one pass over each parameter (see :class:`tinynet.optimizers.SGD` for the equations).

NumPy would spend five passes and two temporary arrays per parameter on ``v = m*v - lr*g; p += m*v - lr*g``;
this loop reads ``p``, ``v`` and ``g`` once and writes ``p`` and ``v`` once. It performs the same floating-point
operations in the same order and precision as the NumPy expression (scalars are passed in the parameter's
dtype, and Numba does not contract multiply-adds without fastmath), so both give identical bits; the tests
compare them.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["sgd_update", "sgd_update_reference"]


@numba.njit(cache=True, nogil=True)
def _plain(param, grad, learning_rate):
    non_finite = 0
    for k in range(param.size):
        value = param[k] - grad[k] * learning_rate
        param[k] = value
        if not np.isfinite(value):
            non_finite += 1
    return non_finite


@numba.njit(cache=True, nogil=True)
def _momentum(param, velocity, grad, learning_rate, momentum, nesterov):
    non_finite = 0
    for k in range(param.size):
        step = grad[k] * learning_rate
        v = velocity[k] * momentum - step
        velocity[k] = v
        if nesterov:
            value = param[k] + (momentum * v - step)
        else:
            value = param[k] + v
        param[k] = value
        if not np.isfinite(value):
            non_finite += 1
    return non_finite


def sgd_update(param: np.ndarray, velocity: np.ndarray | None, grad: np.ndarray, learning_rate: float,
               momentum: float, nesterov: bool) -> int:
    """Update ``param`` (and ``velocity``, unless momentum is 0) in place. All arrays C-contiguous, one dtype.

    Returns how many updated values are NaN or infinite, counted in the same pass, so that the caller can
    detect an update that overflowed without reading the parameters again.

    The loops index ``grad`` and ``velocity`` by ``param``'s positions with no bounds checks, so their shapes,
    dtypes and layouts are checked here first (a few comparisons per call): a smaller array would be read and
    written past its end, and a non-contiguous ``param`` would be updated through a copy and left unchanged.
    """
    _check_operands(param, velocity, grad, momentum)
    dtype = param.dtype.type
    flat_param, flat_grad = param.reshape(-1), np.ascontiguousarray(grad, dtype=param.dtype).reshape(-1)
    if momentum == 0:
        return int(_plain(flat_param, flat_grad, dtype(learning_rate)))
    assert velocity is not None  # _check_operands refused momentum without a velocity
    return int(_momentum(flat_param, velocity.reshape(-1), flat_grad, dtype(learning_rate), dtype(momentum),
                         nesterov))


def _check_operands(param: np.ndarray, velocity: np.ndarray | None, grad: np.ndarray, momentum: float) -> None:
    if not isinstance(param, np.ndarray) or param.dtype.kind != "f":
        raise TypeError(f"sgd_update: param must be a float array, got {getattr(param, 'dtype', type(param))}")
    if not (param.flags.c_contiguous and param.flags.writeable):
        raise ValueError("sgd_update: param must be a writeable C-contiguous array (it is updated in place)")
    if not isinstance(grad, np.ndarray) or grad.shape != param.shape:
        raise ValueError(f"sgd_update: grad has shape {getattr(grad, 'shape', None)}, param has {param.shape}")
    if momentum == 0:
        return
    if not isinstance(velocity, np.ndarray) or velocity.shape != param.shape or velocity.dtype != param.dtype:
        raise ValueError(f"sgd_update: velocity has shape {getattr(velocity, 'shape', None)} and dtype "
                         f"{getattr(velocity, 'dtype', None)}, param has {param.shape} and {param.dtype}")
    if not (velocity.flags.c_contiguous and velocity.flags.writeable):
        raise ValueError("sgd_update: velocity must be a writeable C-contiguous array (it is updated in place)")


def sgd_update_reference(param, velocity, grad, learning_rate, momentum, nesterov) -> None:
    """The same update written with NumPy operators (for the tests)."""
    dtype = param.dtype.type
    step = grad * dtype(learning_rate)
    if momentum == 0:
        param -= step
        return
    velocity *= dtype(momentum)
    velocity -= step
    if nesterov:
        param += dtype(momentum) * velocity - step
    else:
        param += velocity
