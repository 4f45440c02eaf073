"""Work arrays a stage keeps from step to step (im2col matrices, per-thread slices), owned by the stage."""

from __future__ import annotations

import numpy as np


class Scratch:
    """Named work arrays of one dtype, each reused while its shape stays the same.

    For intermediates only, never for what a stage returns: the caller may keep an output, but nobody outside
    the stage holds a scratch array. Per-thread arrays carry the thread's slot in their name (``"z_1"``).
    """

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], fill: float | None = None) -> np.ndarray:
        """The array ``name`` of ``shape``, made anew (and, with ``fill``, every element set) when the shape
        changed. Callers must not write to a filled array: its constant is set only when it is made."""
        array = self._arrays.get(name)
        if array is None or array.shape != shape:
            array = self._arrays[name] = np.empty(shape, dtype=self.dtype)
            if fill is not None:
                array.fill(fill)
        return array
