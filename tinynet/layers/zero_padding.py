"""ZeroPadding2D: rows and columns of zeros around each image (Keras 2's ``ZeroPadding2D(padding)``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet.layers.base import Layer


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _lengths_of_pair(padding: Any, expected: str, owner: str) -> tuple[Any, Any]:
    """The (height, width) parts of a padding that is not a plain int."""
    if isinstance(padding, str | bytes | bool) or not hasattr(padding, "__len__"):
        raise TypeError(f"{owner}: padding must be {expected}, got {padding!r}")
    if len(padding) != 2:
        raise ValueError(f"{owner}: padding must be {expected}, got {padding!r}")
    return padding[0], padding[1]


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

        def lengths(value: Any, count: int) -> tuple[int, ...]:
            """``count`` ints >= 0 from an int (repeated) or a sequence of ``count`` of them."""
            values = (value,) * count if _is_int(value) else value
            if isinstance(values, str | bytes) or not hasattr(values, "__len__"):
                raise TypeError(f"{self.name}: padding must be {expected}, got {padding!r}")
            if len(values) != count:
                raise ValueError(f"{self.name}: padding must be {expected}, got {padding!r}")
            if not all(_is_int(v) for v in values):
                raise TypeError(f"{self.name}: padding must be {expected}, got {padding!r}")
            if any(v < 0 for v in values):
                raise ValueError(f"{self.name}: padding must be {expected}, got {padding!r}")
            return tuple(int(v) for v in values)

        if _is_int(padding):
            padding_h = padding_w = padding
        else:
            padding_h, padding_w = _lengths_of_pair(padding, expected, self.name)
        return lengths(padding_h, 2), lengths(padding_w, 2)  # type: ignore[return-value]

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
        height, width, _ = self._built_input_shape
        y = np.zeros((x.shape[0], *self._built_output_shape), dtype=self.dtype)
        y[:, top:top + height, left:left + width, :] = x
        self._cache = x.shape[0]
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        batch = self._take_cache()
        dy = self._check_output_gradient(dy, (batch, *self._built_output_shape))
        if not self.needs_input_gradient:
            return None
        (top, _), (left, _) = self.padding
        height, width, _ = self._built_input_shape
        # A copy, not a view: the layer before gets a C-contiguous array it may reshape for free.
        return np.ascontiguousarray(dy[:, top:top + height, left:left + width, :])

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"padding": self.padding, "data_format": "channels_last"}
