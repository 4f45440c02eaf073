"""The planner: which implementation runs each layer, or each run of adjacent layers.

A model's layers stay what the user built (``model.layers``, their weights, names, configs and summary do not
change). Before running, :func:`plan` walks the layer list and, as Caffe's ``layer_factory`` picks an engine for
each layer, maps each layer, or a recognised run of layers, to a *stage*: an object with the layer contract's
``forward``/``backward``/``needs_input_gradient`` that computes the same thing faster. Layers it does not know
run as themselves. Stages read the layers only through their public interface and keep their own caches and
work arrays, so a layer's file holds nothing but the layer.

Runs recognised:

``MaxPooling2D -> ReLU [-> Dropout]``  (:class:`tinynet.engine.pool_relu_dropout.PoolReluDropout`)
    The tutorial's block after each convolution. Max pooling, ReLU and dropout each read and write the whole
    feature map; fused, the pooled map is touched once per image while it is in cache (see
    :mod:`tinynet.kernels.fused`). The dropout mask is drawn with the Dropout layer's own ``draw_mask_words``,
    so the fused model is bit-for-bit the unfused one (tests compare them).

``Conv2D -> MaxPooling2D -> ReLU [-> Dropout]``  (:class:`tinynet.engine.conv_block.ConvPoolReluDropout`)
    A convolution without activation before that block: the whole run is computed a few images at a time so
    that the im2col matrix and the convolution output stay in cache, and the slices are spread over the
    engine's threads. The results equal the layers' up to rounding (the products are cut into other BLAS calls,
    the weight gradients add their terms in another order); tests compare them.

``Dense -> ReLU [-> Dropout]``  (:class:`tinynet.engine.dense_relu_dropout.DenseReluDropout`)
    A Dense without activation (or with ``activation="relu"``, then without the ReLU layer) and the dropout
    after it: the bias, ReLU and dropout in one pass over the product, bit for bit the layers (tests compare
    them), the mask drawn by the Dropout layer's own ``draw_mask_words``.

Single layers (:data:`ENGINE_IMPLEMENTATIONS`): ``Dense`` -> :class:`tinynet.engine.dense.ThreadedDense`,
``Conv2D`` -> :class:`tinynet.engine.conv.ThreadedConv2D`: the layer's equations with the matrix products
shared by the threads, bit for bit the layer's.

Layers with an option the stages lack (a Conv2D with ``dilation_rate`` other than 1) run as themselves, and so do
the layers the engine has no stage for (Reshape, ZeroPadding2D, ELU, Activation of any function but a plain ReLU
after max pooling).

``model.fuse = False`` turns the engine off: the layers then run their own code, one by one (the reference the
stages are tested against).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tinynet.engine.conv import ThreadedConv2D
from tinynet.engine.conv_block import ConvPoolReluDropout
from tinynet.engine.dense import ThreadedDense
from tinynet.engine.dense_relu_dropout import DenseReluDropout
from tinynet.engine.pool_relu_dropout import PoolReluDropout
from tinynet.engine.stage import Stage
from tinynet.layers.activation import Activation, ReLU
from tinynet.layers.base import Layer
from tinynet.layers.conv import Conv2D
from tinynet.layers.dense import Dense
from tinynet.layers.dropout import Dropout
from tinynet.layers.max_pooling import MaxPooling2D

#: The engine's implementation of a single layer, by the layer's exact class (a subclass may have changed the
#: math, so it runs as itself), for the options its stages implement (:func:`_engine_implements`). Each takes a
#: layer of its key's class, which a dict's type cannot say: ``Any``.
ENGINE_IMPLEMENTATIONS: dict[type[Layer], Callable[[Any], Stage]] = {
    Dense: ThreadedDense,
    Conv2D: ThreadedConv2D,
}


def _engine_implements(layer: Stage) -> bool:
    """Whether the engine's stages compute this layer: its exact class, and no option they lack (a dilated
    Conv2D runs its own code; the stages' im2col takes no dilation)."""
    if type(layer) is Conv2D:
        return layer.dilation_rate == (1, 1)
    return type(layer) in ENGINE_IMPLEMENTATIONS


def _is_plain_relu(layer: Layer) -> bool:
    if type(layer) is Activation:
        return layer.activation.name == "relu"
    return (type(layer) is ReLU and layer.max_value is None and layer.negative_slope == 0
            and layer.threshold == 0)


def _absorbs_convolution(conv: Conv2D, following: PoolReluDropout) -> bool:
    """A Conv2D whose output goes, unactivated and unchanged, into a fused pooling stage."""
    return (_engine_implements(conv) and conv.built and conv.activation.name == "linear"
            and conv.dtype == following.pool.dtype)


def _pooling_stages(layers: list[Layer]) -> list[Stage]:
    """The layers, with every ``MaxPooling2D -> ReLU [-> Dropout]`` run replaced by one fused stage."""
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
    return stages


def _plain_dropout(layer: Layer | None, dtype: object) -> Dropout | None:
    """``layer`` when it is a Dropout the fused stages can run (its own mask per element: no noise_shape)."""
    if type(layer) is Dropout and layer.noise_shape is None and layer.dtype == dtype and layer.built:
        return layer
    return None


def _dense_stages(stages: list[Stage]) -> list[Stage]:
    """The stages, with every ``Dense -> ReLU [-> Dropout]`` run (or ``Dense(activation="relu") [-> Dropout]``)
    replaced by one fused stage."""
    fused: list[Stage] = []
    index = 0
    while index < len(stages):
        stage = stages[index]
        following = stages[index + 1:index + 3]
        if type(stage) is Dense and _engine_implements(stage) and stage.built:
            if stage.activation.name == "linear" and following and isinstance(following[0], Layer) \
                    and _is_plain_relu(following[0]) and following[0].dtype == stage.dtype and following[0].built:
                after = following[1] if len(following) > 1 else None
                dropout = _plain_dropout(after if isinstance(after, Layer) else None, stage.dtype)
                fused.append(DenseReluDropout(stage, following[0], dropout))
                index += 3 if dropout is not None else 2
                continue
            if stage.activation.name == "relu":
                after = following[0] if following else None
                dropout = _plain_dropout(after if isinstance(after, Layer) else None, stage.dtype)
                if dropout is not None:
                    fused.append(DenseReluDropout(stage, None, dropout))
                    index += 2
                    continue
        fused.append(stage)
        index += 1
    return fused


def plan(layers: list[Layer]) -> list[Stage]:
    """The stages that run ``layers``: fused runs where a pattern matches, the engine's implementation of a
    single layer where it has one, the layers themselves elsewhere."""
    merged: list[Stage] = []
    for stage in _pooling_stages(layers):
        previous = merged[-1] if merged else None
        # Exactly Conv2D: a subclass may have changed the math, so it runs as itself.
        if type(previous) is Conv2D and isinstance(stage, PoolReluDropout) and _absorbs_convolution(previous, stage):
            merged.pop()
            merged.append(ConvPoolReluDropout(previous, stage))
        else:
            merged.append(stage)
    return [ENGINE_IMPLEMENTATIONS[type(stage)](stage) if isinstance(stage, Layer) and _engine_implements(stage)
            else stage for stage in _dense_stages(merged)]
