"""Callbacks: hooks ``fit`` calls around epochs and batches (Keras 2's protocol), History and the progress bar.

Order of calls during ``fit``::

    on_train_begin
      on_epoch_begin(epoch)
        on_batch_begin(batch, logs={'batch', 'size'})
        on_batch_end(batch, logs={'batch', 'size', 'loss', 'acc', ...})          # figures of that batch
      on_epoch_end(epoch, logs={'loss', 'acc', ..., 'val_loss', 'val_acc', ...}) # epoch means, then validation
    on_train_end

A callback sees the model as ``self.model`` and the run's settings as ``self.params`` (``epochs``, ``samples``,
``steps``, ``verbose``, ``do_validation``, ``metrics``); setting ``model.stop_training = True`` ends ``fit`` after
the current epoch.

Ready-made callbacks with Keras 2's names and arguments: :class:`ModelCheckpoint`, :class:`EarlyStopping`,
:class:`TerminateOnNaN`, :class:`CSVLogger`, :class:`LearningRateScheduler`, :class:`ReduceLROnPlateau`,
:class:`LambdaCallback` (plus :class:`History` and :class:`ProgbarLogger`, which ``fit`` adds).

The learning rate ``lr`` is logged, as in Keras 2.2.4, only by :class:`LearningRateScheduler` and
:class:`ReduceLROnPlateau`; without them ``history.history`` has no ``'lr'``. Keras calls :class:`History` after
every callback; ``fit`` calls those marked ``adds_to_epoch_logs`` (these two) before it, so that it records their
``lr``, and the others after it, so that a checkpoint saved at an epoch's end holds that epoch's history and the
reduced rate the next epoch will use (a resumed run then continues exactly).
"""

from __future__ import annotations

import csv
import inspect
import io
import os
import sys
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from tinynet.fileio import atomic_write
from tinynet.progbar import Progbar

Logs = dict[str, Any]


class Callback:
    """Base class: override the hooks you need."""

    #: True for a callback that adds figures to an epoch's logs: ``fit`` calls it before History records them.
    adds_to_epoch_logs = False

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: Logs | None = None) -> None: ...
    def on_train_end(self, logs: Logs | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None: ...
    def on_batch_begin(self, batch: int, logs: Logs | None = None) -> None: ...
    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None: ...


class CallbackList:
    """Calls each hook on every callback in order."""

    def __init__(self, callbacks: list[Callback], model: Any, params: dict[str, Any]) -> None:
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks: expected tinynet.callbacks.Callback instances, "
                                f"got {type(callback).__name__}")
            callback.set_model(model)
            callback.set_params(params)
        self.callbacks = callbacks

    def __getattr__(self, hook: str):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call_all(*args: Any) -> None:
            for callback in self.callbacks:
                getattr(callback, hook)(*args)

        return call_all


class History(Callback):
    """Records each epoch's logs: ``history.history['loss']`` is the per-epoch list, ``history.epoch`` the
    0-based epoch indices (``[1, ..., 9]`` for ``epochs=10, initial_epoch=1``). ``fit`` returns it."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class ProgbarLogger(Callback):
    """Prints ``Epoch e/E`` and Keras's progress bar (verbose=1) or one line per epoch (verbose=2).

    The bar shows the running sample-weighted means of ``loss`` and the metrics since the epoch began, and the
    validation figures on the final line, as Keras 2.2 printed them. Training on a generator or a Sequence (no
    ``samples`` in the params), the bar counts steps instead of samples, as Keras's ``count_mode='steps'``.
    """

    def __init__(self, verbose: int = 1, stream: TextIO | None = None) -> None:
        super().__init__()
        self.verbose = verbose
        self.stream = stream
        self.progbar: Progbar | None = None
        self.seen = 0

    def _shown(self, logs: Logs) -> list[tuple[str, float]]:
        return [(key, logs[key]) for key in self.params.get("metrics", []) if key in logs]

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        stream = self.stream or sys.stdout
        stream.write(f"Epoch {epoch + 1}/{self.params['epochs']}\n")
        stream.flush()
        self.seen = 0
        self._target = self.params["steps"] if self._counts_steps() else self.params["samples"]
        self.progbar = Progbar(target=self._target, verbose=self.verbose, stream=stream)

    def _counts_steps(self) -> bool:
        return self.params.get("samples") is None

    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        self.seen += 1 if self._counts_steps() else logs.get("size", 0)
        self._last_batch = self._shown(logs)
        if self.seen < self._target:
            self.progbar.update(self.seen, self._last_batch)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        # The last batch's figures go in with the final update (so the averages include it), then validation's.
        validation = [(key, value) for key, value in self._shown(logs or {}) if key.startswith("val_")]
        self.progbar.update(self.seen, getattr(self, "_last_batch", []) + validation)


# ------------------------------------------------------------------------------------------ helpers of callbacks
def _monitor_operation(mode: str, monitor: str, owner: str) -> Callable[[float, float], bool]:
    """``np.less`` or ``np.greater``: Keras's 'auto' picks 'max' for accuracies and 'min' for everything else."""
    if not isinstance(mode, str) or mode not in ("auto", "min", "max"):
        raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "max" or (mode == "auto" and ("acc" in monitor or monitor.startswith("fmeasure"))):
        return np.greater
    return np.less


