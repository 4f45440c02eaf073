"""Optimizer slots (velocities, moments, accumulators): one array per parameter array, tied to that very array."""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np

#: ``(layer name, parameter name)``: how a slot is named in a model file and in messages.
SlotName = tuple[str, str]


class ParameterSlots:
    """One kind of slot (``'velocities'``, ``'m'``, ...): an array per parameter array, found by identity.

    Slots are found by the parameter's identity, never by its name: two models whose layers share names (after
    ``clear_session()``) can share one optimizer, and each parameter still gets its own slot, created at zero on its
    first update, as Keras 2 creates optimizer weights per variable. A weak reference to the parameter tells a live
    entry from one whose parameter was freed and whose ``id`` came back for another array; the slot goes away with
    its parameter. The name recorded with each slot serves messages and saving only.
    """

    def __init__(self, owner: str, kind: str) -> None:
        self.owner = owner
        self.kind = kind
        self._entries: dict[int, tuple[weakref.ref, np.ndarray, SlotName]] = {}

    def _forget(self, key: int) -> Callable[[weakref.ref], None]:
        entries = self._entries  # not self: the callback must not keep the optimizer alive

        def forget(reference: weakref.ref) -> None:
            entry = entries.get(key)
            if entry is not None and entry[0] is reference:
                del entries[key]

        return forget

    def get(self, param: np.ndarray) -> np.ndarray | None:
        entry = self._entries.get(id(param))
        if entry is None or entry[0]() is not param:
            return None
        return entry[1]

    def get_or_create(self, param: np.ndarray, name: SlotName) -> np.ndarray:
        """The parameter's slot, checked to still match its shape and dtype; a new zero slot on first use."""
        value = self.get(param)
        if value is None:
            return self.set(param, np.zeros_like(param, order="C"), name)
        if value.shape != param.shape or value.dtype != param.dtype:
            # Only an in-place change of the parameter array (param.shape = ...) gets here; the kernel must never
            # see the mismatch.
            raise ValueError(f"{self.owner}: the {self.kind} slot of {name[0]}.{name[1]} has shape {value.shape} "
                             f"and dtype {value.dtype}, the parameter now has {param.shape} and {param.dtype}")
        return value

    def set(self, param: np.ndarray, value: np.ndarray, name: SlotName) -> np.ndarray:
        key = id(param)
        self._entries[key] = (weakref.ref(param, self._forget(key)), value, name)
        return value

    def by_name(self) -> dict[SlotName, np.ndarray]:
        named: dict[SlotName, np.ndarray] = {}
        for reference, value, name in list(self._entries.values()):
            if reference() is None:
                continue
            if name in named:
                raise ValueError(f"{self.owner}: {self.kind} slots of several parameters are named "
                                 f"{name[0]}.{name[1]} (one optimizer trains models whose layers share names); "
                                 "ask for one model's with optimizer.get_slots(model.layers)")
            named[name] = value
        return named
