"""ZeroPadding2D: rows and columns of zeros around each image (Keras 2's ``ZeroPadding2D(padding)``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet.layers.base import Layer


def _non_negative_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 0


class ZeroPadding2D(Layer):
    r"""Adds zeros around the height and width axes of channels-last images, Keras 2's ``ZeroPadding2D``.

    ``padding`` is, as in Keras: an int ``p`` (``p`` rows above and below, ``p`` columns left and right), a pair
    ``(h, w)`` (``h`` rows above and below, ``w`` columns each side), or ``((top, bottom), (left, right))``. All
    lengths are ints >= 0. ``get_config`` stores the last form, as Keras does.

    Shapes: ``(N, H, W, C)`` in, ``(N, top + H + bottom, left + W + right, C)`` out; no parameters.

    Forward: ``y = 0`` everywhere, then ``y[:, top:top+H, left:left+W, :] = x``.
    Backward: ``y`` is ``x`` copied into the middle of a frame of constants, so each input pixel reaches exactly one
    output pixel with slope 1, and the zeros depend on nothing: ``dx = dy[:, top:top+H, left:left+W, :]``.
    Cache: the batch size.
    """

    def __init__(self, padding: Any = (1, 1), data_format: str | None = "channels_last", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{self.name}: only data_format='channels_last' (N, H, W, C) is supported, "
                             f"got {data_format!r}")
        self.padding = self._normalize_padding(padding)

    def _normalize_padding(self, padding: Any) -> tuple[tuple[int, int], tuple[int, int]]:
        expected = "an int, (rows, columns) or ((top, bottom), (left, right)) of ints >= 0"
        if _non_negative_int(padding):
            return ((int(padding),) * 2,) * 2
        try:
            pair = tuple(padding)
        except TypeError:
            raise TypeError(f"{self.name}: padding must be {expected}, got {padding!r}") from None
        if len(pair) == 2 and all(_non_negative_int(v) for v in pair):
            return ((int(pair[0]),) * 2, (int(pair[1]),) * 2)
        try:
            nested = tuple(tuple(side) for side in pair)
        except TypeError:
            raise TypeError(f"{self.name}: padding must be {expected}, got {padding!r}") from None
        if len(nested) != 2 or not all(len(side) == 2 and all(_non_negative_int(v) for v in side) for side in nested):
            raise ValueError(f"{self.name}: padding must be {expected}, got {padding!r}")
        (top, bottom), (left, right) = nested
        return ((int(top), int(bottom)), (int(left), int(right)))

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: expects inputs of shape (batch, height, width, channels), "
                             f"got per-sample shape {input_shape}")
        (top, bottom), (left, right) = self.padding
        height, width, channels = input_shape
        return (top + height + bottom, left + width + right, channels)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        (top, _), (left, _) = self.padding
        height, width, _ = self.input_shape
        y = np.zeros((x.shape[0], *self.output_shape), dtype=self.dtype)
        y[:, top:top + height, left:left + width, :] = x
        self._cache = x.shape[0]
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        batch = self._take_cache()
        dy = self._check_output_gradient(dy, (batch, *self.output_shape))
        if not self.needs_input_gradient:
            return None
        (top, _), (left, _) = self.padding
        height, width, _ = self.input_shape
        # A copy, not a view: the layer before gets a C-contiguous array it may reshape for free.
        return np.ascontiguousarray(dy[:, top:top + height, left:left + width, :])

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"padding": self.padding, "data_format": "channels_last"}
