"""Optimizers: a base that owns the step counter, decay, slots and the update loop (:mod:`.base`), and the
update equations of each optimizer in a file of its own (:mod:`.sgd`)."""

from __future__ import annotations

from tinynet.optimizers.base import MAX_ITERATIONS, Optimizer, check_iterations
from tinynet.optimizers.sgd import SGD
from tinynet.optimizers.slots import SlotName

__all__ = ["MAX_ITERATIONS", "SGD", "Optimizer", "SlotName", "check_iterations", "get"]

_BY_NAME: dict[str, type[Optimizer]] = {"sgd": SGD}


def get(identifier: str | Optimizer) -> Optimizer:
    """An optimizer from its name (``'sgd'``, with Keras's defaults) or an instance."""
    if isinstance(identifier, str):
        if identifier.lower() in _BY_NAME:
            return _BY_NAME[identifier.lower()]()
        raise ValueError(f"optimizer: unknown optimizer {identifier!r}; expected one of {', '.join(_BY_NAME)}")
    if hasattr(identifier, "apply_gradients"):
        return identifier
    raise TypeError(f"optimizer: expected an optimizer name or instance, got {type(identifier).__name__}")
