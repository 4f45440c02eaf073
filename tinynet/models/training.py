"""The fit loop (Keras 2's ``training_arrays.fit_loop`` and ``training_generator.fit_generator`` in one): epochs of
batches, from arrays or a Sequence/generator (:mod:`tinynet.models.batches`), through the public training step,
with callbacks, validation and the progress bar. :meth:`tinynet.models.Sequential.fit` documents it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinynet.callbacks import Callback, CallbackList, History, ProgbarLogger
from tinynet.models import passes
from tinynet.models.batches import ArrayBatches, SourceBatches, is_batch_source
from tinynet.models.checks import check_batch_size, check_verbose, check_xy
from tinynet.models.data_parallel import OneProcess
from tinynet.models.numerics import NumericalFaultError, locate_fault
from tinynet.models.sample_weights import sample_weights
from tinynet.progbar import validation_banner


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
    if validation_data is not None and not is_batch_source(validation_data) and (
            not isinstance(validation_data, tuple | list) or len(validation_data) not in (2, 3)):
        raise ValueError(f"{where}: validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                         "val_sample_weight), a Sequence or a generator, got "
                         f"{type(validation_data).__name__}"
                         + (f" of length {len(validation_data)}" if isinstance(validation_data, tuple | list)
                            else ""))


def _training_batches(model: Any, x: Any, y: Any, batch_size: int, shuffle: bool, sample_weight: Any,
                      class_weight: Any, validation_split: float, validation_data: Any,
                      steps_per_epoch: Any) -> tuple[Any, Any]:
    """The training batches and the validation data (arrays, with their weights, or a batch source)."""
    where = f"{model.name}.fit"
    if is_batch_source(x):
        if y is not None or sample_weight is not None or validation_split:
            raise ValueError(f"{where}: with a Sequence or generator as x, y, sample_weight and validation_split "
                             "must be left out (the batches carry the targets and weights)")
        return SourceBatches(model, x, steps_per_epoch, where, "steps_per_epoch", shuffle, class_weight), \
            validation_data
    if steps_per_epoch is not None:
        raise ValueError(f"{where}: steps_per_epoch is for a Sequence or generator; with arrays, batch_size sets "
                         "the steps")
    x, y = check_xy(model, x, y, "fit")
    weights = sample_weights(sample_weight, class_weight, y, where)
    if validation_data is None and validation_split:
        if not 0 < validation_split < 1:
            raise ValueError(f"{where}: validation_split must be in (0, 1), got {validation_split!r}")
        # Keras takes the *last* fraction of the data (and of the weights), before any shuffling.
        split_at = int(len(x) * (1 - validation_split))
        if split_at == 0 or split_at == len(x):
            raise ValueError(f"{where}: validation_split={validation_split} leaves an empty split "
                             f"of {len(x)} samples")
        validation_data = (x[split_at:], y[split_at:], None if weights is None else weights[split_at:])
        x, y, weights = x[:split_at], y[:split_at], None if weights is None else weights[:split_at]
    return ArrayBatches(model, x, y, weights, batch_size, shuffle), validation_data


def _validation_batches(model: Any, validation_data: Any, batch_size: int, validation_steps: Any) -> Any:
    where = f"{model.name}.fit"
    if validation_data is None:
        return None
    if is_batch_source(validation_data):
        return SourceBatches(model, validation_data, validation_steps, where, "validation_steps")
    x_val, y_val = check_xy(model, validation_data[0], validation_data[1], "fit", suffix="_val")
    val_weight = validation_data[2] if len(validation_data) == 3 else None
    return ArrayBatches(model, x_val, y_val, sample_weights(val_weight, None, y_val, f"{where}: validation_data"),
                        batch_size)


def fit(model: Any, x: Any, y: Any, batch_size: int | None, epochs: int, verbose: int,
        callbacks: list[Callback] | None, validation_split: float, validation_data: Any, shuffle: bool,
        class_weight: Any, sample_weight: Any, initial_epoch: int, steps_per_epoch: Any,
        validation_steps: Any) -> History:
    """Train ``model`` on arrays or a Sequence/generator; see :meth:`tinynet.models.Sequential.fit`."""
    batch_size = check_batch_size(32 if batch_size is None else batch_size, f"{model.name}.fit")
    verbose = check_verbose(verbose, f"{model.name}.fit")
    _check_fit_arguments(model, epochs, initial_epoch, shuffle, callbacks, validation_split, validation_data)
    training, validation_data = _training_batches(model, x, y, batch_size, shuffle, sample_weight, class_weight,
                                                  validation_split, validation_data, steps_per_epoch)
    validation = _validation_batches(model, validation_data, batch_size, validation_steps)

    # One process alone, or this process's part in data-parallel training (tinynet.distributed): its share of each
    # global batch, figures summed over the processes, files and the progress bar on the chief only.
    parallel = getattr(model.optimizer, "data_parallel", None) or OneProcess()
    verbose = verbose if parallel.is_chief else 0
    steps = training.steps
    shown = list(model.metrics_names)
    if validation is not None:
        shown += [f"val_{key}" for key in shown]
    params = {"epochs": epochs, "samples": training.samples, "steps": steps, "verbose": verbose,
              "batch_size": batch_size, "do_validation": validation is not None, "metrics": shown}
    model.history = History()
    # Callbacks that add to an epoch's logs (the 'lr' of ReduceLROnPlateau and LearningRateScheduler) run before
    # History, as all callbacks do in Keras 2.2.4, so that it records what they add; the others keep running after
    # it, so that a checkpoint saved at the end of an epoch holds that epoch's history and the rate the next epoch
    # will use.
    given = parallel.callbacks_here(list(callbacks or []))
    all_callbacks = [callback for callback in given if getattr(callback, "adds_to_epoch_logs", False)]
    all_callbacks += [model.history, *(callback for callback in given if callback not in all_callbacks)]
    if verbose:
        all_callbacks.append(ProgbarLogger(verbose=verbose))
    hooks = CallbackList(all_callbacks, model, params)

    if verbose and isinstance(validation, ArrayBatches) and training.samples is not None:
        print(validation_banner(training.samples, validation.samples))
    # With TerminateOnNaN among the callbacks a NaN/Inf stops training quietly (Keras's way) instead of raising.
    stop_quietly_on_fault = any(getattr(callback, "handles_numerical_faults", False) for callback in all_callbacks)
    model.stop_training = False
    model.numerical_fault = None
    parallel.start(model, params)
    hooks.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        model.numerical_fault = None
        hooks.on_epoch_begin(epoch)
        totals: dict[str, float] = {}
        faulted = False
        seen = 0
        for step, (x_batch, y_batch, weights) in enumerate(training.epoch()):
            logs: dict[str, Any] = {"batch": step, "size": len(x_batch)}
            hooks.on_batch_begin(step, logs)
            try:
                with parallel.share(x_batch, y_batch, weights) as (x_share, y_share, weights_share):
                    figures = model.train_step(x_share, y_share, sample_weight=weights_share)
            except NumericalFaultError as fault:
                located = fault.at((epoch, epochs, step, steps))
                if not stop_quietly_on_fault:
                    raise located from None
                figures, faulted = located.figures, True
                model.numerical_fault = located
                logs["numerical_fault"] = str(located)
            logs.update(figures)
            for key, value in figures.items():
                totals[key] = totals.get(key, 0.0) + value * len(x_batch)
            seen += len(x_batch)
            hooks.on_batch_end(step, logs)
            if model.stop_training:
                break
        training.on_epoch_end()
        epoch_logs = {key: total / seen for key, total in totals.items()}
        if validation is not None:
            figures = parallel.evaluate(model, validation.epoch())
            validation.on_epoch_end()
            for key, value in figures.items():
                epoch_logs[f"val_{key}"] = value
            if not math.isfinite(figures["loss"]) and not stop_quietly_on_fault:
                batches = (x_batch for x_batch, _, _ in validation.epoch()) if isinstance(validation, ArrayBatches) \
                    else iter(())
                layer, detail = locate_fault(model.layers, "validation", batches)
                passes.clear_caches(model)
                raise NumericalFaultError.describe(model.name, "validation", figures, layer, detail,
                                                   (epoch, epochs, None, steps))
        if step == steps - 1 and not faulted:
            model.epochs_done = epoch + 1  # before the hooks, so a checkpoint saved there records it
        hooks.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    hooks.on_train_end()
    return model.history
