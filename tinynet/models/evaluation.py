"""Inference over a dataset in batches: the loops behind ``evaluate`` (and fit's validation) and ``predict``, on
arrays or on a Sequence or generator (:mod:`tinynet.models.batches`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from tinynet.models import passes
from tinynet.models.batches import ArrayBatches, Batch, SourceBatches, is_batch_source
from tinynet.models.checks import check_batch_size, check_verbose, check_x, check_xy
from tinynet.models.sample_weights import sample_weights
from tinynet.progbar import Progbar


def evaluate_batches(model: Any, batches: Iterable[Batch], progbar: Progbar | None = None,
                     count_steps: bool = False) -> dict[str, float]:
    """The loss (weighted, when the batches carry weights) and the metrics over ``batches``, dropout off; each
    batch's figures weigh by its number of samples, as in Keras."""
    totals: dict[str, float] = {}
    seen = steps = 0
    for x, y, weights in batches:
        outputs = passes.forward(model, x, training=False)
        for key, value in model._batch_figures(y, outputs, weights).items():
            totals[key] = totals.get(key, 0.0) + value * len(x)
        seen, steps = seen + len(x), steps + 1
        if progbar is not None:
            progbar.update(steps if count_steps else seen)
    passes.clear_caches(model)
    return {key: total / seen for key, total in totals.items()}


def evaluate_arrays(model: Any, x: np.ndarray, y: np.ndarray, batch_size: int, progbar: Progbar | None = None,
                    weights: np.ndarray | None = None) -> dict[str, float]:
    """:func:`evaluate_batches` over arrays already checked; a partial last batch weighs by its size."""
    return evaluate_batches(model, ArrayBatches(model, x, y, weights, batch_size).epoch(), progbar)


def evaluate(model: Any, x: Any, y: Any, batch_size: Any, verbose: Any, sample_weight: Any,
             steps: Any) -> dict[str, float]:
    """``Sequential.evaluate``: arrays (with optional ``sample_weight``) or a Sequence/generator (``steps``)."""
    where = f"{model.name}.evaluate"
    verbose = check_verbose(verbose, where)
    if is_batch_source(x):
        if y is not None or sample_weight is not None:
            raise ValueError(f"{where}: with a Sequence or generator as x, y and sample_weight must be None "
                             "(the batches carry them)")
        source = SourceBatches(model, x, steps, where, "steps")
        progbar = Progbar(target=source.steps) if verbose == 1 else None
        return evaluate_batches(model, source.epoch(), progbar, count_steps=True)
    batch_size = check_batch_size(32 if batch_size is None else batch_size, where)
    x, y = check_xy(model, x, y, "evaluate")
    weights = sample_weights(sample_weight, None, y, where)
    progbar = Progbar(target=len(x)) if verbose == 1 else None  # Keras: a bar only at verbose=1
    return evaluate_arrays(model, x, y, batch_size, progbar, weights)


def predict(model: Any, x: Any, batch_size: Any, verbose: Any, steps: Any) -> np.ndarray:
    """``Sequential.predict``: the outputs for arrays, or for the ``x`` of every batch of a Sequence/generator."""
    where = f"{model.name}.predict"
    verbose = check_verbose(verbose, where)
    if is_batch_source(x):
        source = SourceBatches(model, x, steps, where, "steps", targets=False)
        progbar = Progbar(target=source.steps) if verbose == 1 else None
        outputs = []
        for step, (inputs, _, _) in enumerate(source.epoch(), start=1):
            outputs.append(passes.forward(model, inputs, training=False))
            if progbar is not None:
                progbar.update(step)
        passes.clear_caches(model)
        return np.concatenate(outputs)
    batch_size = check_batch_size(32 if batch_size is None else batch_size, where)
    x = check_x(model, x, "predict")
    progbar = Progbar(target=len(x)) if verbose == 1 else None  # Keras: a bar only at verbose=1
    return predict_arrays(model, x, batch_size, progbar)


def predict_arrays(model: Any, x: np.ndarray, batch_size: int, progbar: Progbar | None = None) -> np.ndarray:
    """The outputs for every sample of ``x``, computed ``batch_size`` at a time with dropout off."""
    outputs = np.empty((len(x), *model.layers[-1].output_shape), dtype=model.layers[-1].dtype)
    for start in range(0, len(x), batch_size):
        stop = min(start + batch_size, len(x))
        outputs[start:stop] = passes.forward(model, model._gather(x, slice(start, stop)), training=False)
        if progbar is not None:
            progbar.update(stop)
    passes.clear_caches(model)
    return outputs
