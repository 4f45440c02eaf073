"""ModelCheckpoint: save the model (or its weights) at an epoch's end, never a state holding NaN or Inf."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from tinynet.callbacks._monitor import check_monitor, is_finite_number, monitor_operation
from tinynet.callbacks.base import Callback, Logs


def _model_arrays(model: Any) -> Iterable[tuple[str, str, np.ndarray]]:
    """Every array a checkpoint of ``model`` would hold: each layer's weights and the optimizer's slots for them."""
    for layer in getattr(model, "layers", []):
        for name in layer.weight_names:
            yield "weight", f"{layer.name}.{name}", layer._weight(name)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and hasattr(optimizer, "get_slots"):
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
        self.monitor = check_monitor(monitor, "ModelCheckpoint")
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.period = int(period)
        self.monitor_op = monitor_operation(mode, self.monitor, "ModelCheckpoint")
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
        faulty = [key for key in ("loss", self.monitor) if key in logs and not is_finite_number(logs[key])]
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
