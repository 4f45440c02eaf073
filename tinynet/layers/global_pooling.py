"""GlobalAveragePooling2D: one number per channel, the mean of its whole feature map."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet.layers.base import Layer


class GlobalAveragePooling2D(Layer):
    r"""Average over the whole image, per channel, Keras 2's ``GlobalAveragePooling2D``.

    Shapes: ``(N, H, W, C) -> (N, C)``. No parameters. Often used instead of ``Flatten`` before the classifier:
    it has no weights to learn and does not care about the image size.

    Forward::

        y[n, c] = (1 / (H*W)) * sum_{h, w} x[n, h, w, c]

    Backward: every pixel of channel ``c`` enters ``y[n, c]`` with weight ``1 / (H*W)``, so each receives that
    share of the channel's gradient::

        dx[n, h, w, c] = dy[n, c] / (H*W)          (the same value at every pixel: a broadcast)

    Cache: only the batch size (the backward pass needs no input values: the map is linear with fixed weights).
    """

    def __init__(self, data_format: str | None = "channels_last", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{self.name}: only data_format='channels_last' (N, H, W, C) is supported, "
                             f"got {data_format!r}")

    def build(self, input_shape: tuple[int, ...]) -> None:
        input_shape = self._validate_shape(input_shape, "input_shape")
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: expects inputs of shape (batch, height, width, channels), "
                             f"got per-sample shape {input_shape}")
        super().build(input_shape)

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (input_shape[-1],)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        self._cache = x.shape[0]
        return x.mean(axis=(1, 2), dtype=self.dtype)

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        batch = self._take_cache()
        dy = self._check_output_gradient(dy, (batch, *self._built_output_shape))
        if not self.needs_input_gradient:
            return None
        height, width, channels = self._built_input_shape
        share = dy * self.dtype.type(1.0 / (height * width))
        # broadcast_to gives a read-only view; the next layer may write into dx, so copy it into its own array.
        return np.ascontiguousarray(np.broadcast_to(share[:, None, None, :], (batch, height, width, channels)))
