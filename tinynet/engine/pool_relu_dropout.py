"""The fused ``MaxPooling2D -> ReLU [-> Dropout]`` stage (math in :mod:`tinynet.kernels.fused`)."""

from __future__ import annotations

import numpy as np

from tinynet.engine.mask_words import draw_random_words_threaded
from tinynet.engine.stage import StandIn
from tinynet.kernels.fused import pool_relu_dropout_backward, pool_relu_dropout_forward
from tinynet.layers.base import Layer
from tinynet.layers.dropout import Dropout
from tinynet.layers.max_pooling import MaxPooling2D


class PoolReluDropout(StandIn):
    """Max pooling, ReLU and (when given) dropout in one pass over each image, bit for bit the three layers.

    The stage reads the layers only through their public interface: the pooling layer's ``window``,
    ``check_input`` and ``check_output_gradient``, the Dropout layer's ``rate`` and ``draw_mask_words`` (the
    call the layer itself makes, so the mask and the generator's state are the layer's own).

    Cache: ``argmax_index`` (int32) and ``pass_mask`` (uint8: kept by dropout and positive after ReLU), both
    the shape of the output.
    """

    def __init__(self, pool: MaxPooling2D, relu: Layer, dropout: Dropout | None = None) -> None:
        super().__init__(*(layer for layer in (pool, relu, dropout) if layer is not None))
        self.pool, self.relu, self.dropout = pool, relu, dropout

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        pool = self.pool
        x = np.ascontiguousarray(pool.check_input(x))
        output_shape = (x.shape[0], *pool._built_output_shape)
        dropout = self.dropout if training and self.dropout is not None and self.dropout.rate > 0 else None
        dropout_on = dropout is not None
        words = (dropout.draw_mask_words(output_shape, draw_random_words_threaded) if dropout is not None
                 else None)
        y, argmax_index, pass_mask = pool_relu_dropout_forward(
            x, *pool.window, words=words, rate=dropout.rate if dropout is not None else 0.0)
        self._cache = (argmax_index, pass_mask, dropout_on)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        argmax_index, pass_mask, dropout_on = self._take_cache()
        dy = self.pool.check_output_gradient(dy, argmax_index.shape)
        if not self.needs_input_gradient:
            return None
        height, width, _ = self.pool._built_input_shape
        return pool_relu_dropout_backward(dy, argmax_index, pass_mask, height, width,
                                          rate=self.dropout.rate if dropout_on and self.dropout is not None else 0.0,
                                          dropout=dropout_on,
                                          window=self.pool.window[:6])
