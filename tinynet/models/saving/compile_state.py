"""The compile settings in a model file: loss, metrics, and the optimizer with its config, ``iterations``,
per-parameter slots and scalar state; written from a model and rebuilt, checked against the rebuilt model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tinynet import losses, optimizers
from tinynet.models.saving.file_format import FormatError, stored_array


def _metric_names(model: Any) -> list[str]:
    # The metrics as compile was given them; a function is saved by name and found again in custom_objects.
    return [metric if isinstance(metric, str) else key
            for metric, (key, _) in zip(getattr(model, "_metric_requests", []), model._metrics, strict=True)]


def compile_document(model: Any, store) -> dict[str, Any] | None:
    if model.loss is None or model.optimizer is None:
        return None
    optimizer = model.optimizer
    if not hasattr(optimizer, "get_config"):
        raise TypeError(f"save_model: the optimizer {type(optimizer).__name__} has no get_config()")
    if hasattr(optimizer, "get_slots"):
        # This model's slots only: the optimizer may also train other models, whose layers can have the same names.
        named_slots = optimizer.get_slots(model.layers)
    else:  # an optimizer of the user's keeping {(layer name, parameter name): array} dicts it declares
        named_slots = {attribute: getattr(optimizer, attribute) for attribute in getattr(optimizer, "slot_names", ())
                       if _is_parameter_slot(getattr(optimizer, attribute, None))}
    slots = {attribute: [[layer_name, param_name, store(array)] for (layer_name, param_name), array in named.items()]
             for attribute, named in named_slots.items()}
    return {
        "loss": {"class_name": type(model.loss).__name__, "name": model.loss.name, "config": model.loss.get_config()},
        "metrics": _metric_names(model),
        "optimizer": {
            "class_name": type(optimizer).__name__,
            "config": optimizer.get_config(),
            "iterations": int(getattr(optimizer, "iterations", 0)),
            "slots": slots,
            "state": optimizer.get_state() if hasattr(optimizer, "get_state") else {},
        },
    }


def _is_parameter_slot(value: Any) -> bool:
    """A dict ``{(layer name, parameter name): array}``: SGD's velocities, or any optimizer's moments."""
    return isinstance(value, dict) and all(
        isinstance(key, tuple) and len(key) == 2 and all(isinstance(part, str) for part in key)
        and isinstance(array, np.ndarray)
        for key, array in value.items()
    )


def _lookup_class(class_name: Any, custom_objects: dict[str, Any], module: Any, kind: str) -> type:
    if not isinstance(class_name, str):
        raise FormatError(f"a {kind} class name must be a string, got {class_name!r}")
    if class_name in custom_objects:
        return custom_objects[class_name]
    found = getattr(module, class_name, None)
    # Only a class the module defines: it also imports names (Layer, Any, Iterable) that are no such class.
    if isinstance(found, type) and found.__module__.startswith(module.__name__):
        return found
    raise FormatError(f"unknown {kind} class {class_name!r}; pass it in custom_objects={{{class_name!r}: ...}}")


def rebuild_loss(loss_document: dict, custom_objects: dict[str, Any]) -> Any:
    class_name, config = loss_document["class_name"], loss_document.get("config") or {}
    if class_name in custom_objects:
        return custom_objects[class_name](**config)
    loss_class = getattr(losses, class_name, None)
    if loss_class is losses.Loss:  # abstract: as a loss it would fail on the first batch
        raise FormatError("the loss class 'Loss' is the abstract base class, not a loss")
    if isinstance(loss_class, type) and issubclass(loss_class, losses.Loss):
        return loss_class(**config)
    raise FormatError(f"unknown loss class {class_name!r} (loss {loss_document.get('name')!r}); pass it in "
                       f"custom_objects={{{class_name!r}: YourLoss}}")


def rebuild_optimizer(optimizer_document: dict, arrays: Mapping[str, np.ndarray], custom_objects: dict[str, Any],
                       model: Any):
    """The optimizer of the file, with its ``iterations`` and slots checked against the rebuilt ``model``.

    Slot names come from the file, so only those the optimizer class declares in ``slot_names`` are taken (a name
    such as ``apply_gradients`` must never reach ``setattr``), and each array must have exactly its parameter's
    shape and dtype: the update kernel indexes it by the parameter's positions.
    """
    class_name = optimizer_document["class_name"]
    optimizer_class = _lookup_class(class_name, custom_objects, optimizers, "optimizer")
    if not hasattr(optimizer_class, "apply_gradients"):  # another class the optimizers module happens to import
        raise FormatError(f"unknown optimizer class {class_name!r}; pass it in "
                           f"custom_objects={{{class_name!r}: YourOptimizer}}")
    config = optimizer_document["config"]
    if not isinstance(config, dict):
        raise FormatError(f"the optimizer's config must be a JSON object, got {config!r}")
    try:
        optimizer = optimizer_class.from_config(dict(config)) if hasattr(optimizer_class, "from_config") \
            else optimizer_class(**config)
    except (TypeError, ValueError) as error:
        raise FormatError(f"the optimizer {class_name} cannot be rebuilt from its config: {error}") from None
    iterations = optimizer_document["iterations"]
    if isinstance(iterations, bool) or not isinstance(iterations, int) \
            or not 0 <= iterations <= optimizers.MAX_ITERATIONS:
        raise FormatError(f"the optimizer field 'iterations' must be an int in [0, 2**63 - 1] (the number of "
                           f"updates applied), got {iterations!r}")
    optimizer.iterations = iterations
    # Files written before scalar state was recorded hold none (SGD keeps none).
    state = optimizer_document.get("state", {})
    if not isinstance(state, dict):
        raise FormatError(f"the optimizer field 'state' must be a JSON object, got {type(state).__name__}")
    if state or hasattr(optimizer, "set_state"):
        try:
            optimizer.set_state(dict(state))
        except (AttributeError, TypeError, ValueError) as error:
            raise FormatError(f"the optimizer {class_name} cannot take the state {state!r}: {error}") from None

    slots_document = optimizer_document["slots"]
    if not isinstance(slots_document, dict):
        raise FormatError(f"the optimizer field 'slots' must be a JSON object, got {type(slots_document).__name__}")
    known = tuple(getattr(optimizer_class, "slot_names", ()))
    parameters = {(layer.name, name): param for layer in model.layers for name, param in layer.params.items()}
    slots: dict[str, dict[tuple[str, str], np.ndarray]] = {}
    for attribute, entries in slots_document.items():
        if attribute not in known:
            raise FormatError(f"unknown optimizer slot {attribute!r}: {class_name} keeps "
                               f"{', '.join(map(repr, known)) or 'no slots'}")
        if not isinstance(entries, list):
            raise FormatError(f"optimizer slot {attribute!r} must be a list of [layer, parameter, array] entries")
        slot = slots[attribute] = {}
        for entry in entries:
            if not (isinstance(entry, list) and len(entry) == 3 and all(isinstance(part, str) for part in entry)):
                raise FormatError(f"optimizer slot {attribute!r}: entry {entry!r} is not [layer, parameter, array]")
            layer_name, param_name, key = entry
            what = f"optimizer slot {attribute} of {layer_name}.{param_name}"
            if (layer_name, param_name) in slot:
                raise FormatError(f"{what} appears twice")
            param = parameters.get((layer_name, param_name))
            if param is None:
                raise FormatError(f"{what} names no parameter of the model")
            value = stored_array(arrays, key, what)
            if value.shape != param.shape or value.dtype != param.dtype:
                raise FormatError(f"{what} has shape {value.shape} and dtype {value.dtype} in the file, the "
                                   f"parameter has shape {param.shape} and dtype {param.dtype}")
            slot[(layer_name, param_name)] = np.array(value, order="C")
    try:
        if hasattr(optimizer, "check_learning_rate"):
            optimizer.check_learning_rate(model.layers)
        if hasattr(optimizer, "set_slots"):
            optimizer.set_slots(model.layers, slots)
        else:
            for attribute, slot in slots.items():
                setattr(optimizer, attribute, slot)
    except (TypeError, ValueError) as error:
        raise FormatError(str(error)) from None
    return optimizer
