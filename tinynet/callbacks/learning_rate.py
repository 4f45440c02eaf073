"""Callbacks that set the optimizer's learning rate between epochs: :class:`LearningRateScheduler` and
:class:`ReduceLROnPlateau`. Both log the rate in force as ``lr``."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from tinynet.callbacks._monitor import check_monitor, is_finite_number
from tinynet.callbacks.base import Callback, Logs


def _number_learning_rate(model: Any, owner: str) -> float:
    """The optimizer's base learning rate ``lr``, which these callbacks read and replace: it must be a number."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not hasattr(optimizer, "lr"):
        raise ValueError(f"{owner}: the optimizer must have an 'lr' attribute (compile the model first)")
    learning_rate = optimizer.lr
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, int | float | np.integer | np.floating):
        raise TypeError(f"{owner}: the optimizer's learning rate is {learning_rate!r}, not a number; a learning-rate "
                        f"schedule already sets the rate of every step (use it or {owner}, not both)")
    return float(learning_rate)


def _takes_two_arguments(function: Callable) -> bool:
    """Whether ``schedule(epoch, lr)`` can be called (Keras 2.2's API) rather than only ``schedule(epoch)``."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without a signature: assume the current API
        return True
    try:
        signature.bind(0, 0.0)
    except TypeError:
        return False
    return True


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch, as Keras 2.2.4's ``LearningRateScheduler``.

    ``schedule(epoch, lr) -> new lr`` (``epoch`` counted from 0, ``lr`` the optimizer's current base rate), or
    ``schedule(epoch)`` (Keras's older API); it must return a float. Keras 2.2.4 tells the two apart by calling with
    two arguments and retrying with one on any ``TypeError``, which also hides a ``TypeError`` raised inside the
    schedule; tinynet looks at the function's signature instead. The new rate replaces ``optimizer.lr`` (Keras 2's
    ``decay`` still applies on top of it), so it is saved with the model; it is logged as ``lr`` at the end of every
    epoch, and so recorded in ``History``. ``verbose=1`` prints each change.
    """

    adds_to_epoch_logs = True

    def __init__(self, schedule: Callable, verbose: int = 0) -> None:
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be a function of the epoch, got {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose
        self._two_arguments = _takes_two_arguments(schedule)

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        learning_rate = _number_learning_rate(self.model, "LearningRateScheduler")
        learning_rate = self.schedule(epoch, learning_rate) if self._two_arguments else self.schedule(epoch)
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, float | np.float32 | np.float64):
            raise ValueError(f'LearningRateScheduler: the output of the "schedule" function should be float, got '
                             f"{learning_rate!r} at epoch {epoch}")
        self.model.optimizer.lr = float(learning_rate)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1:05d}: LearningRateScheduler setting learning rate to {learning_rate}.")

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if logs is not None:
            logs["lr"] = _number_learning_rate(self.model, "LearningRateScheduler")


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving, as Keras 2.2.4's callback.

    At the end of every epoch: an epoch improves on the best so far when ``current < best - min_delta`` ('min', and
    'auto' unless the name contains ``'acc'``) or ``current > best + min_delta`` ('max'). After ``patience`` epochs
    in a row without improvement, ``lr = max(lr * factor, min_lr)`` (only while ``lr > min_lr``), then ``cooldown``
    epochs pass before counting resumes. The rate in force is logged as ``lr`` every epoch (before any reduction, as
    Keras does), and so recorded in ``History``.

    The reduced rate is the optimizer's ``lr``, part of its config: a saved model keeps it and a resumed run
    continues with it. The callback's own counters (``best``, ``wait``, ``cooldown_counter``) restart with every
    ``fit``, as in Keras, and are not saved: a resumed run counts patience afresh.
    """

    adds_to_epoch_logs = True

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0) -> None:
        super().__init__()
        owner = "ReduceLROnPlateau"
        self.monitor = check_monitor(monitor, owner)
        if not is_finite_number(factor) or not 0 <= factor < 1:
            raise ValueError(f"{owner}: factor must be a number in [0, 1) (new_lr = lr * factor), got {factor!r}")
        for argument, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"{owner}: {argument} must be a non-negative int, got {value!r}")
        for argument, amount in (("min_delta", min_delta), ("min_lr", min_lr)):
            if not is_finite_number(amount) or amount < 0:
                raise ValueError(f"{owner}: {argument} must be a finite number >= 0, got {amount!r}")
        if not isinstance(mode, str) or mode not in ("auto", "min", "max"):
            raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.factor = float(factor)
        self.patience = int(patience)
        self.verbose = verbose
        self.mode = mode
        self.min_delta = float(min_delta)
        self.cooldown = int(cooldown)
        self.min_lr = float(min_lr)
        # Keras 2.2.4's 'auto' looks for 'acc' only (EarlyStopping also for 'fmeasure').
        self._maximize = mode == "max" or (mode == "auto" and "acc" in self.monitor)
        self._reset()

    def _reset(self) -> None:
        self.best = -np.inf if self._maximize else np.inf
        self.cooldown_counter = 0
        self.wait = 0

    def _improves(self, current: float) -> bool:
        if self._maximize:
            return bool(np.greater(current, self.best + self.min_delta))
        return bool(np.less(current, self.best - self.min_delta))

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_train_begin(self, logs: Logs | None = None) -> None:
        _number_learning_rate(self.model, "ReduceLROnPlateau")
        self._reset()

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs if logs is not None else {}
        logs["lr"] = _number_learning_rate(self.model, "ReduceLROnPlateau")
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"ReduceLROnPlateau: conditioned on {self.monitor!r}, which is not available; available "
                          f"figures are {', '.join(logs)}", RuntimeWarning, stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improves(current):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = logs["lr"]
                if old_lr > self.min_lr:
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    self.model.optimizer.lr = new_lr
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1:05d}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0
