"""The optimizer base: what every optimizer shares, so that a subclass is its update equations and little else.

The base owns
  * the step counter ``iterations`` (Keras's name: updates applied so far, never reset between epochs),
  * the learning rate and Keras 2's time-based decay ``lr_t = lr / (1 + decay * iterations)``, or a schedule
    (:mod:`tinynet.optimizers.schedules`) evaluated at ``iterations`` in place of the number,
  * gradient clipping with Keras 2.2.4's ``clipnorm`` (by the global norm of all gradients) and ``clipvalue``,
  * the slots (velocities, moments, ...), one array per parameter, keyed by the parameter array itself so that a
    slot can never be applied to another parameter (:mod:`tinynet.optimizers.slots`), saved and restored by name,
  * the checks that make the update kernels safe (every shape, dtype and layout they index by is checked first),
  * the update loop: every parameter cut into one contiguous slice per engine thread.

A subclass names its slots in ``slot_names``, says which it needs (:meth:`Optimizer.slots_in_use`) and writes
:meth:`Optimizer.update_step` for one flat slice of one parameter. Scalars that depend on the step only (Adam's bias
corrections) are computed once per update in :meth:`Optimizer.prepare_step`; scalar state beyond the slots (Nadam's
``m_schedule``) is saved through :meth:`Optimizer.get_state` / :meth:`Optimizer.set_state`.
Every update tinynet has is element-wise, so cutting the arrays into slices changes no bit: a run gives the same
weights with any thread count.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from tinynet.engine import threads
from tinynet.layers.base import Layer
from tinynet.optimizers import schedules
from tinynet.optimizers.slots import ParameterSlots, SlotName

# Keras keeps ``iterations`` in an int64 variable; a count beyond it cannot come from training.
MAX_ITERATIONS = 2**63 - 1


def check_real(owner: str, argument: str, value: Any, upper: float | None = None) -> float:
    """A hyperparameter as a float: a finite real number, ``>= 0`` and, when ``upper`` is given, ``<= upper``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) \
            or not np.isfinite(value):
        raise TypeError(f"{owner}: {argument} must be a finite number, got {value!r}")
    if upper is not None and not 0 <= value <= upper:
        raise ValueError(f"{owner}: {argument} must be in [0, {upper:g}], got {value!r}")
    if value < 0:
        raise ValueError(f"{owner}: {argument} must be >= 0, got {value!r}")
    return float(value)


def check_rate(owner: str, argument: str, value: Any) -> float:
    """A decay rate such as ``rho`` or ``beta_1``: a real number in ``[0, 1)`` (at 1 the running average never
    moves, and Adam's bias correction ``1 - beta ** t`` would divide by zero)."""
    value = check_real(owner, argument, value, upper=1)
    if value == 1:
        raise ValueError(f"{owner}: {argument} must be in [0, 1), got {value!r}")
    return value


def check_epsilon(owner: str, value: Any) -> float:
    """Keras 2's ``epsilon=None`` means ``K.epsilon()``, 1e-7."""
    return 1e-7 if value is None else check_real(owner, "epsilon", value)


