"""The fit loop (Keras 2's ``training_arrays.fit_loop``): epochs of shuffled batches through the public training
step, with callbacks, validation and the progress bar. :meth:`tinynet.models.Sequential.fit` documents it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinynet.callbacks import Callback, CallbackList, History, ProgbarLogger
from tinynet.models import passes
from tinynet.models.checks import check_batch_size, check_verbose, check_xy
from tinynet.models.evaluation import evaluate_arrays
from tinynet.models.numerics import NumericalFaultError, locate_fault


def _check_fit_arguments(model: Any, epochs: Any, initial_epoch: Any, shuffle: Any, callbacks: Any,
                         validation_split: Any, validation_data: Any) -> None:
    where = f"{model.name}.fit"
    for argument, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"{where}: {argument} must be a non-negative int, got {value!r}")
    if not isinstance(shuffle, bool | np.bool_):
        raise TypeError(f"{where}: shuffle must be True or False, got {shuffle!r}")
    if callbacks is not None and not isinstance(callbacks, list | tuple):
        raise TypeError(f"{where}: callbacks must be a list of tinynet.callbacks.Callback, "
                        f"got {type(callbacks).__name__}")
    if isinstance(validation_split, bool) or not isinstance(validation_split, int | float | np.floating):
        raise TypeError(f"{where}: validation_split must be a float in [0, 1), got {validation_split!r}")
    if validation_data is not None and (not isinstance(validation_data, tuple | list) or len(validation_data) != 2):
        raise ValueError(f"{where}: validation_data must be a tuple (x_val, y_val), got "
                         f"{type(validation_data).__name__}"
                         + (f" of length {len(validation_data)}" if isinstance(validation_data, tuple | list)
                            else ""))


def fit_arrays(model: Any, x: Any, y: Any, batch_size: int | None, epochs: int, verbose: int,
               callbacks: list[Callback] | None, validation_split: float, validation_data: tuple | None,
               shuffle: bool, initial_epoch: int) -> History:
    """Train ``model`` on arrays; see :meth:`tinynet.models.Sequential.fit`."""
    batch_size = check_batch_size(32 if batch_size is None else batch_size, f"{model.name}.fit")
    verbose = check_verbose(verbose, f"{model.name}.fit")
    _check_fit_arguments(model, epochs, initial_epoch, shuffle, callbacks, validation_split, validation_data)
    x, y = check_xy(model, x, y, "fit")
    if validation_data is None and validation_split:
        if not 0 < validation_split < 1:
            raise ValueError(f"{model.name}.fit: validation_split must be in (0, 1), got {validation_split!r}")
        # Keras takes the *last* fraction of the data, before any shuffling.
        split_at = int(len(x) * (1 - validation_split))
        if split_at == 0 or split_at == len(x):
            raise ValueError(f"{model.name}.fit: validation_split={validation_split} leaves an empty split "
                             f"of {len(x)} samples")
        x, x_val, y, y_val = x[:split_at], x[split_at:], y[:split_at], y[split_at:]
        validation_data = (x_val, y_val)
    if validation_data is not None:
        x_val, y_val = check_xy(model, *validation_data, "fit", suffix="_val")

    samples = len(x)
    steps = math.ceil(samples / batch_size)
    shown = ["loss", "acc"] if model._accuracy is not None else ["loss"]
    if validation_data is not None:
        shown += [f"val_{key}" for key in shown]
    params = {"epochs": epochs, "samples": samples, "steps": steps, "verbose": verbose,
              "batch_size": batch_size, "do_validation": validation_data is not None, "metrics": shown}
    model.history = History()
    # Callbacks that add to an epoch's logs (the 'lr' of ReduceLROnPlateau and LearningRateScheduler) run before
    # History, as all callbacks do in Keras 2.2.4, so that it records what they add; the others keep running after
    # it, so that a checkpoint saved at the end of an epoch holds that epoch's history and the rate the next epoch
    # will use.
    given = list(callbacks or [])
    all_callbacks = [callback for callback in given if getattr(callback, "adds_to_epoch_logs", False)]
    all_callbacks += [model.history, *(callback for callback in given if callback not in all_callbacks)]
    if verbose:
        all_callbacks.append(ProgbarLogger(verbose=verbose))
    hooks = CallbackList(all_callbacks, model, params)

    if verbose and validation_data is not None:
        print(f"Train on {samples} samples, validate on {len(x_val)} samples")
    # With TerminateOnNaN among the callbacks a NaN/Inf stops training quietly (Keras's way) instead of raising.
    stop_quietly_on_fault = any(getattr(callback, "handles_numerical_faults", False) for callback in all_callbacks)
    model.stop_training = False
    model.numerical_fault = None
    hooks.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        model.numerical_fault = None
        hooks.on_epoch_begin(epoch)
        order = model._shuffle_generator.permutation(samples) if shuffle else np.arange(samples)
        totals: dict[str, float] = {}
        faulted = False
        for step in range(steps):
            indices = order[step * batch_size:(step + 1) * batch_size]
            logs: dict[str, Any] = {"batch": step, "size": len(indices)}
            hooks.on_batch_begin(step, logs)
            try:
                figures = model.train_step(model._gather(x, indices), model._gather_targets(y, indices))
            except NumericalFaultError as fault:
                located = fault.at((epoch, epochs, step, steps))
                if not stop_quietly_on_fault:
                    raise located from None
                figures, faulted = located.figures, True
                model.numerical_fault = located
                logs["numerical_fault"] = str(located)
            logs.update(figures)
            for key, value in figures.items():
                totals[key] = totals.get(key, 0.0) + value * len(indices)
            hooks.on_batch_end(step, logs)
            if model.stop_training:
                break
        seen = sum(len(order[s * batch_size:(s + 1) * batch_size]) for s in range(step + 1))
        epoch_logs = {key: total / seen for key, total in totals.items()}
        if validation_data is not None:
            validation = evaluate_arrays(model, x_val, y_val, batch_size)
            for key, value in validation.items():
                epoch_logs[f"val_{key}"] = value
            if not math.isfinite(validation["loss"]) and not stop_quietly_on_fault:
                batches = (model._gather(x_val, slice(start, start + batch_size))
                           for start in range(0, len(x_val), batch_size))
                layer, detail = locate_fault(model.layers, "validation", batches)
                passes.clear_caches(model)
                raise NumericalFaultError.describe(model.name, "validation", validation, layer, detail,
                                                   (epoch, epochs, None, steps))
        if step == steps - 1 and not faulted:
            model.epochs_done = epoch + 1  # before the hooks, so a checkpoint saved there records it
        hooks.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    hooks.on_train_end()
    return model.history
