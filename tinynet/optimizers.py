"""SGD with Keras 2's exact equations: momentum, Nesterov momentum and time-based learning-rate decay."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from tinynet import parallel
from tinynet.kernels.sgd import sgd_update
from tinynet.layers.base import Layer

# The update is cut into this many independent parts, one per core of the 2-core machines tinynet is tuned on.
_UPDATE_LANES = 2

# Keras keeps ``iterations`` in an int64 variable; a count beyond it cannot come from training.
MAX_ITERATIONS = 2**63 - 1

#: ``(layer name, parameter name)``: how a slot is named in a model file and in ``velocities``.
SlotName = tuple[str, str]


def _check_real(argument: str, value: Any, upper: float | None = None) -> float:
    """A hyperparameter as a float: a finite real number, ``>= 0`` and, when ``upper`` is given, ``<= upper``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) \
            or not np.isfinite(value):
        raise TypeError(f"SGD: {argument} must be a finite number, got {value!r}")
    if upper is not None and not 0 <= value <= upper:
        raise ValueError(f"SGD: {argument} must be in [0, {upper:g}], got {value!r}")
    if value < 0:
        raise ValueError(f"SGD: {argument} must be >= 0, got {value!r}")
    return float(value)


def check_iterations(value: Any) -> int:
    """``iterations`` as an int in ``[0, MAX_ITERATIONS]``; a negative count would make ``1 + decay * t`` zero or
    negative (a division by zero, or a negative learning rate that trains backwards)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"SGD: iterations must be an int (the number of updates applied), got {value!r}")
    if not 0 <= value <= MAX_ITERATIONS:
        raise ValueError(f"SGD: iterations must be in [0, 2**63 - 1], got {value!r}")
    return int(value)


class _ParameterSlots:
    """One optimizer array per parameter array (SGD's velocities), tied to that very array.

    Slots are found by the parameter's identity, never by its name: two models whose layers share names (after
    ``clear_session()``) can share one optimizer, and each parameter still gets its own slot, created at zero on its
    first update, as Keras 2 creates optimizer weights per variable. A weak reference to the parameter tells a live
    entry from one whose parameter was freed and whose ``id`` came back for another array; the slot goes away with
    its parameter. The name recorded with each slot serves messages and :attr:`SGD.velocities` only.
    """

    def __init__(self, kind: str) -> None:
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
            raise ValueError(f"SGD: the {self.kind} of {name[0]}.{name[1]} has shape {value.shape} and dtype "
                             f"{value.dtype}, the parameter now has {param.shape} and {param.dtype}")
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
                raise ValueError(f"SGD: {self.kind} of several parameters are named {name[0]}.{name[1]} (one "
                                 "optimizer trains models whose layers share names); ask for one model's with "
                                 "optimizer.get_slots(model.layers)")
            named[name] = value
        return named


class SGD:
    r"""Stochastic gradient descent exactly as Keras 2.2/2.3 writes it.

    With ``t = iterations``, the number of updates already applied (0 for the first batch; it lives on the
    optimizer, never resets between epochs and ignores ``initial_epoch``), for every parameter ``p`` with gradient
    ``g`` and velocity ``v`` (zero at the start)::

        lr_t = lr / (1 + decay * t)                       (time-based decay; lr_t = lr when decay = 0)
        v    = momentum * v - lr_t * g
        p    = p + v                                      (classical momentum)
        p    = p + momentum * v - lr_t * g                (nesterov=True: look ahead along the new velocity)

    With ``momentum = 0`` both reduce to ``p = p - lr_t * g``. Keras's Nesterov form is the "Sutskever" rewrite
    that needs no gradient at the look-ahead point: it applies the momentum step twice, once through ``v`` and
    once explicitly.

    Why a step *against* ``g`` lowers the loss: to first order ``L(p - lr g) = L(p) - lr ||g||^2``, which is
    smaller for a small enough ``lr``. Momentum keeps a decaying sum of past steps, ``v_t = -sum_s momentum^(t-s)
    lr_s g_s``, so directions that agree from step to step speed up and those that flip sign cancel out; a
    ``momentum`` above 1 would make that sum grow without bound, hence ``0 <= momentum <= 1`` (as Keras 3 demands).

    Shapes and state: each velocity has its parameter's shape and dtype, created at zero on the parameter's first
    update (and only when ``momentum > 0``); with ``iterations`` that is all the optimizer keeps. Velocities belong
    to the parameter arrays themselves, not to their names, so one optimizer may serve several models, even models
    whose layers have the same names. It reads ``layer.grads`` and changes ``layer.params`` in place, and nothing
    else. :meth:`get_slots` and :meth:`set_slots` name the velocities by layer and parameter for saving.

    ``lr=`` is accepted as Keras 2.2 named it; ``optimizer.lr`` and ``optimizer.learning_rate`` are the base rate.
    A learning rate too large for a parameter's float type (``1e39`` is infinite in float32) is refused at
    ``compile`` (or at the first update of a model built later) rather than left to turn every weight infinite.
    """

    #: The per-parameter slots this optimizer keeps: the only slot names a model file may give it.
    slot_names = ("velocities",)

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.0,
        decay: float = 0.0,
        nesterov: bool = False,
        lr: float | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(f"SGD: unexpected keyword argument(s) {', '.join(sorted(kwargs))}")
        self.learning_rate = learning_rate if lr is None else lr
        self.momentum = momentum
        self.decay = decay
        self.nesterov = bool(nesterov)
        self.iterations = 0
        self._velocities = _ParameterSlots("velocity")

    # Every setter checks, so ``optimizer.lr = -1`` or ``optimizer.iterations = -1000`` between two fits is refused
    # as SGD(...) would refuse it.
    @property
    def learning_rate(self) -> float:
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._learning_rate = _check_real("learning_rate", value)

    @property
    def lr(self) -> float:
        return self.learning_rate

    @lr.setter
    def lr(self, value: float) -> None:
        self.learning_rate = value

    @property
    def momentum(self) -> float:
        return self._momentum

    @momentum.setter
    def momentum(self, value: float) -> None:
        self._momentum = _check_real("momentum", value, upper=1)

    @property
    def decay(self) -> float:
        return self._decay

    @decay.setter
    def decay(self, value: float) -> None:
        self._decay = _check_real("decay", value)

    @property
    def iterations(self) -> int:
        return self._iterations

    @iterations.setter
    def iterations(self, value: int) -> None:
        self._iterations = check_iterations(value)

    def current_learning_rate(self) -> float:
        """``lr_t`` for the next update."""
        if self.decay > 0:
            return self.learning_rate / (1.0 + self.decay * self.iterations)
        return self.learning_rate

    def check_learning_rate(self, layers: Iterable[Layer]) -> None:
        """Raise ``ValueError`` if the learning rate is infinite in the float type of a parameter of ``layers``.

        The update computes ``lr_t * g`` in the parameter's dtype; ``1e39`` becomes ``inf`` in float32, and every
        weight with a non-zero gradient would become infinite at the first step.
        """
        learning_rate = self.current_learning_rate()
        for layer in layers:
            for name, param in layer.params.items():
                self._check_learning_rate_fits(learning_rate, param.dtype, layer.name, name)

    def _check_learning_rate_fits(self, learning_rate: float, dtype: np.dtype, layer_name: str, name: str) -> None:
        # Compared as Python floats: comparing with a float32 scalar would cast the rate to float32 first.
        if dtype.kind == "f" and learning_rate > float(np.finfo(dtype).max):
            raise ValueError(f"SGD: learning_rate {learning_rate!r} is infinite in {dtype} (largest "
                             f"{float(np.finfo(dtype).max):.6g}), the float type of parameter {layer_name}.{name}")

    def apply_gradients(self, layers: Iterable[Layer]) -> bool:
        """One update of every trainable parameter from the ``grads`` the last backward pass left.

        Every shape, dtype and layout the kernel relies on is checked first, and nothing changes unless all of
        them are right. Returns True when every updated value is finite (checked in the update's own pass; the
        model uses it to stop on an update that overflowed).
        """
        lr_t = self.current_learning_rate()
        updates = []
        checked_dtypes: set[np.dtype] = set()
        for layer in layers:
            if not layer.trainable:
                continue
            for name, param in layer.params.items():
                grad = layer.grads.get(name)
                if grad is None or grad.shape != param.shape:
                    shape = None if grad is None else grad.shape
                    raise ValueError(f"SGD: gradient {layer.name}.{name} has shape {shape}, "
                                     f"parameter has {param.shape}")
                if not (param.flags.c_contiguous and param.flags.writeable):
                    raise ValueError(f"SGD: parameter {layer.name}.{name} must be a writeable C-contiguous array "
                                     "(it is updated in place, through flat views)")
                if param.dtype not in checked_dtypes:
                    self._check_learning_rate_fits(lr_t, param.dtype, layer.name, name)
                    checked_dtypes.add(param.dtype)
                velocity = None
                if self.momentum != 0:
                    velocity = self._velocities.get_or_create(param, (layer.name, name))
                updates.append((param, velocity, np.ascontiguousarray(grad, dtype=param.dtype)))
        # One fused pass per parameter, in the parameter's dtype (tinynet.kernels.sgd). Every element's update is
        # independent, so each array is cut in halves and tinynet's threads take one half of every array each.
        lanes: list[list[tuple[np.ndarray, np.ndarray | None, np.ndarray]]] = [[] for _ in range(_UPDATE_LANES)]
        for param, velocity, grad in updates:
            for lane, (start, end) in enumerate(parallel.split_range(param.size, _UPDATE_LANES)):
                lanes[lane].append((param.reshape(-1)[start:end], grad.reshape(-1)[start:end],
                                    None if velocity is None else velocity.reshape(-1)[start:end]))
        non_finite = [0] * _UPDATE_LANES

        def run(slot: int, first: int, stop: int) -> None:
            for lane in range(first, stop):
                for param, grad, velocity in lanes[lane]:
                    non_finite[lane] += sgd_update(param, velocity, grad, lr_t, self.momentum, self.nesterov)

        parallel.parallel_ranges(_UPDATE_LANES, run)
        # A worker thread keeps its last task, this closure, until it is handed the next one; drop the views it
        # holds, so that the parameters of a model no longer used can be freed (and their velocities with them).
        lanes.clear()
        all_finite = not any(non_finite)
        self.iterations += 1
        return all_finite

    # ----------------------------------------------------------------------------------------- slots by name
    @property
    def velocities(self) -> dict[SlotName, np.ndarray]:
        """The live velocities by ``(layer name, parameter name)`` (read-only view; see :meth:`get_slots`)."""
        return self._velocities.by_name()

    def get_slots(self, layers: Iterable[Layer]) -> dict[str, dict[SlotName, np.ndarray]]:
        """``{'velocities': {(layer name, parameter name): velocity}}`` for the parameters of ``layers`` that have
        one: exactly one model's state, even when the optimizer also trains others."""
        velocities = {}
        for layer in layers:
            for name, param in layer.params.items():
                velocity = self._velocities.get(param)
                if velocity is not None:
                    velocities[(layer.name, name)] = velocity
        return {"velocities": velocities}

    def set_slots(self, layers: Iterable[Layer], slots: dict[str, dict[SlotName, np.ndarray]]) -> None:
        """Give the parameters of ``layers`` the named slots (copies), e.g. those of a model file.

        Raises ``ValueError`` naming the slot if a name is unknown, names no parameter of ``layers``, or its array
        has another shape or dtype than the parameter. Everything is checked before anything is set.
        """
        by_name = {(layer.name, name): param for layer in layers for name, param in layer.params.items()}
        pending = []
        for kind, named in slots.items():
            if kind not in self.slot_names:
                raise ValueError(f"SGD: unknown slot {kind!r}; SGD keeps {', '.join(self.slot_names)}")
            for slot_name, value in named.items():
                label = ".".join(slot_name) if isinstance(slot_name, tuple) else repr(slot_name)
                param = by_name.get(slot_name)
                if param is None:
                    raise ValueError(f"SGD: {kind} {label} names no parameter of the model (its parameters: "
                                     f"{', '.join('.'.join(key) for key in by_name) or 'none'})")
                if not isinstance(value, np.ndarray) or value.shape != param.shape or value.dtype != param.dtype:
                    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", type(value).__name__)
                    raise ValueError(f"SGD: {kind} {label} has shape {shape} and dtype {dtype}, its parameter "
                                     f"has shape {param.shape} and dtype {param.dtype}")
                pending.append((param, np.array(value, order="C"), slot_name))
        for param, value, slot_name in pending:
            self._velocities.set(param, value, slot_name)

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "momentum": self.momentum, "decay": self.decay,
                "nesterov": self.nesterov}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SGD:
        return cls(**config)


_BY_NAME = {"sgd": SGD}


def get(identifier: str | SGD) -> SGD:
    """An optimizer from its name (``'sgd'``, with Keras's defaults) or an instance."""
    if isinstance(identifier, str):
        if identifier.lower() in _BY_NAME:
            return _BY_NAME[identifier.lower()]()
        raise ValueError(f"optimizer: unknown optimizer {identifier!r}; expected one of {', '.join(_BY_NAME)}")
    if hasattr(identifier, "apply_gradients"):
        return identifier
    raise TypeError(f"optimizer: expected an optimizer name or instance, got {type(identifier).__name__}")
