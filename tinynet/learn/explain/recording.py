"""Record real training steps of a ``Sequential``, tensor by tensor, through its public step.

Each step is the model's own ``compute_gradients`` followed by ``optimizer.apply_gradients(model.layers)`` (what
``train_step`` runs), with three additions that change none of its numbers:

* the engine's fused stages are switched off for the step (``model.fuse = False``) so that every layer's own
  ``forward`` and ``backward`` run and the hooks of :func:`tinynet.learn.hooks.install_hooks` see each of them (fused
  and unfused passes compute the same numbers, see :mod:`tinynet.engine`); the setting is put back afterwards;
* copies are taken of what each layer received and sent, both ways, of every parameter and optimizer slot before
  and after the update, and of the learning rate the update used;
* between the backward pass and the update, each layer's backward pass is checked against central differences in
  float64 at the step's own weights (:func:`tinynet.learn.gradcheck.check_layer`, on working copies: the layer, its
  generators and its moving statistics are left exactly as they were), and so is the fused softmax/cross-entropy
  gradient ``(p - y) / N`` when the model uses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinynet.engine import blas
from tinynet.layers.base import Layer
from tinynet.learn.gradcheck import GradcheckReport, check_layer, numerical_gradient
from tinynet.learn.hooks import install_hooks, restore_fusion, run_layer_by_layer
from tinynet.models import passes

# The check's input is the step's own input plus a little noise (this fraction of its standard deviation): on real
# images whole windows are equal (a black background), which puts max pooling on a tie and ReLU on its kink at 0,
# where no derivative exists and finite differences cannot agree with any choice. The noise is far larger than the
# finite-difference step (1e-6) and far smaller than the features, so it moves the check off the kinks only.
CHECK_JITTER = 1e-3


@dataclass
class LayerRecord:
    """What one layer received and sent in one recorded step, and what the optimizer did to its parameters."""

    index: int
    layer: Layer
    x: np.ndarray                       # the input of its forward pass
    y: np.ndarray                       # its output
    dy: np.ndarray | None = None        # dL/dy arriving in backward (dL/dz before its activation when fused)
    dx: np.ndarray | None = None        # dL/dx it sent on (None when not computed: the first layer)
    fused: bool = False
    grads: dict[str, np.ndarray] = field(default_factory=dict)
    params_before: dict[str, np.ndarray] = field(default_factory=dict)
    params_after: dict[str, np.ndarray] = field(default_factory=dict)
    slots_before: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # parameter -> slot kind -> array
    slots_after: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    check: GradcheckReport | None = None
    check_samples: int = 0              # samples of the step's input the check ran on
    check_error: str | None = None      # why the layer could not be checked (check_layer refused it)

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def kind(self) -> str:
        return type(self.layer).__name__


@dataclass
class LossRecord:
    """The loss of one step and the gradient that starts the backward pass."""

    name: str
    value: float
    targets: np.ndarray
    outputs: np.ndarray                 # the model's output (probabilities after a softmax)
    gradient: np.ndarray | None         # what the last layer received: (p - y) / N when fused
    fused: bool
    numeric: np.ndarray | None = None   # central differences of the loss for the entries at ``checked``
    checked: list[tuple[int, ...]] = field(default_factory=list)


@dataclass
class StepRecord:
    """One recorded training step."""

    number: int                         # 0, 1, ... among the recorded steps
    iterations: int                     # the optimizer's ``iterations`` before the update (Keras's t)
    learning_rate: float                # lr_t after Keras 2's decay or the schedule, as the update used it
    figures: dict[str, float]           # loss and metrics of the batch, from this forward pass
    x: np.ndarray
    y: np.ndarray
    layers: list[LayerRecord]
    loss: LossRecord


def _copies(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.array(value, copy=True) for name, value in arrays.items()}


def _slots(model: Any) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """``{(layer, parameter): {slot kind: copy}}`` of the optimizer's state (empty before its first update)."""
    optimizer = model.optimizer
    if not hasattr(optimizer, "get_slots"):
        return {}
    result: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for kind, arrays in optimizer.get_slots(model.layers).items():
        for key, value in arrays.items():
            result.setdefault(key, {})[kind] = np.array(value, copy=True)
    return result


