"""The optimizer's update of one parameter, with Keras 2's equations filled in with the step's own numbers.

For SGD (the tutorial's optimizer) and Adam the equations are written out with every number substituted, for the
entry of the parameter whose gradient is largest, and the result is compared with what the optimizer actually
wrote. Any other optimizer shows its class docstring's equations with the numbers that go into them (its
hyperparameters, ``lr_t``, the entry's gradient, slots and value before and after).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .recording import LayerRecord, StepRecord


@dataclass
class UpdateExplanation:
    """One parameter's update in one step."""

    parameter: str
    before_norm: float
    after_norm: float
    update_norm: float
    ratio: float                               # ||p_after - p_before|| / ||p_before|| (NaN while p is all zero)
    update: np.ndarray                          # p_after - p_before
    entry: tuple[int, ...]
    equations: str                              # the optimizer class's equations, from its docstring
    filled: list[str] = field(default_factory=list)


def _number(value: float) -> str:
    return f"{value:.6g}"


def docstring_equations(optimizer: Any) -> str:
    """The first literal block (``::``) of the optimizer class's docstring: its update equations."""
    text = inspect.getdoc(type(optimizer)) or ""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.rstrip().endswith("::"):
            block = []
            for following in lines[index + 1:]:
                if following and not following.startswith(" "):
                    break
                block.append(following)
            return "\n".join(block).strip("\n")
    return text.split("\n\n")[0]


def _clipped_gradient(optimizer: Any, step: StepRecord, grad: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The gradient the update used: Keras 2.2.4's clipnorm (one norm over every gradient) then clipvalue."""
    notes = []
    clipnorm, clipvalue = getattr(optimizer, "clipnorm", None), getattr(optimizer, "clipvalue", None)
    grad = np.asarray(grad, dtype=np.float64)
    if clipnorm:
        norm = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64)))
                             for record in step.layers if record.layer.trainable for g in record.grads.values()))
        if norm >= clipnorm:
            grad = grad * (clipnorm / norm)
            notes.append(f"clipnorm: the norm of all gradients together is {_number(norm)} >= {_number(clipnorm)}, "
                         f"so every g is scaled by {_number(clipnorm)} / {_number(norm)}")
        else:
            notes.append(f"clipnorm: the norm of all gradients together is {_number(norm)} < {_number(clipnorm)}: "
                         "no scaling")
    if clipvalue:
        grad = np.clip(grad, -clipvalue, clipvalue)
        notes.append(f"clipvalue: g is clipped to [-{_number(clipvalue)}, {_number(clipvalue)}]")
    return grad, notes


def explain_updates(step: StepRecord, record: LayerRecord, optimizer: Any) -> list[UpdateExplanation]:
    """One :class:`UpdateExplanation` per parameter of the layer (none for a frozen layer)."""
    explanations: list[UpdateExplanation] = []
    if not record.layer.trainable:
        return explanations
    for name, before in record.params_before.items():
        after = record.params_after[name]
        before64, after64 = np.asarray(before, np.float64), np.asarray(after, np.float64)
        update = after64 - before64
        before_norm = float(np.linalg.norm(before64))
        grad, notes = _clipped_gradient(optimizer, step, record.grads[name])
        entry = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.abs(grad))), grad.shape))
        explanation = UpdateExplanation(
            parameter=name, before_norm=before_norm, after_norm=float(np.linalg.norm(after64)),
            update_norm=float(np.linalg.norm(update)),
            ratio=float(np.linalg.norm(update)) / before_norm if before_norm > 0 else float("nan"),
            update=update, entry=entry, equations=docstring_equations(optimizer), filled=list(notes))
        slots_before = {kind: float(np.asarray(value)[entry]) for kind, value in record.slots_before[name].items()}
        slots_after = {kind: float(np.asarray(value)[entry]) for kind, value in record.slots_after[name].items()}
        values = (float(before64[entry]), float(grad[entry]), float(after64[entry]), slots_before, slots_after)
        kind = type(optimizer).__name__
        if kind == "SGD":
            explanation.filled += _sgd(optimizer, step, name, entry, *values)
        elif kind == "Adam" and not getattr(optimizer, "amsgrad", False):
            explanation.filled += _adam(optimizer, step, name, entry, *values)
        else:
            explanation.filled += _generic(optimizer, step, name, entry, *values)
        explanations.append(explanation)
    return explanations


def _entry(name: str, entry: tuple[int, ...]) -> str:
    return f"{name}[{', '.join(map(str, entry))}]"


