"""Flatten: ``(N, H, W, C) -> (N, H*W*C)`` in Keras's channels-last order."""

from __future__ import annotations

import math

import numpy as np

from tinynet.layers.base import Layer


class Flatten(Layer):
    r"""Flattens each sample, keeping Keras's order: the feature index is ``(h * W + w) * C + c``.

    That is NumPy's C order for channels-last data, so the forward pass is a free ``reshape`` (a view, no copy)
    and the backward pass is the inverse reshape: flattening moves values without changing them, so the
    gradient of each input element is the gradient of the output element it became. No parameters. Cache: none
    beyond the batch size.
    """

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(input_shape),)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        self._cache = x.shape[0]
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        batch = self._take_cache()
        dy = self._check_output_gradient(dy, (batch, *self._built_output_shape))
        return dy.reshape(batch, *self._built_input_shape)
