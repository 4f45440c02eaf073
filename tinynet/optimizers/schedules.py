"""Learning-rate schedules: ``lr(step)``, a function of the optimizer's step counter, given in place of a number.

``SGD(learning_rate=ExponentialDecay(0.1, decay_steps=1000, decay_rate=0.9))`` makes the optimizer evaluate the
schedule at ``step = optimizer.iterations`` (the number of updates already applied, 0 for the first batch) before
every update. The formulas are tf.keras's (``tf.keras.optimizers.schedules``, the same in Keras 3); tinynet
evaluates them in Python floats (float64), where TensorFlow uses float32, so values agree to float32 rounding.

Every schedule has ``get_config()`` / ``from_config()``; an optimizer saves its schedule as ``{"class_name",
"config"}`` in the model file and :func:`deserialize` rebuilds it, refusing any class that is not one of these.
A schedule is incompatible with Keras 2's ``decay`` argument (two decays of one rate): the optimizer refuses both.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["CosineDecay", "ExponentialDecay", "InverseTimeDecay", "LearningRateSchedule", "PiecewiseConstantDecay",
           "deserialize", "serialize"]


def _finite(owner: str, argument: str, value: Any, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) \
            or not math.isfinite(value):
        raise TypeError(f"{owner}: {argument} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{owner}: {argument} must be > 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{owner}: {argument} must be >= 0, got {value!r}")
    return float(value)


def _flag(owner: str, argument: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{owner}: {argument} must be True or False, got {value!r}")
    return bool(value)


def _name(owner: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{owner}: name must be a string or None, got {value!r}")
    return value


class LearningRateSchedule:
    """The base: ``schedule(step) -> learning rate`` for a step count ``step >= 0``; a subclass writes
    :meth:`__call__` and :meth:`get_config` (its constructor's arguments)."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement get_config")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearningRateSchedule:
        return cls(**config)

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


class _DecayBySteps(LearningRateSchedule):
    """The arguments ExponentialDecay and InverseTimeDecay share: a rate that decays by ``decay_rate`` over every
    ``decay_steps`` updates, continuously or (``staircase``) in whole steps."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False,
                 name: str | None = None) -> None:
        owner = type(self).__name__
        self.initial_learning_rate = _finite(owner, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _finite(owner, "decay_steps", decay_steps, positive=True)
        self.decay_rate = _finite(owner, "decay_rate", decay_rate)
        self.staircase = _flag(owner, "staircase", staircase)
        self.name = _name(owner, name)

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_DecayBySteps):
    r"""``lr(step) = initial_learning_rate * decay_rate ** (step / decay_steps)``.

    With ``staircase=True`` the exponent is ``floor(step / decay_steps)``: the rate drops by ``decay_rate`` every
    ``decay_steps`` updates instead of continuously. Why exponential: each ``decay_steps`` updates multiply the rate by
    the same factor, so the rate halves (for ``decay_rate=0.5``) as often late in training as early.
    """

    def __call__(self, step: int) -> float:
        exponent = step / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        return self.initial_learning_rate * self.decay_rate ** exponent


class InverseTimeDecay(_DecayBySteps):
    r"""``lr(step) = initial_learning_rate / (1 + decay_rate * step / decay_steps)`` (``floor(step / decay_steps)``
    with ``staircase=True``).

    Keras 2's ``decay`` argument is the special case ``decay_steps=1, decay_rate=decay``: ``lr / (1 + decay * t)``.
    """

    def __call__(self, step: int) -> float:
        fraction = step / self.decay_steps
        if self.staircase:
            fraction = math.floor(fraction)
        return self.initial_learning_rate / (1 + self.decay_rate * fraction)


class PiecewiseConstantDecay(LearningRateSchedule):
    r"""A constant rate between boundaries: ``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` once ``step > boundaries[-1]`` (tf.keras's
    convention: a boundary step still belongs to the interval it closes).

    ``boundaries`` are increasing step counts and ``values`` has one more entry than ``boundaries``.
    """

    def __init__(self, boundaries: list[int], values: list[float], name: str | None = None) -> None:
        owner = type(self).__name__
        if not isinstance(boundaries, list | tuple) or not isinstance(values, list | tuple):
            raise TypeError(f"{owner}: boundaries and values must be lists, got {type(boundaries).__name__} and "
                            f"{type(values).__name__}")
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"{owner}: values must have one more entry than boundaries, got {len(values)} values "
                             f"for {len(boundaries)} boundaries")
        self.boundaries = [_finite(owner, "boundaries", value) for value in boundaries]
        if any(later <= earlier for earlier, later in zip(self.boundaries, self.boundaries[1:], strict=False)):
            raise ValueError(f"{owner}: boundaries must increase, got {list(boundaries)!r}")
        self.values = [_finite(owner, "values", value) for value in values]
        self.name = _name(owner, name)

    def __call__(self, step: int) -> float:
        for boundary, value in zip(self.boundaries, self.values, strict=False):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self) -> dict[str, Any]:
        return {"boundaries": list(self.boundaries), "values": list(self.values), "name": self.name}


class CosineDecay(LearningRateSchedule):
    r"""Half a cosine from ``initial_learning_rate`` down to ``alpha * initial_learning_rate`` over ``decay_steps``
    (Loshchilov & Hutter's SGDR without restarts), then constant::

        s        = min(step, decay_steps)
        cosine   = 0.5 * (1 + cos(pi * s / decay_steps))          (1 at the start, 0 at decay_steps)
        lr(step) = initial_learning_rate * ((1 - alpha) * cosine + alpha)

    With ``warmup_target`` set (tf.keras 2.13 / Keras 3), the first ``warmup_steps`` updates rise linearly from
    ``initial_learning_rate`` to ``warmup_target``, ``lr = (warmup_target - initial) * step / warmup_steps +
    initial``, and the cosine then decays from ``warmup_target`` over the next ``decay_steps``.
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0, name: str | None = None,
                 warmup_target: float | None = None, warmup_steps: int = 0) -> None:
        owner = type(self).__name__
        self.initial_learning_rate = _finite(owner, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _finite(owner, "decay_steps", decay_steps, positive=True)
        self.alpha = _finite(owner, "alpha", alpha)
        self.name = _name(owner, name)
        self.warmup_target = None if warmup_target is None else _finite(owner, "warmup_target", warmup_target)
        self.warmup_steps = _finite(owner, "warmup_steps", warmup_steps)

    def _decay(self, step: float, decay_from: float) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * (step / self.decay_steps)))
        return decay_from * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step: int) -> float:
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        position = min(step, self.decay_steps + self.warmup_steps)
        if position < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return delta * (position / self.warmup_steps) + self.initial_learning_rate
        return self._decay(position - self.warmup_steps, self.warmup_target)

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


_BY_CLASS_NAME: dict[str, type[LearningRateSchedule]] = {
    cls.__name__: cls for cls in (ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay, CosineDecay)}


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}``: how an optimizer's config (and so the model file) holds it."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(document: Any) -> LearningRateSchedule:
    """The schedule a :func:`serialize` document describes. Only tinynet's schedules are rebuilt: a class name from
    a file must never pick an arbitrary class."""
    if not isinstance(document, dict) or set(document) != {"class_name", "config"} \
            or not isinstance(document["config"], dict):
        raise ValueError(f"learning-rate schedule: expected {{'class_name': ..., 'config': {{...}}}}, got {document!r}")
    schedule_class = _BY_CLASS_NAME.get(document["class_name"])
    if schedule_class is None:
        raise ValueError(f"unknown learning-rate schedule class {document['class_name']!r}; expected one of "
                         f"{', '.join(_BY_CLASS_NAME)}")
    return schedule_class.from_config(dict(document["config"]))
