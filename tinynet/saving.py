"""Saving and loading weights (``model.save_weights`` / ``model.load_weights`` in Keras).

The weights file is a NumPy ``.npz`` archive with one array per weight, named ``<layer>/<weight>`` in model
order, written atomically (see :mod:`tinynet.fileio`): an interrupted save leaves the previous file whole.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tinynet.fileio import atomic_write


def save_weights(model: Any, path: str | os.PathLike) -> Path:
    """Write every layer's weights to ``path`` (exactly that path; no extension is added)."""
    arrays = {f"{layer.name}/{name}": layer._weight(name) for layer in model.layers for name in layer.weight_names}
    path = Path(path)
    with atomic_write(path) as file:
        np.savez(file, **arrays)
    return path


def load_weights(model: Any, path: str | os.PathLike) -> None:
    """Set the model's weights from a file written by :func:`save_weights`, matching by layer order.

    Everything is checked (count, names, shapes) before any weight changes.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"load_weights: {path} is not a readable tinynet weights file ({error})") from error
    expected = [(layer, name) for layer in model.layers for name in layer.weight_names]
    if len(arrays) != len(expected):
        raise ValueError(f"load_weights: {path} holds {len(arrays)} arrays, the model has {len(expected)} weights")
    values = list(arrays.values())
    model.set_weights(values)
