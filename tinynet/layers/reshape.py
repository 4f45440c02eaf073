"""Reshape: each sample to a ``target_shape`` of the same size, one axis of it may be ``-1`` (Keras 2's rule)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinynet.layers.base import Layer


class Reshape(Layer):
    r"""Reshapes each sample to ``target_shape`` (no batch axis), Keras 2's ``Reshape(target_shape)``.

    ``target_shape`` is a tuple of positive ints, one of which may be ``-1``: that axis takes whatever length makes
    the sizes agree, ``prod(input_shape) / prod(the other axes)`` (Keras's ``_fix_unknown_dimension``). A second
    ``-1``, or sizes that cannot agree, are refused when the layer is built.

    Elements keep their C order (the order of ``Flatten``): the forward pass is a ``reshape`` of the batch (a view,
    no copy) and the backward pass the inverse reshape, because moving values without changing them passes each
    output gradient back to the input element it came from. No parameters. Cache: the batch size.
    """

    def __init__(self, target_shape: tuple[int, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        try:
            values = tuple(target_shape)
        except TypeError:
            raise TypeError(f"{self.name}: target_shape must be a tuple of ints, got {target_shape!r}") from None
        if not values or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
            raise TypeError(f"{self.name}: target_shape must be a non-empty tuple of ints, got {target_shape!r}")
        if not all(v > 0 or v == -1 for v in values):
            raise ValueError(f"{self.name}: target_shape must hold positive ints and at most one -1, "
                             f"got {target_shape!r}")
        if values.count(-1) > 1:
            raise ValueError(f"{self.name}: target_shape may have only one unknown (-1) axis, got {target_shape!r}")
        self.target_shape = tuple(int(v) for v in values)

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        size = math.prod(input_shape)
        known = math.prod(v for v in self.target_shape if v != -1)
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(f"{self.name}: cannot reshape {input_shape} ({size} values) to "
                                 f"{self.target_shape}: {size} is not a multiple of {known}")
            return tuple(size // known if v == -1 else v for v in self.target_shape)
        if known != size:
            raise ValueError(f"{self.name}: cannot reshape {input_shape} ({size} values) to {self.target_shape} "
                             f"({known} values): the total size must be unchanged")
        return self.target_shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        self._cache = x.shape[0]
        return x.reshape(x.shape[0], *self._built_output_shape)

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        batch = self._take_cache()
        dy = self._check_output_gradient(dy, (batch, *self._built_output_shape))
        return dy.reshape(batch, *self._built_input_shape)

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"target_shape": self.target_shape}