def _check_monitor(monitor: Any, owner: str) -> str:
    if not isinstance(monitor, str) or not monitor:
        raise TypeError(f"{owner}: monitor must be the name of a logged figure such as 'val_loss', got {monitor!r}")
    return monitor


def _is_finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return False
    return bool(np.isfinite(value))


def _model_arrays(model: Any) -> Iterable[tuple[str, str, np.ndarray]]:
    """Every array a checkpoint of ``model`` would hold: each layer's weights and the optimizer's slots for them."""
    for layer in getattr(model, "layers", []):
        for name in layer.weight_names:
            yield "weight", f"{layer.name}.{name}", layer._weight(name)
    optimizer = getattr(model, "optimizer", None)
    if hasattr(optimizer, "get_slots"):
        for kind, named in optimizer.get_slots(model.layers).items():
            for (layer_name, param_name), array in named.items():
                yield f"optimizer slot {kind} of", f"{layer_name}.{param_name}", array


class ModelCheckpoint(Callback):
    """Save the model after every ``period`` epochs, as Keras 2's ``ModelCheckpoint``.

    ``filepath`` may hold ``str.format`` fields filled from the epoch (numbered from 1) and the epoch's logs:
    ``"weights.{epoch:02d}-{val_loss:.4f}.tnz"``. With ``save_best_only`` the file is written only when the
    ``monitor`` figure improves (``mode`` 'min', 'max', or 'auto': 'max' for accuracies). ``save_weights_only``
    writes :meth:`Sequential.save_weights`'s ``.npz`` instead of the whole model (:meth:`Sequential.save`).

    Every write is atomic, so an interrupted save leaves the previous checkpoint whole. Unlike Keras, an epoch is
    never saved (with a warning; the last good checkpoint stays) when its loss or monitored figure is NaN or
    infinite, when a numerical fault stopped it (``TerminateOnNaN``: a finite loss and gradient can still give an
    update that overflows), or when a weight or optimizer slot holds NaN or Inf, whatever the logs say. The last
    check reads every weight once per saved epoch, a pass far shorter than the epoch itself.
    """

    def __init__(self, filepath: str | os.PathLike, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False, mode: str = "auto",
                 period: int = 1) -> None:
        super().__init__()
        if not isinstance(filepath, str | os.PathLike) or not str(filepath):
            raise TypeError(f"ModelCheckpoint: filepath must be a non-empty path, got {filepath!r}")
        if isinstance(period, bool) or not isinstance(period, int | np.integer) or period <= 0:
            raise ValueError(f"ModelCheckpoint: period must be a positive int, got {period!r}")
        self.filepath = os.fspath(filepath)
        self.monitor = _check_monitor(monitor, "ModelCheckpoint")
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.period = int(period)
        self.monitor_op = _monitor_operation(mode, self.monitor, "ModelCheckpoint")
        self.best = np.inf if self.monitor_op is np.less else -np.inf
        self.epochs_since_last_save = 0

    def _format_path(self, epoch: int, logs: Logs) -> str:
        try:
            return self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as error:
            raise ValueError(f"ModelCheckpoint: filepath {self.filepath!r} names {error.args[0]!r}, which is not "
                             f"among this epoch's logs ({', '.join(['epoch', *logs])})") from None
        except (ValueError, IndexError) as error:
            raise ValueError(f"ModelCheckpoint: filepath {self.filepath!r} is not a valid format string "
                             f"({error})") from None

    def _save(self, path: str) -> None:
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)

    def _why_not_saveable(self, logs: Logs) -> str | None:
        """Why this epoch's state must not become a checkpoint, or None when it may."""
        faulty = [key for key in ("loss", self.monitor) if key in logs and not _is_finite_number(logs[key])]
        if faulty:
            return f"{faulty[0]} is {logs[faulty[0]]}"
        fault = getattr(self.model, "numerical_fault", None)
        if fault is not None:
            return f"training stopped on a numerical fault in the {getattr(fault, 'quantity', 'step')}"
        for owner, name, array in _model_arrays(self.model):
            if array.dtype.kind in "fc" and not np.isfinite(array).all():
                return f"the {owner} {name} holds NaN or Inf"
        return None

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        self.epochs_since_last_save += 1
        if self.epochs_since_last_save < self.period:
            return
        self.epochs_since_last_save = 0
        path = self._format_path(epoch, logs)
        problem = self._why_not_saveable(logs)
        if problem is not None:
            warnings.warn(f"ModelCheckpoint: epoch {epoch + 1}: {problem}; not saving to {path}, the previous "
                          "checkpoint is kept", RuntimeWarning, stacklevel=2)
            return
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1:05d}: saving model to {path}")
            self._save(path)
            return
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"ModelCheckpoint: can save the best model only with {self.monitor} available "
                          f"(logged: {', '.join(logs)}); skipping", RuntimeWarning, stacklevel=2)
        elif self.monitor_op(current, self.best):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1:05d}: {self.monitor} improved from {self.best:0.5f} to {current:0.5f}, "
                      f"saving model to {path}")
            self.best = current
            self._save(path)
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1:05d}: {self.monitor} did not improve from {self.best:0.5f}")


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
        if loss is not None and not _is_finite_number(loss):
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
        self.monitor = _check_monitor(monitor, "EarlyStopping")
        if isinstance(min_delta, bool) or not isinstance(min_delta, int | float | np.floating) \
                or not np.isfinite(min_delta):
            raise TypeError(f"EarlyStopping: min_delta must be a finite number, got {min_delta!r}")
        if isinstance(patience, bool) or not isinstance(patience, int | np.integer) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be a non-negative int, got {patience!r}")
        if baseline is not None and not _is_finite_number(baseline):
            raise TypeError(f"EarlyStopping: baseline must be a finite number or None, got {baseline!r}")
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.monitor_op = _monitor_operation(mode, self.monitor, "EarlyStopping")
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


