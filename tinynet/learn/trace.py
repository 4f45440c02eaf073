"""One step, traced: :func:`trace_step` runs one forward and backward pass on a batch and returns, per layer, the
shapes and a few summary numbers of what went in and out both ways (``examples/inspect_backprop.py`` prints it
for the tutorial CNN); :func:`is_relu` and :func:`dead_fraction` find dead rectifier units."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinynet.layers import Activation, Conv2D, Dense, Layer, ReLU
from tinynet.learn.hooks import install_hooks, l2_norm, restore_fusion, run_layer_by_layer
from tinynet.models.checks import check_xy


def is_relu(layer: Layer) -> bool:
    """True for layers whose output is a plain rectifier: ``Activation('relu')``, ``Conv2D``/``Dense`` with
    ``activation='relu'``, and ``ReLU`` without a negative slope."""
    if isinstance(layer, ReLU):
        return layer.negative_slope == 0
    activation = getattr(layer, "activation", None)
    return isinstance(layer, Activation | Conv2D | Dense) and getattr(activation, "name", None) == "relu"


def dead_fraction(y: np.ndarray) -> float:
    """Fraction of units (entries of one sample's output) that are exactly 0 for every sample of the batch."""
    return float(np.mean(np.all(y == 0, axis=0)))


@dataclass
class LayerTrace:
    """What one layer saw in one training step (forward, then backward)."""

    name: str
    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    output_mean: float
    output_std: float
    output_dead_fraction: float | None = None
    upstream_shape: tuple[int, ...] | None = None  # dL/d(output) (dL/dz when fused), arriving in backward
    upstream_norm: float | None = None
    fused: bool = False
    input_gradient_shape: tuple[int, ...] | None = None  # dL/d(input), sent on; None when not needed
    input_gradient_norm: float | None = None
    gradient_norms: dict[str, float] = field(default_factory=dict)  # ||dL/dW|| per parameter
    gradients: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def trace_step(model: Any, x: np.ndarray, y: np.ndarray, training: bool = True) -> list[LayerTrace]:
    """Run one forward and one backward pass of a compiled model on ``(x, y)`` and trace it layer by layer.

    Nothing is updated: the optimizer is not called (the gradients are left in each ``layer.grads`` and copied
    into the traces). ``training=True`` runs dropout and batch statistics as ``fit`` would.
    """
    if getattr(model, "loss", None) is None:
        raise RuntimeError("trace_step: compile the model first (the loss starts the backward pass)")
    x, y = check_xy(model, x, y, "trace_step")
    traces: dict[str, LayerTrace] = {}

    def after_forward(layer: Layer, inputs: np.ndarray, outputs: np.ndarray, is_training: bool) -> None:
        traces[layer.name] = LayerTrace(
            name=layer.name, kind=type(layer).__name__, input_shape=tuple(inputs.shape),
            output_shape=tuple(outputs.shape), output_mean=float(np.mean(outputs, dtype=np.float64)),
            output_std=float(np.std(outputs, dtype=np.float64)),
            output_dead_fraction=dead_fraction(outputs) if is_relu(layer) else None)

    def after_backward(layer: Layer, dy: np.ndarray, dx: Any, fused: bool) -> None:
        trace = traces[layer.name]
        trace.upstream_shape, trace.upstream_norm, trace.fused = tuple(np.shape(dy)), l2_norm(dy), fused
        if dx is not None:
            trace.input_gradient_shape, trace.input_gradient_norm = tuple(dx.shape), l2_norm(dx)

    restore = install_hooks(model.layers, after_forward, after_backward)
    fuse = run_layer_by_layer(model)
    try:
        model.compute_gradients(x, y, training=training)  # the model's own step, without the update
    finally:
        restore()
        restore_fusion(model, fuse)
    for layer in model.layers:
        trace = traces[layer.name]
        if trace.upstream_shape is not None:
            trace.gradients = {name: grad.copy() for name, grad in layer.grads.items()}
            trace.gradient_norms = {name: l2_norm(grad) for name, grad in layer.grads.items()}
    return [traces[layer.name] for layer in model.layers]
