"""The execution planner: runs runs of adjacent layers as one fused kernel where that is exactly equivalent.

A model's layers stay what the user built (``model.layers``, their weights, names, configs and summary do not
change). Before running, :func:`plan` walks the layer list and replaces recognised patterns by a *stage* that
does the same arithmetic in one pass; everything else runs layer by layer. Stages follow the layer contract's
``forward``/``backward``/``needs_input_gradient``, so the model's loops treat both alike.

Recognised today:

``MaxPooling2D -> ReLU [-> Dropout]``  (:class:`PoolReluDropout`)
    The tutorial's block after each convolution. Max pooling, ReLU and dropout each read and write the whole
    feature map; fused, the pooled map is touched once per image while it is in cache (see
    :mod:`tinynet.kernels.fused`). The dropout mask is drawn from the Dropout layer's own generator with the
    same call the layer makes, so the fused model is bit-for-bit the unfused one (tests compare them).

``Conv2D -> MaxPooling2D -> ReLU [-> Dropout]``  (:class:`tinynet.conv_block.ConvPoolReluDropout`)
    A convolution without activation before that block: the whole run is computed a few images at a time so
    that the im2col matrix and the convolution output stay in cache, and the slices are spread over tinynet's
    threads. The results equal the layers' up to rounding (the products are cut into other BLAS calls, the
    weight gradients add their terms in another order); tests compare them.

``model.fuse = False`` turns planning off (the layers then run one by one: the reference the fused stages are
tested against).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet.conv_block import ConvPoolReluDropout
from tinynet.kernels.dropout import draw_random_words
from tinynet.kernels.fused import pool_relu_dropout_backward, pool_relu_dropout_forward
from tinynet.layers.activation import Activation, ReLU
from tinynet.layers.base import Layer
from tinynet.layers.conv import Conv2D
from tinynet.layers.dropout import Dropout
from tinynet.layers.pooling import MaxPooling2D


def _is_plain_relu(layer: Layer) -> bool:
    if type(layer) is Activation:
        return layer.activation.name == "relu"
    return (type(layer) is ReLU and layer.max_value is None and layer.negative_slope == 0
            and layer.threshold == 0)


class PoolReluDropout:
    """A fused ``MaxPooling2D -> ReLU [-> Dropout]`` stage (math in :mod:`tinynet.kernels.fused`).

    Cache: ``argmax_index`` (int32) and ``pass_mask`` (uint8: kept by dropout and positive after ReLU), both
    the shape of the output.
    """

    def __init__(self, pool: MaxPooling2D, relu: Layer, dropout: Dropout | None = None) -> None:
        self.pool, self.relu, self.dropout = pool, relu, dropout
        self.layers = tuple(layer for layer in (pool, relu, dropout) if layer is not None)
        self.name = "+".join(layer.name for layer in self.layers)
        self._cache: Any = None

    @property
    def needs_input_gradient(self) -> bool:
        return self.pool.needs_input_gradient

    @needs_input_gradient.setter
    def needs_input_gradient(self, value: bool) -> None:
        self.pool.needs_input_gradient = value

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        pool = self.pool
        x = np.ascontiguousarray(pool._prepare_input(x))
        output_shape = (x.shape[0], *pool.output_shape)
        dropout_on = training and self.dropout is not None and self.dropout.rate > 0
        words = draw_random_words(self.dropout.generator, output_shape) if dropout_on else None
        (ph, pw), (sh, sw) = pool.pool_size, pool.strides
        y, argmax_index, pass_mask = pool_relu_dropout_forward(
            x, ph, pw, sh, sw, pool.pad_top, pool.pad_left, pool.out_h, pool.out_w,
            words=words, rate=self.dropout.rate if dropout_on else 0.0,
        )
        self._cache = (argmax_index, pass_mask, dropout_on)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError(f"{self.name}: backward called without a forward pass before it")
        argmax_index, pass_mask, dropout_on = self._cache
        self._cache = None
        dy = self.pool._check_output_gradient(dy, argmax_index.shape)
        if not self.needs_input_gradient:
            return None
        height, width, _ = self.pool.input_shape
        pool = self.pool
        window = (*pool.pool_size, *pool.strides, pool.pad_top, pool.pad_left)
        return pool_relu_dropout_backward(dy, argmax_index, pass_mask, height, width,
                                          rate=self.dropout.rate if dropout_on else 0.0, dropout=dropout_on,
                                          window=window)


Stage = Layer | PoolReluDropout | ConvPoolReluDropout


def _absorbs_convolution(stage: Stage, following: Stage) -> bool:
    """A Conv2D whose output goes, unactivated and unchanged, into a fused pooling stage."""
    return (type(stage) is Conv2D and isinstance(following, PoolReluDropout) and stage.built
            and stage.activation.name == "linear" and stage.dtype == following.pool.dtype)


def plan(layers: list[Layer]) -> list[Stage]:
    """The stages that run ``layers``: fused where a pattern matches, the layers themselves elsewhere."""
    stages: list[Stage] = []
    index = 0
    while index < len(layers):
        layer = layers[index]
        following = layers[index + 1:index + 3]
        if (type(layer) is MaxPooling2D and following and _is_plain_relu(following[0])
                and all(other.dtype == layer.dtype and other.built for other in (layer, *following))):
            dropout = following[1] if len(following) > 1 and type(following[1]) is Dropout else None
            if dropout is not None and dropout.noise_shape is not None:
                dropout = None  # a shared mask along some axes: leave that Dropout to run on its own
            stages.append(PoolReluDropout(layer, following[0], dropout))
            index += 3 if dropout is not None else 2
            continue
        stages.append(layer)
        index += 1
    merged: list[Stage] = []
    for stage in stages:
        if merged and _absorbs_convolution(merged[-1], stage):
            merged.append(ConvPoolReluDropout(merged.pop(), stage))
        else:
            merged.append(stage)
    return merged
