"""Optimizers with Keras 2.2.4's names, arguments, defaults and exact update equations.

A base owns the step counter, decay or schedule, gradient clipping, slots and the update loop (:mod:`.base`); each
optimizer's equations live in a file of their own (:mod:`.sgd`, :mod:`.rmsprop`, :mod:`.adagrad`,
:mod:`.adadelta`, :mod:`.adam` (Adam and AdamW), :mod:`.adamax`, :mod:`.nadam`), each over a Numba kernel in
:mod:`tinynet.kernels`; learning-rate schedules are in :mod:`.schedules`.
"""

from __future__ import annotations

from collections.abc import Callable

from tinynet.optimizers import schedules
from tinynet.optimizers.adadelta import Adadelta
from tinynet.optimizers.adagrad import Adagrad
from tinynet.optimizers.adam import Adam, AdamW
from tinynet.optimizers.adamax import Adamax
from tinynet.optimizers.base import MAX_ITERATIONS, Optimizer, check_iterations
from tinynet.optimizers.nadam import Nadam
from tinynet.optimizers.rmsprop import RMSprop
from tinynet.optimizers.sgd import SGD
from tinynet.optimizers.slots import SlotName

__all__ = ["MAX_ITERATIONS", "SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "Nadam", "Optimizer",
           "RMSprop", "SlotName", "check_iterations", "get", "schedules"]

#: ``compile(optimizer='adam')``: every name builds the optimizer with Keras 2.2.4's defaults (Keras 3's for AdamW).
_BY_NAME: dict[str, Callable[[], Optimizer]] = {
    "sgd": SGD, "rmsprop": RMSprop, "adagrad": Adagrad, "adadelta": Adadelta, "adam": Adam, "adamw": AdamW,
    "adamax": Adamax, "nadam": Nadam,
}


def get(identifier: str | Optimizer) -> Optimizer:
    """An optimizer from its name (``'adam'``, case-insensitive, with Keras 2.2.4's defaults) or an instance."""
    if isinstance(identifier, str):
        if identifier.lower() in _BY_NAME:
            return _BY_NAME[identifier.lower()]()
        raise ValueError(f"optimizer: unknown optimizer {identifier!r}; expected one of {', '.join(_BY_NAME)}")
    if hasattr(identifier, "apply_gradients"):
        return identifier
    raise TypeError(f"optimizer: expected an optimizer name or instance, got {type(identifier).__name__}")
