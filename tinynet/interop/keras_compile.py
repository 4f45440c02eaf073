"""Compile settings between Keras and tinynet: the loss, the metrics, the optimizer and the optimizer's state.

Keras 2 wrote ``training_config = {"optimizer_config": {"class_name", "config"}, "loss", "metrics", ...}``
(``keras/engine/saving.py`` at tag 2.2.4); Keras 3 writes ``compile_config = {"optimizer": {module, class_name,
config}, "loss", "metrics", ...}`` in a ``.keras`` file and keeps Keras 2's ``training_config`` shape in a legacy
``.h5``. tinynet's optimizers use Keras 2's arguments, so an optimizer translates by class name:

* Keras 2's ``lr`` is ``learning_rate``; Keras 2's time-based ``decay`` (``lr / (1 + decay * iterations)``) is
  Keras 3's ``InverseTimeDecay(lr, decay_steps=1, decay_rate=decay)`` schedule, the same number at every step.
* Keras 3's options for features tinynet lacks (``weight_decay``, ``clipnorm``, ``use_ema``, gradient
  accumulation, loss scaling) are accepted only when off; any other schedule is refused, naming it.

The state: Keras 3 keeps the optimizer's variables in order, ``iteration``, then ``learning_rate`` when the rate
is a number (not a schedule), then one slot per trainable weight (SGD: ``momentum``, created only when momentum is
non-zero); Keras 2.2.4's SGD keeps ``iterations`` then a moment for every weight (always). Both are tinynet's
``iterations`` and SGD's ``velocities`` (same equation: ``v = momentum * v - lr * g``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinynet import losses, optimizers
from tinynet.interop.errors import KerasFormatError
from tinynet.interop.keras_layers import _check_builtin, _typed

_OPTIMIZER_OFF = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
                  "use_ema": False, "ema_overwrite_frequency": None, "loss_scale_factor": None,
                  "gradient_accumulation_steps": None}
_OPTIMIZER_IGNORED = ("name", "ema_momentum", "is_legacy_optimizer", "jit_compile")
_LOSS_IGNORED = ("name", "dtype")


# --------------------------------------------------------------------------------------------- Keras -> tinynet
def loss_from_keras(value: Any) -> losses.Loss:
    """A tinynet loss from Keras's ``loss``: a name (both versions) or Keras 3's serialized loss object."""
    if isinstance(value, str):
        try:
            return losses.get(value)
        except ValueError as error:
            raise KerasFormatError(f"loss: {error}") from None
    value = _typed(value, dict, "the loss")
    _check_builtin(value, "the loss")
    class_name = value.get("class_name")
    loss_class = getattr(losses, class_name, None) if isinstance(class_name, str) else None
    if not (isinstance(loss_class, type) and issubclass(loss_class, losses.Loss)) or loss_class is losses.Loss:
        raise KerasFormatError(f"the loss {class_name!r:.80} is not one tinynet has")
    config = dict(_typed(value.get("config") or {}, dict, "the loss config"))
    for key in _LOSS_IGNORED:
        config.pop(key, None)
    if config.pop("reduction", "sum_over_batch_size") not in ("sum_over_batch_size", "auto"):
        raise KerasFormatError("the loss's reduction is not supported (tinynet averages over the batch)")
    if config.pop("axis", -1) != -1:
        raise KerasFormatError("the loss's axis is not supported (tinynet reduces over the last axis)")
    try:
        return loss_class(**config)
    except (TypeError, ValueError) as error:
        raise KerasFormatError(f"the loss {class_name} cannot take its config: {error}") from None


def metrics_from_keras(value: Any) -> list[str]:
    """Metric names (``'accuracy'``, ``'mae'``...); Keras 3's serialized metric objects are refused."""
    if value is None:
        return []
    if isinstance(value, dict) or not isinstance(value, list):
        raise KerasFormatError(f"metrics {value!r:.80}: only a list of metric names is supported (one output)")
    for metric in value:
        if not isinstance(metric, str):
            raise KerasFormatError(f"metric {metric!r:.80} is not a metric name tinynet knows")
    return list(value)


def optimizer_from_keras(class_name: Any, config: Any) -> Any:
    """A tinynet optimizer of the same class from Keras 2's or Keras 3's optimizer config."""
    optimizer_class = getattr(optimizers, class_name, None) if isinstance(class_name, str) else None
    if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, optimizers.Optimizer)):
        raise KerasFormatError(f"the optimizer {class_name!r:.80} is not one tinynet has")
    config = dict(_typed(config, dict, "the optimizer config"))
    for key in _OPTIMIZER_IGNORED:
        config.pop(key, None)
    for key, off in _OPTIMIZER_OFF.items():
        if key in config and config.pop(key) != off:
            raise KerasFormatError(f"the optimizer option {key} is not supported by tinynet (only {key}={off!r})")
    if "lr" in config:  # Keras 2.2
        config["learning_rate"] = config.pop("lr")
    rate = config.get("learning_rate")
    if isinstance(rate, dict):
        config["learning_rate"], config["decay"] = _inverse_time_decay(rate)
    try:
        return optimizer_class.from_config(config)
    except (TypeError, ValueError) as error:
        raise KerasFormatError(f"the optimizer {class_name} cannot take its config: {error}") from None


