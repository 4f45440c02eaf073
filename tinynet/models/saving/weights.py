"""Bare weights: a plain ``.npz`` with one array per weight, named ``<layer>/<weight>`` in model order, written
atomically; read back matched by name (or by position for a twin), everything checked before a weight changes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from tinynet.archive import FLOAT_DTYPES, MAX_HEADER_BYTES, NpzArchive
from tinynet.fileio import atomic_write, open_regular_file
from tinynet.models.saving.file_format import checked_path, first_names


def save_weights(model: Any, path: str | os.PathLike) -> Path:
    """Write every layer's weights to ``path`` (exactly that path; no extension is added)."""
    arrays = {f"{layer.name}/{name}": layer._weight(name) for layer in model.layers for name in layer.weight_names}
    path = Path(path)
    with atomic_write(path) as file:
        np.savez(file, **arrays)
    return path


def load_weights(model: Any, path: str | os.PathLike) -> None:
    """Set the model's weights from a file written by :func:`save_weights`.

    Arrays are matched by name, ``<layer>/<weight>``, whatever their order in the file; every weight of the model
    must be there and nothing else. One exception keeps the usual "train, save, load into a fresh twin" working:
    when none of the file's layer names is a layer of the model (a twin built in the same process gets other
    automatic names: ``dense_3`` for ``dense_1``), the file's layers are matched by position, provided each holds
    the same weight names in the same order. Everything (names, shapes, dtypes, values: finite real numbers) is
    checked before any weight changes, and an array's shape is checked from its header before it is read.
    """
    path = checked_path(path, "load_weights")
    model._require_built("load_weights")
    expected = [(layer, name) for layer in model.layers for name in layer.weight_names]
    # Each array's declared size can be at most a float64 copy of the weight plus its .npy header.
    most_bytes = sum(layer._weight(name).size * 8 + MAX_HEADER_BYTES + 16 for layer, name in expected)
    try:
        with open_regular_file(path) as (file, size):
            archive = NpzArchive(file, size, allowed_dtypes={None: FLOAT_DTYPES}, allow_deflate=True,
                                 max_total_bytes=most_bytes)
            keys = _weights_file_order(archive.keys, expected)
            values = [archive.read(key, layer._weight(name).shape)
                      for key, (layer, name) in zip(keys, expected, strict=True)]
        model.set_weights(values)
    except FileNotFoundError:
        raise FileNotFoundError(f"load_weights: no such file: {path}") from None
    except ValueError as error:  # ArchiveError, NotARegularFileError and set_weights' own refusals among them
        raise ValueError(f"load_weights: {path}: {error}") from None


def _weights_file_order(keys: list[str], expected: list[tuple[Any, str]]) -> list[str]:
    """The file's array names in the order of ``expected`` (the model's weights); see :func:`load_weights`."""
    model_keys = [f"{layer.name}/{name}" for layer, name in expected]
    if sorted(keys) == sorted(model_keys):
        return model_keys
    for key in keys:
        layer_name, _, weight_name = key.rpartition("/")
        if not layer_name or not weight_name:
            raise ValueError(f"the array {key!r} is not named <layer>/<weight> as save_weights names arrays")
    file_layers = _grouped_by_layer(keys)
    model_layers = _grouped_by_layer(model_keys)
    twin = (not set(file_layers) & {layer.name for layer, _ in expected}
            and list(file_layers.values()) == list(model_layers.values()))
    if twin:
        return [f"{layer_name}/{weight_name}" for layer_name, names in file_layers.items() for weight_name in names]
    missing = [key for key in model_keys if key not in keys]
    unknown = [key for key in keys if key not in model_keys]
    raise ValueError(f"its arrays do not match the model's weights: missing {first_names(missing)}, unknown "
                     f"{first_names(unknown)} (arrays are matched by name, <layer>/<weight>)")


def _grouped_by_layer(keys: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for key in keys:
        layer_name, _, weight_name = key.rpartition("/")
        groups.setdefault(layer_name, []).append(weight_name)
    return groups