class CSVLogger(Callback):
    """Write one row per epoch to a CSV file, as Keras 2's ``CSVLogger``: an ``epoch`` column (0-based, as
    Keras writes it) then every logged figure in sorted order.

    The whole file is rewritten atomically after every epoch, so after a crash it holds every finished epoch and
    never half a row. ``append=True`` continues an existing file (its header decides the columns): rows for epochs
    at or after the first epoch this run logs are replaced, so a run resumed from an earlier checkpoint does not
    leave the interrupted run's later rows behind. Rows use ``'\\n'`` line endings.
    """

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        if not isinstance(filename, str | os.PathLike) or not str(filename):
            raise TypeError(f"CSVLogger: filename must be a non-empty path, got {filename!r}")
        if not isinstance(separator, str) or len(separator) != 1 or separator in "\r\n\"":
            raise ValueError(f"CSVLogger: separator must be one character (not a quote or line break), "
                             f"got {separator!r}")
        self.filename = Path(filename)
        if self.filename.is_dir():
            raise ValueError(f"CSVLogger: filename {self.filename} is a folder; expected a file path")
        self.separator = separator
        self.append = bool(append)
        self.keys: list[str] | None = None
        self._rows: list[list[str]] = []
        self._first_epoch_logged: int | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.keys = None
        self._rows = []
        self._first_epoch_logged = None
        if self.append and self.filename.exists():
            text = self.filename.read_text(encoding="utf-8")
            if text and not text.endswith("\n"):
                text = text[:text.rfind("\n") + 1]  # a row cut short (written by some other tool): drop it
            rows = list(csv.reader(io.StringIO(text), delimiter=self.separator))
            if rows:
                self.keys = rows[0][1:] if rows[0][:1] == ["epoch"] else None
                if self.keys is None:
                    raise ValueError(f"CSVLogger: cannot append to {self.filename}: its first line is not a header "
                                     f"starting with 'epoch' (separator {self.separator!r})")
                self._rows = rows[1:]

    @staticmethod
    def _cell(value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, Iterable):
            return "[" + ", ".join(map(str, value)) + "]"  # the csv writer quotes it when the separator is ','

        return str(value)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
        if self._first_epoch_logged is None:
            self._first_epoch_logged = epoch
            self._rows = [row for row in self._rows if not _row_epoch_at_least(row, epoch)]
        self._rows.append([str(epoch), *(self._cell(logs[key]) if key in logs else "NA" for key in self.keys)])
        text = io.StringIO()
        writer = csv.writer(text, delimiter=self.separator, lineterminator="\n")
        writer.writerow(["epoch", *self.keys])
        writer.writerows(self._rows)
        with atomic_write(self.filename) as file:
            file.write(text.getvalue().encode("utf-8"))