def check_iterations(value: Any, owner: str = "optimizer") -> int:
    """``iterations`` as an int in ``[0, MAX_ITERATIONS]``; a negative count would make ``1 + decay * t`` zero or
    negative (a division by zero, or a negative learning rate that trains backwards)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{owner}: iterations must be an int (the number of updates applied), got {value!r}")
    if not 0 <= value <= MAX_ITERATIONS:
        raise ValueError(f"{owner}: iterations must be in [0, 2**63 - 1], got {value!r}")
    return int(value)


# One parameter's part of an update: the parameter, its gradient (in the parameter's dtype) and its slots in use.
_Update = tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]


class Optimizer:
    """The base of tinynet's optimizers (see the module docstring for what it owns).

    Subclasses set ``slot_names``, call ``super().__init__(learning_rate, decay, lr)`` and implement
    :meth:`update_step`; they may override :meth:`slots_in_use` and extend :meth:`get_config`.
    """

    #: The per-parameter slots this optimizer keeps: the only slot names a model file may give it.
    slot_names: tuple[str, ...] = ()

    def __init__(self, learning_rate: float | schedules.LearningRateSchedule, decay: float = 0.0,
                 lr: float | schedules.LearningRateSchedule | None = None, clipnorm: float | None = None,
                 clipvalue: float | None = None) -> None:
        self._decay = 0.0  # set first: the learning-rate setter compares a schedule with it
        self.learning_rate = learning_rate if lr is None else lr
        self.decay = decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.iterations = 0
        self._slots = {kind: ParameterSlots(type(self).__name__, kind) for kind in self.slot_names}

    #: False for an optimizer without Keras 2's ``decay`` argument (Nadam): ``decay`` then stays 0.
    has_decay = True

    _learning_rate: float | schedules.LearningRateSchedule  # set through the learning_rate property's checks

    # Every setter checks, so ``optimizer.lr = -1`` or ``optimizer.iterations = -1000`` between two fits is refused
    # as the constructor would refuse it.
    @property
    def learning_rate(self) -> float | schedules.LearningRateSchedule:
        """The base rate (a number), or the schedule that gives the rate of each step."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float | schedules.LearningRateSchedule) -> None:
        if isinstance(value, schedules.LearningRateSchedule):
            if self._decay:
                raise ValueError(f"{type(self).__name__}: a learning-rate schedule and decay={self._decay!r} "
                                 "cannot be combined (both decay the rate); set decay=0 or fold it into the schedule")
            self._learning_rate = value
        else:
            self._learning_rate = check_real(type(self).__name__, "learning_rate", value)

    @property
    def lr(self) -> float | schedules.LearningRateSchedule:
        """Keras 2.2's name for :attr:`learning_rate`."""
        return self.learning_rate

    @lr.setter
    def lr(self, value: float | schedules.LearningRateSchedule) -> None:
        self.learning_rate = value

    @property
    def decay(self) -> float:
        return self._decay

    @decay.setter
    def decay(self, value: float) -> None:
        owner = type(self).__name__
        value = check_real(owner, "decay", value)
        if value and not self.has_decay:
            raise ValueError(f"{owner}: has no decay argument in Keras 2.2.4 (got decay={value!r}); give a "
                             "learning-rate schedule instead")
        if value and isinstance(self._learning_rate, schedules.LearningRateSchedule):
            raise ValueError(f"{owner}: decay={value!r} cannot be combined with the learning-rate schedule "
                             f"{self._learning_rate!r} (both decay the rate)")
        self._decay = value

    @property
    def clipnorm(self) -> float | None:
        """Scale all gradients together by ``clipnorm / norm`` when their global norm is ``>= clipnorm``."""
        return self._clipnorm

    @clipnorm.setter
    def clipnorm(self, value: float | None) -> None:
        self._clipnorm = None if value is None else check_real(type(self).__name__, "clipnorm", value)

    @property
    def clipvalue(self) -> float | None:
        """Clip every gradient element to ``[-clipvalue, clipvalue]``."""
        return self._clipvalue

    @clipvalue.setter
    def clipvalue(self, value: float | None) -> None:
        self._clipvalue = None if value is None else check_real(type(self).__name__, "clipvalue", value)

    @property
    def iterations(self) -> int:
        return self._iterations

    @iterations.setter
    def iterations(self, value: int) -> None:
        self._iterations = check_iterations(value, type(self).__name__)

    def current_learning_rate(self) -> float:
        """``lr_t`` for the next update: the schedule at ``iterations``, or Keras 2's time-based decay."""
        learning_rate = self._learning_rate
        if isinstance(learning_rate, schedules.LearningRateSchedule):
            return check_real(type(self).__name__, f"the learning rate {learning_rate!r} gives at step "
                              f"{self.iterations}, which", learning_rate(self.iterations))
        if self.decay > 0:
            return learning_rate / (1.0 + self.decay * self.iterations)
        return learning_rate

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
            raise ValueError(f"{type(self).__name__}: learning_rate {learning_rate!r} is infinite in {dtype} "
                             f"(largest {float(np.finfo(dtype).max):.6g}), the float type of parameter "
                             f"{layer_name}.{name}")

    # ------------------------------------------------------------------------------------- the subclass's part
    def slots_in_use(self) -> tuple[str, ...]:
        """The slot kinds this update reads and writes, in the order :meth:`update_step` receives them (all of
        ``slot_names`` by default; SGD without momentum needs none)."""
        return self.slot_names

    def prepare_step(self, learning_rate: float) -> None:
        """Compute, once per update and before any slice is updated, the scalars :meth:`update_step` needs that
        depend on the step only (``iterations`` is still the count before this update). Nothing by default."""

    def finish_step(self) -> None:
        """Commit scalar state after every slice was updated (Nadam's ``m_schedule``). Nothing by default."""

    def update_step(self, param: np.ndarray, grad: np.ndarray, slots: tuple[np.ndarray, ...],
                    learning_rate: float) -> int:
        """Update one flat, C-contiguous slice of a parameter in place from its gradient and slots (same length and
        dtype, all checked); return how many updated values are NaN or infinite."""
        raise NotImplementedError(f"{type(self).__name__} must implement update_step")

    # ----------------------------------------------------------------------------------------- the update loop
    def apply_gradients(self, layers: Iterable[Layer]) -> bool:
        """One update of every trainable parameter from the ``grads`` the last backward pass left.

        Every shape, dtype and layout the kernels rely on is checked first, and nothing changes unless all of
        them are right. Returns True when every updated value is finite (counted in the update's own pass; the
        model uses it to stop on an update that overflowed).
        """
        lr_t, updates = self.prepare_update(layers)
        if self.clipnorm or self.clipvalue:
            updates = self._clipped(updates)
        self.prepare_step(lr_t)
        non_finite = self._run_sliced(updates, lr_t)
        self.commit_update()
        return non_finite == 0

    def prepare_update(self, layers: Iterable[Layer]) -> tuple[float, list[_Update]]:
        """What :meth:`apply_gradients` does before it changes anything: this update's learning rate, and
        ``(param, grad, slots)`` for every trainable parameter, each checked (shapes, layout, a rate that fits
        the float type) and its slots made on first use. The gradients are not clipped here. The engine's
        compiled training step calls it before its backward pass when that pass applies the update itself."""
        owner = type(self).__name__
        lr_t = self.current_learning_rate()
        kinds = self.slots_in_use()
        updates: list[_Update] = []
        checked_dtypes: set[np.dtype] = set()
        for layer in layers:
            if not layer.trainable:
                continue
            for name, param in layer.params.items():
                grad = layer.grads.get(name)
                if grad is None or grad.shape != param.shape:
                    shape = None if grad is None else grad.shape
                    raise ValueError(f"{owner}: gradient {layer.name}.{name} has shape {shape}, "
                                     f"parameter has {param.shape}")
                if not (param.flags.c_contiguous and param.flags.writeable):
                    raise ValueError(f"{owner}: parameter {layer.name}.{name} must be a writeable C-contiguous "
                                     "array (it is updated in place, through flat views)")
                if param.dtype not in checked_dtypes:
                    self._check_learning_rate_fits(lr_t, param.dtype, layer.name, name)
                    checked_dtypes.add(param.dtype)
                slots = tuple(self._slots[kind].get_or_create(param, (layer.name, name)) for kind in kinds)
                updates.append((param, np.ascontiguousarray(grad, dtype=param.dtype), slots))
        return lr_t, updates

    def commit_update(self) -> None:
        """What follows an update once every value is written: :meth:`finish_step`, and one more iteration."""
        self.finish_step()
        self.iterations += 1

    def _clipped(self, updates: list[_Update]) -> list[_Update]:
        """The updates with clipped copies of their gradients (``layer.grads`` stay as backward left them).

        Keras 2.2.4 (``Optimizer.get_gradients``), with ``c = clipnorm``, ``v = clipvalue``, both when ``> 0``::

            norm = sqrt(sum over every gradient g of sum(g ** 2))     one norm for all parameters together
            g    = g * (c / norm)          if norm >= c               (then every g has a joint norm of c)
            g    = clip(g, -v, v)                                     element-wise, after the norm clipping

        Scaling by one factor keeps the direction of the whole step; only its length is capped. The sum of
        squares is taken in float64 (Keras sums in the gradients' float type): squares of float32 gradients above
        ~1.8e19 would overflow to ``inf`` and zero every gradient. A NaN norm fails ``norm >= c``, so, as in Keras,
        it leaves the gradients as they are (the model's checks report them).
        """
        if self.clipnorm:
            norm = float(np.sqrt(sum(float(np.sum(np.square(grad, dtype=np.float64))) for _, grad, _ in updates)))
            if norm >= self.clipnorm:
                updates = [(param, grad * grad.dtype.type(self.clipnorm / norm), slots)
                           for param, grad, slots in updates]
        if self.clipvalue:
            updates = [(param, np.clip(grad, -grad.dtype.type(self.clipvalue), grad.dtype.type(self.clipvalue)),
                        slots) for param, grad, slots in updates]
        return updates

    def _run_sliced(self, updates: list[_Update], learning_rate: float) -> int:
        # Each array is cut into one contiguous slice per engine thread and thread k updates slice k of every
        # array: the work is balanced whatever the sizes, and element-wise updates give the same bits either way.
        return threads.parallel_elementwise(
            [(param, grad, *slots) for param, grad, slots in updates],
            lambda param, grad, *slots: self.update_step(param, grad, slots, learning_rate))

    # ------------------------------------------------------------------------------------------ slots by name
    def get_slots(self, layers: Iterable[Layer]) -> dict[str, dict[SlotName, np.ndarray]]:
        """``{slot kind: {(layer name, parameter name): array}}`` for the parameters of ``layers`` that have one:
        exactly one model's state, even when the optimizer also trains others."""
        layers = list(layers)
        result: dict[str, dict[SlotName, np.ndarray]] = {}
        for kind, slots in self._slots.items():
            named = {}
            for layer in layers:
                for name, param in layer.params.items():
                    value = slots.get(param)
                    if value is not None:
                        named[(layer.name, name)] = value
            result[kind] = named
        return result

    def set_slots(self, layers: Iterable[Layer], slots: dict[str, dict[SlotName, np.ndarray]]) -> None:
        """Give the parameters of ``layers`` the named slots (copies), e.g. those of a model file.

        Raises ``ValueError`` naming the slot if a kind is unknown, a name names no parameter of ``layers``, or its
        array has another shape or dtype than the parameter. Everything is checked before anything is set.
        """
        owner = type(self).__name__
        by_name = {(layer.name, name): param for layer in layers for name, param in layer.params.items()}
        pending = []
        for kind, named in slots.items():
            if kind not in self.slot_names:
                raise ValueError(f"{owner}: unknown slot {kind!r}; {owner} keeps "
                                 f"{', '.join(self.slot_names) or 'no slots'}")
            for slot_name, value in named.items():
                label = ".".join(slot_name) if isinstance(slot_name, tuple) else repr(slot_name)
                param = by_name.get(slot_name)
                if param is None:
                    raise ValueError(f"{owner}: {kind} {label} names no parameter of the model (its parameters: "
                                     f"{', '.join('.'.join(key) for key in by_name) or 'none'})")
                if not isinstance(value, np.ndarray) or value.shape != param.shape or value.dtype != param.dtype:
                    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", type(value).__name__)
                    raise ValueError(f"{owner}: {kind} {label} has shape {shape} and dtype {dtype}, its "
                                     f"parameter has shape {param.shape} and dtype {param.dtype}")
                pending.append((kind, param, np.array(value, order="C"), slot_name))
        for kind, param, value, slot_name in pending:
            self._slots[kind].set(param, value, slot_name)

    # ------------------------------------------------------------------------------------------- scalar state
    def get_state(self) -> dict[str, float]:
        """Scalar state beyond ``iterations`` and the slots, saved in the model file (none by default)."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` gave; raises ``ValueError`` for a name the optimizer does not keep."""
        if state:
            raise ValueError(f"{type(self).__name__}: unknown state {', '.join(map(repr, state))}; it keeps none")

    # ------------------------------------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments; a schedule as ``{"class_name", "config"}`` so that JSON can hold it, and
        ``clipnorm`` / ``clipvalue`` only when set (as Keras 2.2.4 writes them)."""
        learning_rate = self.learning_rate
        config: dict[str, Any] = {"learning_rate": schedules.serialize(learning_rate)
                                  if isinstance(learning_rate, schedules.LearningRateSchedule) else learning_rate}
        if self.has_decay:
            config["decay"] = self.decay
        if self.clipnorm is not None:
            config["clipnorm"] = self.clipnorm
        if self.clipvalue is not None:
            config["clipvalue"] = self.clipvalue
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        config = dict(config)
        for key in ("learning_rate", "lr"):
            if isinstance(config.get(key), dict):
                config[key] = schedules.deserialize(config[key])
        return cls(**config)