def record_step(model: Any, x: np.ndarray, y: np.ndarray, number: int = 0, check_samples: int = 2,
                check_entries: int = 12, seed: int = 0) -> StepRecord:
    """One training step of a compiled model on the batch ``(x, y)``, recorded (see the module docstring).

    The model is trained by this step exactly as ``train_step`` would train it. ``check_samples`` samples of the
    batch and ``check_entries`` entries of each array go into each layer's gradient check.
    """
    if getattr(model, "loss", None) is None or getattr(model, "optimizer", None) is None:
        raise ValueError("explain: compile the model first (model.compile(optimizer, loss)); the recorded step "
                         "needs its loss and its optimizer")
    records: list[LayerRecord] = []
    by_layer: dict[int, LayerRecord] = {}

    def after_forward(layer: Layer, inputs: np.ndarray, outputs: np.ndarray, training: bool) -> None:
        record = LayerRecord(index=len(records), layer=layer, x=np.array(inputs, copy=True),
                             y=np.array(outputs, copy=True))
        records.append(record)
        by_layer[id(layer)] = record

    def after_backward(layer: Layer, upstream: np.ndarray, sent: Any, fused: bool) -> None:
        record = by_layer[id(layer)]
        record.dy = np.array(upstream, copy=True)
        record.dx = None if sent is None else np.array(sent, copy=True)
        record.fused = fused

    optimizer = model.optimizer
    before = [_copies(layer.params) for layer in model.layers]
    slots_before = _slots(model)
    iterations = int(getattr(optimizer, "iterations", 0))
    learning_rate = float(optimizer.current_learning_rate()) if hasattr(optimizer, "current_learning_rate") \
        else float("nan")
    fuse = run_layer_by_layer(model)
    restore = install_hooks(model.layers, after_forward=after_forward, after_backward=after_backward)
    try:
        figures = model.compute_gradients(x, y)
    finally:
        restore()
        restore_fusion(model, fuse)
    if len(records) != len(model.layers):
        raise RuntimeError(f"explain: recorded {len(records)} forward passes for {len(model.layers)} layers; a "
                           "layer was skipped or ran twice")
    for record, layer, params in zip(records, model.layers, before, strict=True):
        record.grads = _copies(layer.grads)
        record.params_before = params
    loss = _loss_record(model, y, records[-1], figures)
    rng = np.random.default_rng(seed + number)
    with blas.single_threaded():  # small float64 products: OpenBLAS's threads would only spin against each other
        for record in records:
            _check(record, check_samples, check_entries, rng)
    if not math.isfinite(figures["loss"]):
        raise FloatingPointError(f"explain: the loss of step {number} is {figures['loss']}; nothing was updated")
    optimizer.apply_gradients(model.layers)
    slots_after = _slots(model)
    for record in records:
        record.params_after = _copies(record.layer.params)
        for name in record.params_before:
            key = (record.name, name)
            record.slots_after[name] = slots_after.get(key, {})
            # A slot is created at zero on a parameter's first update: before it, it was zero.
            record.slots_before[name] = slots_before.get(key) or {
                kind: np.zeros_like(value) for kind, value in record.slots_after[name].items()}
    return StepRecord(number=number, iterations=iterations, learning_rate=learning_rate, figures=dict(figures),
                      x=records[0].x, y=np.array(y, copy=True), layers=records, loss=loss)


def _check(record: LayerRecord, samples: int, entries: int, rng: np.random.Generator) -> None:
    x = np.array(record.x[:samples], dtype=np.float64)
    record.check_samples = len(x)
    x += rng.standard_normal(x.shape) * CHECK_JITTER * max(float(x.std()), 1e-3)
    try:
        record.check = check_layer(record.layer, x=x, max_entries=entries, seed=int(rng.integers(2**31)))
    except (TypeError, ValueError, NotImplementedError) as error:
        record.check_error = f"{type(error).__name__}: {error}"


def _loss_record(model: Any, y: np.ndarray, last: LayerRecord, figures: dict[str, float]) \
        -> LossRecord:
    targets = np.asarray(y)
    fused = passes.uses_fused_softmax(model)
    record = LossRecord(name=getattr(model.loss, "name", type(model.loss).__name__), value=float(figures["loss"]),
                        targets=np.array(targets, copy=True), outputs=last.y, gradient=last.dy, fused=fused)
    if fused:
        _check_fused_gradient(model, record)
    return record


def _check_fused_gradient(model: Any, record: LossRecord, entries: int = 8, step: float = 1e-6) -> None:
    """Central differences of the loss with respect to the logits, in float64, for a few entries.

    The logits are taken as ``log p``: a softmax is unchanged when a constant is added to a row of its logits, and
    ``softmax(log p) = p``, so ``log p`` gives the step's probabilities and the same gradient as the layer's own
    pre-activation would.
    """
    probabilities = np.asarray(record.outputs, dtype=np.float64)
    logits = np.log(np.maximum(probabilities, 1e-300))
    targets = record.targets if np.issubdtype(record.targets.dtype, np.integer) else \
        np.asarray(record.targets, dtype=np.float64)

    def loss() -> float:
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return float(model.loss(targets, shifted / shifted.sum(axis=-1, keepdims=True)))

    # The largest entries of (p - y): the true class of the first samples and their strongest wrong guesses.
    if record.gradient is None:
        raise ValueError("explain: no loss gradient was recorded for this step")
    first = record.gradient[:4]
    order = np.argsort(-np.abs(first), axis=None)[:entries]
    checked: list[tuple[int, ...]] = [tuple(int(i) for i in np.unravel_index(flat, first.shape)) for flat in order]
    record.checked, record.numeric = checked, numerical_gradient(loss, logits, checked, step)