def _row_epoch_at_least(row: list[str], epoch: int) -> bool:
    try:
        return int(row[0]) >= epoch
    except (ValueError, IndexError):
        return False


# ------------------------------------------------------------------------------------------- learning-rate callbacks
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
        self.monitor = _check_monitor(monitor, owner)
        if not _is_finite_number(factor) or not 0 <= factor < 1:
            raise ValueError(f"{owner}: factor must be a number in [0, 1) (new_lr = lr * factor), got {factor!r}")
        for argument, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"{owner}: {argument} must be a non-negative int, got {value!r}")
        for argument, value in (("min_delta", min_delta), ("min_lr", min_lr)):
            if not _is_finite_number(value) or value < 0:
                raise ValueError(f"{owner}: {argument} must be a finite number >= 0, got {value!r}")
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


class LambdaCallback(Callback):
    """A callback from plain functions, as Keras 2's ``LambdaCallback``: ``on_epoch_begin(epoch, logs)``,
    ``on_epoch_end(epoch, logs)``, ``on_batch_begin(batch, logs)``, ``on_batch_end(batch, logs)``,
    ``on_train_begin(logs)``, ``on_train_end(logs)``, each called with positional arguments; a hook not given
    does nothing.

    Example: ``LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs['loss']))``.
    """

    def __init__(self, on_epoch_begin: Callable | None = None, on_epoch_end: Callable | None = None,
                 on_batch_begin: Callable | None = None, on_batch_end: Callable | None = None,
                 on_train_begin: Callable | None = None, on_train_end: Callable | None = None) -> None:
        super().__init__()
        given = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end, "on_batch_begin": on_batch_begin,
                 "on_batch_end": on_batch_end, "on_train_begin": on_train_begin, "on_train_end": on_train_end}
        for hook, function in given.items():
            if function is not None and not callable(function):
                raise TypeError(f"LambdaCallback: {hook} must be a function, got {function!r}")
        self._functions = given

    # Keras's CallbackList always passes ``logs`` (``{}`` when there are none); ``fit`` may leave it out.
    def _call(self, hook: str, *args: Any) -> None:
        function = self._functions[hook]
        if function is not None:
            function(*args)

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._call("on_train_begin", logs if logs is not None else {})

    def on_train_end(self, logs: Logs | None = None) -> None:
        self._call("on_train_end", logs if logs is not None else {})

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._call("on_epoch_begin", epoch, logs if logs is not None else {})

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self._call("on_epoch_end", epoch, logs if logs is not None else {})

    def on_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        self._call("on_batch_begin", batch, logs if logs is not None else {})

    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        self._call("on_batch_end", batch, logs if logs is not None else {})
