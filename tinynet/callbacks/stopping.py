"""Callbacks that end training early: :class:`TerminateOnNaN` (a numerical fault) and :class:`EarlyStopping`
(a watched figure that stopped improving)."""

from __future__ import annotations

import warnings

import numpy as np

from tinynet.callbacks._monitor import check_monitor, is_finite_number, monitor_operation
from tinynet.callbacks.base import Callback, Logs


class TerminateOnNaN(Callback):
    """Stop training quietly when a batch's loss or a gradient is NaN or infinite, or an update made a weight so,
    as Keras 2's ``TerminateOnNaN``.

    Without it, ``fit`` raises :class:`tinynet.models.NumericalFaultError` naming the epoch, batch and layer. With
    it, this callback prints ``Batch b: Invalid loss, terminating training`` (or names the gradient or the update
    as the fault) and sets ``model.stop_training``; the epoch still ends (its logs hold the NaN) and ``fit``
    returns. A faulty loss or gradient is never applied; an update that overflowed has already spoiled the weights
    in memory, and the epoch is never checkpointed (:class:`ModelCheckpoint`).
    """

    #: Tells ``fit`` to hand numerical faults to the callbacks instead of raising.
    handles_numerical_faults = True

    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        loss = logs.get("loss")
        if loss is not None and not is_finite_number(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
        elif "numerical_fault" in logs:
            quantity = getattr(getattr(self.model, "numerical_fault", None), "quantity", None)
            what = ("the update made a weight NaN or Inf (the gradients were finite)" if quantity == "update"
                    else "NaN or Inf in a gradient")
            print(f"Batch {batch}: {what}, terminating training")
            self.model.stop_training = True


class EarlyStopping(Callback):
    """Stop when ``monitor`` has stopped improving, as Keras 2.2's ``EarlyStopping``.

    An epoch improves on the best so far when ``current - min_delta < best`` ('min') or ``current + min_delta >
    best`` ('max'; 'auto' picks 'max' for accuracies). After ``patience`` epochs in a row without improvement
    training stops; with ``restore_best_weights`` the weights of the best epoch are put back then. ``baseline``:
    training stops unless the figure beats it within ``patience`` epochs. The count restarts with every ``fit``
    (and is not saved with the model).
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False) -> None:
        super().__init__()
        self.monitor = check_monitor(monitor, "EarlyStopping")
        if isinstance(min_delta, bool) or not isinstance(min_delta, int | float | np.floating) \
                or not np.isfinite(min_delta):
            raise TypeError(f"EarlyStopping: min_delta must be a finite number, got {min_delta!r}")
        if isinstance(patience, bool) or not isinstance(patience, int | np.integer) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be a non-negative int, got {patience!r}")
        if baseline is not None and not is_finite_number(baseline):
            raise TypeError(f"EarlyStopping: baseline must be a finite number or None, got {baseline!r}")
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.monitor_op = monitor_operation(mode, self.monitor, "EarlyStopping")
        self.min_delta = abs(float(min_delta)) * (1 if self.monitor_op is np.greater else -1)
        self.wait = 0
        self.stopped_epoch = 0
        self.best = np.inf if self.monitor_op is np.less else -np.inf
        self.best_weights: list[np.ndarray] | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None
        if self.baseline is not None:
            self.best = self.baseline
        else:
            self.best = np.inf if self.monitor_op is np.less else -np.inf

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"EarlyStopping: conditioned on {self.monitor!r}, which is not available; available "
                          f"figures are {', '.join(logs)}", RuntimeWarning, stacklevel=2)
            return
        if self.monitor_op(current - self.min_delta, self.best):
            self.best = current
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                if self.verbose > 0:
                    print("Restoring model weights from the end of the best epoch")
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1:05d}: early stopping")