def _sgd(optimizer: Any, step: StepRecord, name: str, entry: tuple[int, ...], p: float, g: float, actual: float,
         slots_before: dict[str, float], slots_after: dict[str, float]) -> list[str]:
    t, lr, decay, momentum = step.iterations, optimizer.learning_rate, optimizer.decay, optimizer.momentum
    lr_t = step.learning_rate
    lines = [f"t = iterations = {t}"]
    if isinstance(lr, int | float):
        lines.append(f"lr_t = lr / (1 + decay * t) = {_number(lr)} / (1 + {_number(decay)} * {t}) = {_number(lr_t)}")
    else:
        lines.append(f"lr_t = the schedule at t = {_number(lr_t)}")
    lines.append(f"entry {_entry(name, entry)} (its largest |g|): p = {_number(p)}, g = {_number(g)}")
    if momentum == 0:
        new = p - lr_t * g
        lines.append(f"p = p - lr_t * g = {_number(p)} - {_number(lr_t)} * {_number(g)} = {_number(new)}")
    else:
        v = slots_before.get("velocities", 0.0)
        velocity = momentum * v - lr_t * g
        lines.append(f"v = momentum * v - lr_t * g = {_number(momentum)} * {_number(v)} - {_number(lr_t)} * "
                     f"{_number(g)} = {_number(velocity)}   (the optimizer kept: "
                     f"{_number(slots_after.get('velocities', float('nan')))})")
        if optimizer.nesterov:
            new = p + momentum * velocity - lr_t * g
            lines.append(f"p = p + momentum * v - lr_t * g = {_number(p)} + {_number(momentum)} * {_number(velocity)} "
                         f"- {_number(lr_t)} * {_number(g)} = {_number(new)}")
        else:
            new = p + velocity
            lines.append(f"p = p + v = {_number(p)} + {_number(velocity)} = {_number(new)}")
    lines.append(f"the optimizer wrote {_number(actual)} (difference {abs(new - actual):.2g}: float32 rounding)")
    return lines


def _adam(optimizer: Any, step: StepRecord, name: str, entry: tuple[int, ...], p: float, g: float, actual: float,
          slots_before: dict[str, float], slots_after: dict[str, float]) -> list[str]:
    t = step.iterations + 1
    b1, b2, eps, lr = optimizer.beta_1, optimizer.beta_2, optimizer.epsilon, step.learning_rate
    lr_t = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    m0, v0 = slots_before.get("first_moments", 0.0), slots_before.get("second_moments", 0.0)
    m = b1 * m0 + (1 - b1) * g
    v = b2 * v0 + (1 - b2) * g * g
    new = p - lr_t * m / (math.sqrt(v) + eps)
    return [
        f"t = iterations + 1 = {t};  lr = {_number(lr)} (after Keras 2's decay, if any)",
        f"lr_t = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) = {_number(lr)} * sqrt(1 - {_number(b2)}**{t}) / "
        f"(1 - {_number(b1)}**{t}) = {_number(lr_t)}",
        f"entry {_entry(name, entry)} (its largest |g|): p = {_number(p)}, g = {_number(g)}",
        f"m = beta_1 * m + (1 - beta_1) * g = {_number(b1)} * {_number(m0)} + {_number(1 - b1)} * {_number(g)} = "
        f"{_number(m)}   (kept: {_number(slots_after.get('first_moments', float('nan')))})",
        f"v = beta_2 * v + (1 - beta_2) * g**2 = {_number(b2)} * {_number(v0)} + {_number(1 - b2)} * "
        f"{_number(g)}**2 = {_number(v)}   (kept: {_number(slots_after.get('second_moments', float('nan')))})",
        f"p = p - lr_t * m / (sqrt(v) + epsilon) = {_number(p)} - {_number(lr_t)} * {_number(m)} / "
        f"(sqrt({_number(v)}) + {_number(eps)}) = {_number(new)}",
        f"the optimizer wrote {_number(actual)} (difference {abs(new - actual):.2g}: float32 rounding)",
    ]


def _generic(optimizer: Any, step: StepRecord, name: str, entry: tuple[int, ...], p: float, g: float, actual: float,
             slots_before: dict[str, float], slots_after: dict[str, float]) -> list[str]:
    config = {key: value for key, value in optimizer.get_config().items()
              if isinstance(value, int | float | bool) and value is not None}
    lines = [f"t = iterations = {step.iterations}; lr after decay or schedule = {_number(step.learning_rate)}",
             "hyperparameters: " + ", ".join(f"{key} = {value}" for key, value in config.items()),
             f"entry {_entry(name, entry)} (its largest |g|): g = {_number(g)}"]
    for kind in slots_after:
        lines.append(f"{kind}: {_number(slots_before.get(kind, 0.0))} -> {_number(slots_after[kind])}")
    lines.append(f"p: {_number(p)} -> {_number(actual)}")
    return lines
