"""Inference over a dataset in batches: the loops behind ``evaluate`` (and fit's validation) and ``predict``."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet.models import passes
from tinynet.progbar import Progbar


def evaluate_arrays(model: Any, x: np.ndarray, y: np.ndarray, batch_size: int,
                    progbar: Progbar | None = None) -> dict[str, float]:
    """The loss (and accuracy) over ``(x, y)`` with dropout off; a partial last batch weighs by its size."""
    totals: dict[str, float] = {}
    for start in range(0, len(x), batch_size):
        stop = min(start + batch_size, len(x))
        outputs = passes.forward(model, model._gather(x, slice(start, stop)), training=False)
        for key, value in model._batch_figures(model._gather_targets(y, slice(start, stop)), outputs).items():
            totals[key] = totals.get(key, 0.0) + value * (stop - start)
        if progbar is not None:
            progbar.update(stop)
    passes.clear_caches(model)
    return {key: total / len(x) for key, total in totals.items()}


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
