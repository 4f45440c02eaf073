"""The checks every in-place update kernel needs before its unchecked loops run (shared by the optimizer kernels)."""

from __future__ import annotations

import numpy as np


def check_update_operands(kernel: str, param: np.ndarray, grad: np.ndarray, **slots: np.ndarray) -> None:
    """Raise unless ``param`` is a writeable C-contiguous float array, ``grad`` has its shape, and every slot has its
    shape, dtype and layout: the loops index all of them by ``param``'s positions without bounds checks, so a
    smaller array would be read and written past its end, and a non-contiguous one updated through a copy."""
    if not isinstance(param, np.ndarray) or param.dtype.kind != "f":
        raise TypeError(f"{kernel}: param must be a float array, got {getattr(param, 'dtype', type(param))}")
    if not (param.flags.c_contiguous and param.flags.writeable):
        raise ValueError(f"{kernel}: param must be a writeable C-contiguous array (it is updated in place)")
    if not isinstance(grad, np.ndarray) or grad.shape != param.shape:
        raise ValueError(f"{kernel}: grad has shape {getattr(grad, 'shape', None)}, param has {param.shape}")
    for name, slot in slots.items():
        if not isinstance(slot, np.ndarray) or slot.shape != param.shape or slot.dtype != param.dtype:
            raise ValueError(f"{kernel}: {name} has shape {getattr(slot, 'shape', None)} and dtype "
                             f"{getattr(slot, 'dtype', None)}, param has {param.shape} and {param.dtype}")
        if not (slot.flags.c_contiguous and slot.flags.writeable):
            raise ValueError(f"{kernel}: {name} must be a writeable C-contiguous array (it is updated in place)")


def flat_grad(grad: np.ndarray, param: np.ndarray) -> np.ndarray:
    """``grad`` as a flat contiguous array of ``param``'s dtype (no copy when it already is one)."""
    return np.ascontiguousarray(grad, dtype=param.dtype).reshape(-1)
