"""A training step written out layer by layer through the public layer API, with a stopwatch around each call.

``Sequential.train_on_batch`` does exactly this, in one call; spelling it out lets the ``layers`` and ``step``
suites time every layer's forward and backward inside a real step::

    for layer in model.layers:          y = layer.forward(y, training=True)
    loss = model.loss(targets, y)
    dz = model.loss.softmax_gradient(targets, y)     # fused softmax + cross-entropy, as Sequential does
    dy = last.backward_preactivation(dz)
    for layer in reversed(other layers): dy = layer.backward(dy)     # the first one skips dx
    model.optimizer.apply_gradients(model.layers)

What ``train_on_batch`` adds on top (input checks, casts, the accuracy metric) shows up as the difference
between its time and the sum of these pieces.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.flops import input_gradient_flags
from benchmarks.timing import Stopwatch

LOSS = "loss"
OPTIMIZER = "optimizer"


def uses_fused_softmax(model: Any) -> bool:
    """True when the last layer ends in softmax and the loss supplies the fused gradient ``(p - y) / N``."""
    last = model.layers[-1]
    return (
        bool(getattr(model.loss, "fuses_with_softmax", False))
        and getattr(getattr(last, "activation", None), "name", None) == "softmax"
        and hasattr(last, "backward_preactivation")
    )


def first_backward_index(model: Any) -> int:
    """Layers before the first one with parameters are never backpropagated into."""
    return next((index for index, layer in enumerate(model.layers) if layer.params and layer.trainable),
                len(model.layers))


def prepare_for_training(model: Any) -> None:
    """Set each layer's ``needs_input_gradient`` as ``Sequential`` does before a backward pass."""
    for layer, flag in zip(model.layers, input_gradient_flags(model), strict=True):
        layer.needs_input_gradient = flag


def layer_backward(model: Any, index: int, gradient: np.ndarray) -> np.ndarray | None:
    """Backward through layer ``index`` as a training step does (the last layer from ``dL/dz`` when fused)."""
    layer = model.layers[index]
    if index == len(model.layers) - 1 and uses_fused_softmax(model):
        return layer.backward_preactivation(gradient)
    return layer.backward(gradient)


def training_step_by_layer(model: Any, x: np.ndarray, targets: np.ndarray, watch: Stopwatch) -> float:
    """One full training step; every piece is timed into ``watch`` as ``"<layer name>|forward"`` etc.

    Returns the batch loss. The model must be compiled and built.
    """
    prepare_for_training(model)
    outputs = x
    for layer in model.layers:
        with watch(f"{layer.name}|forward"):
            outputs = layer.forward(outputs, training=True)
    with watch(f"{LOSS}|forward"):
        loss = model.loss(targets, outputs)
    fused = uses_fused_softmax(model)
    with watch(f"{LOSS}|backward"):
        gradient = model.loss.softmax_gradient(targets, outputs) if fused else model.loss.gradient(targets, outputs)
    for index in range(len(model.layers) - 1, first_backward_index(model) - 1, -1):
        with watch(f"{model.layers[index].name}|backward"):
            gradient = layer_backward(model, index, gradient)
    with watch(f"{OPTIMIZER}|update"):
        model.optimizer.apply_gradients(model.layers)
    return float(loss)
