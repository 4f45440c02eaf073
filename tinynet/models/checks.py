"""Checks of what a user hands a model (arrays, batch sizes, verbosity): each names the argument and what was
expected, before any computation starts."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_rectangular_array(value: Any, argument: str) -> np.ndarray:
    """``np.asarray`` that names the argument when nested lists have rows of different lengths."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{argument} must be a rectangular array; nested lists of different lengths or mixed "
                         f"types cannot become one ({error})") from None


def check_verbose(verbose: Any, entry_point: str) -> int:
    if isinstance(verbose, bool) or not isinstance(verbose, int | np.integer) or verbose not in (0, 1, 2):
        raise ValueError(f"{entry_point}: verbose must be 0, 1 or 2, got {verbose!r}")
    return int(verbose)


def check_batch_size(batch_size: Any, entry_point: str) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size <= 0:
        raise ValueError(f"{entry_point}: batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


def check_x(model: Any, x: Any, entry_point: str, argument: str = "x") -> np.ndarray:
    """``x`` as a numeric, finite batch of the model's input shape (building the model from it if needed)."""
    where = f"{model.name}.{entry_point}"
    if not model.layers:
        raise ValueError(f"{where}: the model has no layers")
    if isinstance(x, list | tuple):
        x = as_rectangular_array(x, f"{where}: {argument}")
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{where}: {argument} must be a NumPy array, got {type(x).__name__}")
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{where}: {argument} must be numeric, got dtype {x.dtype}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{where}: {argument} must be a non-empty batch (samples, ...), got shape {x.shape}")
    if not model.built:
        model.build((None, *x.shape[1:]))
    expected = model.layers[0].input_shape
    if x.shape[1:] != expected:
        raise ValueError(f"{where}: {argument} must have shape (samples, {', '.join(map(str, expected))}) for this "
                         f"model, got {x.shape}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError(f"{where}: {argument} contains NaN or infinite values")
    return x


def check_xy(model: Any, x: Any, y: Any, entry_point: str, suffix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """``x`` as :func:`check_x` checks it and ``y`` as targets the model's loss accepts, as many as ``x``."""
    where = f"{model.name}.{entry_point}"
    x = check_x(model, x, entry_point, "x" + suffix)
    if y is None:
        raise ValueError(f"{where}: y{suffix} (the targets) is required")
    y = as_rectangular_array(y, f"{where}: y{suffix}")
    if y.dtype.kind not in "fiub":
        raise TypeError(f"{where}: y{suffix} must be numeric, got dtype {y.dtype}")
    if y.ndim == 0 or len(y) != len(x):
        raise ValueError(f"{where}: x{suffix} and y{suffix} must hold the same number of samples, got {len(x)} "
                         f"and {0 if y.ndim == 0 else len(y)}")
    y = model.loss.check_targets(y, model.layers[-1].output_shape, f"{where}: y{suffix}")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError(f"{where}: y{suffix} contains NaN or infinite values")
    return x, y


def check_model_weights(model: Any, weights: Any) -> list[tuple[Any, list[np.ndarray]]]:
    """``weights`` (a list shaped like ``model.get_weights()``) cut into ``(layer, its arrays)`` pairs, after
    checking the count and every shape, so that ``set_weights`` changes nothing unless all of them fit."""
    where = f"{model.name}.set_weights"
    if not isinstance(weights, list | tuple):
        raise TypeError(f"{where}: expected a list of arrays as get_weights() returns, got {type(weights).__name__}")
    weights = [as_rectangular_array(value, f"{where}: each weight") for value in weights]
    expected = sum(len(layer.weight_names) for layer in model.layers)
    if len(weights) != expected:
        raise ValueError(f"{where}: expected {expected} arrays, got {len(weights)}")
    position = 0
    pending = []
    for layer in model.layers:
        count = len(layer.weight_names)
        chunk = weights[position:position + count]
        for name, value in zip(layer.weight_names, chunk, strict=True):
            expected_shape = {**layer.params, **layer.state}[name].shape
            if np.shape(value) != expected_shape:
                raise ValueError(f"{where}: {layer.name}.{name} expects shape {expected_shape}, got {np.shape(value)}")
        pending.append((layer, layer.check_weights(chunk)))  # values too (finite real numbers), before any set
        position += count
    return pending