def _inverse_time_decay(schedule: dict[str, Any]) -> tuple[float, float]:
    _check_builtin(schedule, "the learning-rate schedule")
    config = _typed(schedule.get("config"), dict, "the learning-rate schedule's config")
    if schedule.get("class_name") != "InverseTimeDecay" or config.get("decay_steps") != 1 or config.get("staircase"):
        raise KerasFormatError(f"the learning-rate schedule {schedule.get('class_name')!r:.80} is not supported; "
                               "tinynet has Keras 2's decay, InverseTimeDecay(lr, decay_steps=1, decay_rate=decay)")
    return config.get("initial_learning_rate"), config.get("decay_rate")


def iterations_from_array(value: np.ndarray) -> int:
    """``iteration`` as Keras stores it (an int64 scalar; Keras 2 may hold it as a float)."""
    number = float(value) if value.size == 1 else math.nan
    if not (math.isfinite(number) and number == int(number) and 0 <= number <= optimizers.MAX_ITERATIONS):
        raise KerasFormatError(f"the optimizer's iterations {value!r:.80} is not a count of updates")
    return int(number)


def restore_optimizer_state(model: Any, values: list[np.ndarray]) -> None:
    """Set ``iterations`` and SGD's velocities from Keras's optimizer variables (see the module docstring).

    ``values`` are the arrays in the file's order, shapes already known; every check passes before anything is
    set. State of another optimizer is ignored beyond ``iterations`` (tinynet's slots are its own).
    """
    if not values:
        return
    optimizer = model.optimizer
    iterations = iterations_from_array(values[0])
    rest = [value for value in values[1:] if value.shape != ()]  # Keras 3's learning_rate variable
    trainable = [(layer, name, param) for layer in model.layers if layer.trainable
                 for name, param in layer.params.items()]
    velocities = {}
    if isinstance(optimizer, optimizers.SGD) and rest:
        if len(rest) != len(trainable):
            raise KerasFormatError(f"the optimizer state holds {len(rest)} slots, the model has {len(trainable)} "
                                   "trainable weights")
        for (layer, name, param), value in zip(trainable, rest, strict=True):
            if value.shape != param.shape:
                raise KerasFormatError(f"the optimizer slot of {layer.name}.{name} has shape {value.shape}, the "
                                       f"weight {param.shape}")
            if not np.isfinite(value).all():
                raise KerasFormatError(f"the optimizer slot of {layer.name}.{name} holds non-finite values")
            velocities[(layer.name, name)] = value.astype(param.dtype)
    optimizer.iterations = iterations
    if velocities and optimizer.momentum != 0:  # with momentum 0, Keras 2's moments are zeros nobody reads
        optimizer.set_slots(model.layers, {"velocities": velocities})


# --------------------------------------------------------------------------------------------- tinynet -> Keras
def keras_optimizer(optimizer: Any) -> dict[str, Any]:
    """Keras 3's serialized optimizer: tinynet's config, ``decay`` as an ``InverseTimeDecay`` schedule."""
    config = dict(optimizer.get_config())
    config.pop("lr", None)
    decay = config.pop("decay", 0.0)
    rate: Any = float(config["learning_rate"])
    if decay:
        rate = {"module": "keras.optimizers.schedules", "class_name": "InverseTimeDecay", "registered_name": None,
                "config": {"initial_learning_rate": rate, "decay_steps": 1, "decay_rate": float(decay),
                           "staircase": False, "name": "InverseTimeDecay"}}
    config["learning_rate"] = rate
    class_name = type(optimizer).__name__
    config = {"name": class_name.lower(), **config, **_OPTIMIZER_OFF, "ema_momentum": 0.99}
    return {"module": "keras.optimizers", "class_name": class_name, "config": config, "registered_name": None}


def keras_compile_config(model: Any) -> dict[str, Any] | None:
    """Keras 3's ``compile_config`` of a compiled tinynet model (None when it was never compiled)."""
    if model.loss is None or model.optimizer is None:
        return None
    metrics = []
    for metric in getattr(model, "_metric_requests", []):
        if not isinstance(metric, str):
            raise TypeError(f"{model.name}: the metric {metric!r} is a function, which a Keras file cannot hold; "
                            "compile with metric names, or save in tinynet's own format")
        metrics.append(metric)
    loss = model.loss
    loss_config = loss.get_config()
    defaults = type(loss)().get_config()
    keras_loss: Any = loss.name if loss_config == defaults else {
        "module": "keras.losses", "class_name": type(loss).__name__, "registered_name": None,
        "config": {"name": loss.name, "reduction": "sum_over_batch_size", **loss_config}}
    return {"optimizer": keras_optimizer(model.optimizer), "loss": keras_loss, "loss_weights": None,
            "metrics": metrics or None, "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1,
            "jit_compile": False}


def keras_optimizer_variables(model: Any) -> list[tuple[str, np.ndarray]]:
    """The optimizer's variables in Keras 3's order, named as Keras 3 names them in a legacy ``.h5``."""
    optimizer = model.optimizer
    prefix = type(optimizer).__name__.lower()
    variables = [(f"{prefix}/iteration", np.array(optimizer.iterations, dtype=np.int64))]
    if not optimizer.get_config().get("decay"):
        variables.append((f"{prefix}/learning_rate", np.array(optimizer.learning_rate, dtype=np.float32)))
    if isinstance(optimizer, optimizers.SGD) and optimizer.momentum != 0:
        held = optimizer.get_slots(model.layers).get("velocities", {})
        for layer in model.layers:
            if not layer.trainable:
                continue
            for name, param in layer.params.items():
                value = held.get((layer.name, name), np.zeros_like(param))
                variables.append((f"{prefix}/{model.name}_{layer.name}_{name}_momentum", value))
    return variables
