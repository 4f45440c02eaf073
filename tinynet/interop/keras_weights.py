"""Keras's HDF5 weights files, read and written: Keras 3's ``.weights.h5`` and the legacy ``.h5`` layout.

* Keras 3 (``keras/src/saving/saving_lib.py``): ``/layers/<group>/vars/<i>``, one dataset per weight in
  ``get_weights`` order, where ``<group>`` is the layer's *class* in snake case with ``_1``, ``_2``... on repeats
  (``conv2d``, ``conv2d_1``), never its name; the model's optimizer may follow under ``/optimizer/vars/<i>``.
  The same layout is the ``model.weights.h5`` inside a ``.keras`` file.
* Legacy (``save_weights_to_hdf5_group`` in ``keras/engine/saving.py`` at 2.2.4): the root lists
  ``layer_names``, each layer's group its ``weight_names`` (see :mod:`tinynet.interop.keras_h5`). Keras 2 matched
  the layers that have weights by order; tinynet matches by name when every name matches, else by that order.

A name ending in ``.weights.h5`` gets Keras 3's layout, any other ``.h5`` the legacy one, as Keras 3 decides.
Reading takes whichever layout the file holds (a full-model ``.h5`` too, from its ``/model_weights``).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from tinynet.fileio import atomic_write, open_regular_file
from tinynet.interop import h5_reading
from tinynet.interop.dependencies import h5py as import_h5py
from tinynet.interop.errors import KerasFormatError, require_built
from tinynet.interop.keras_h5 import layer_arrays, write_model_weights
from tinynet.interop.keras_layers import keras_layer_config, keras_variable_groups

MAX_VARIABLES_PER_LAYER = 64


def is_keras3_weights_name(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(".weights.h5")


def save_weights(model: Any, path: str | os.PathLike) -> Path:
    """Write the model's weights in the layout its file name calls for (atomically)."""
    h5py = import_h5py()
    require_built(model, "save_weights")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as root:
        if is_keras3_weights_name(path):
            write_variables(root, model)
        else:
            write_model_weights(root, model)
    path = Path(path)
    with atomic_write(path) as file:
        file.write(buffer.getbuffer())  # a view, not a copy of the whole file
    return path


def write_variables(root: Any, model: Any) -> None:
    """Keras 3's ``/layers/<group>/vars/<i>`` layout (``/vars`` of the model itself is empty)."""
    root.create_group("vars").attrs["name"] = model.name
    layers_group = root.create_group("layers")
    for layer, group_name in zip(model.layers, keras_variable_groups(model), strict=True):
        keras_layer_config(layer)  # refuses a layer Keras has no class for
        variables = layers_group.create_group(group_name).create_group("vars")
        variables.attrs["name"] = layer.name
        for index, name in enumerate(layer.weight_names):
            variables.create_dataset(str(index), data=layer._weight(name))


def read_variables(root: Any, groups: list[str], where: str = "") -> list[list[h5_reading.Stored]]:
    """Per layer, the datasets of ``/layers/<group>/vars`` in index order (headers only)."""
    layers_group = h5_reading.child(root, "layers", where)
    result: list[list[h5_reading.Stored]] = []
    for group_name in groups:
        if not h5_reading.has_hard_child(layers_group, group_name):
            result.append([])  # a layer without weights; a layer that needs some is refused when built
            continue
        layer_group = h5_reading.child(layers_group, group_name, f"{where}/layers")
        result.append(variable_list(layer_group, f"{where}/layers/{group_name}"))
    return result


def variable_list(group: Any, where: str, kinds: str = "f") -> list[h5_reading.Stored]:
    if not h5_reading.has_hard_child(group, "vars"):
        return []
    variables = h5_reading.child(group, "vars", where)
    names = list(variables.keys())
    if len(names) > MAX_VARIABLES_PER_LAYER or sorted(names) != sorted(str(index) for index in range(len(names))):
        raise KerasFormatError(f"{where}/vars holds {len(names)} entries not named 0, 1, 2, ...")
    return [h5_reading.Stored(h5_reading.child(variables, str(index), f"{where}/vars"), f"{where}/vars/{index}",
                              kinds if index == 0 else "f")
            for index in range(len(names))]


def load_weights(model: Any, path: str | os.PathLike) -> None:
    """Set the model's weights from a Keras HDF5 weights file (either layout); all checked before any changes."""
    require_built(model, "load_weights")
    with open_regular_file(path) as (file, _size), h5_reading.open_file(file, "the file") as root:
        if h5_reading.has_hard_child(root, "layers"):
            held = read_variables(root, keras_variable_groups(model))
        else:
            group = h5_reading.child(root, "model_weights", "") if h5_reading.has_hard_child(root, "model_weights") \
                else root
            held = _legacy_arrays(group, model, "/model_weights" if group is not root else "")
        values: list[np.ndarray] = []
        for layer, arrays in zip(model.layers, held, strict=True):
            if len(arrays) != len(layer.weight_names):
                raise KerasFormatError(f"layer {layer.name!r} has {len(layer.weight_names)} weights, the file holds "
                                       f"{len(arrays)} arrays for it")
            shapes = [layer._weight(name).shape for name in layer.weight_names]
            for array, shape in zip(arrays, shapes, strict=True):  # every header before any data
                if array.shape != shape:
                    raise KerasFormatError(f"{array.where} has shape {array.shape}, layer {layer.name!r} expects "
                                           f"{shape}")
            values.extend(array.read(shape) for array, shape in zip(arrays, shapes, strict=True))
    model.set_weights(values)


def _legacy_arrays(group: Any, model: Any, where: str) -> list[list[h5_reading.Stored]]:
    names = h5_reading.name_list(group, "layer_names", where or "/")
    if names is None:
        raise KerasFormatError("it is neither a Keras 3 weights file (/layers) nor a legacy one (layer_names)")
    model_names = [layer.name for layer in model.layers]
    if set(model_names) <= set(names):
        return [layer_arrays(group, name, where) for name in model_names]
    # Keras 2's rule: the file's layers that hold weights, in order, against the model's layers with weights.
    file_layers = [arrays for arrays in (layer_arrays(group, name, where) for name in names) if arrays]
    weighted = [layer for layer in model.layers if layer.weight_names]
    if len(file_layers) != len(weighted):
        raise KerasFormatError(f"the file holds weights for {len(file_layers)} layers, the model has "
                               f"{len(weighted)} layers with weights (and the names do not match)")
    by_layer = iter(file_layers)
    return [next(by_layer) if layer.weight_names else [] for layer in model.layers]
