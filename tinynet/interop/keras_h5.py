"""Keras's legacy full-model ``.h5`` file: read Keras 2's and Keras 3's, write the form Keras 3 loads.

The layout (``_serialize_model`` in ``keras/engine/saving.py`` at tag 2.2.4; Keras 3 keeps it in
``keras/src/legacy/saving/legacy_h5_format.py``)::

    /                    attrs: keras_version, backend, model_config (JSON), training_config (JSON, if compiled)
    /model_weights       attrs: layer_names (Keras 2 may split it: layer_names0, layer_names1, ...)
    /model_weights/<layer name>          attrs: weight_names, e.g. ["conv2d_1/kernel:0", "conv2d_1/bias:0"]
    /model_weights/<layer name>/<weight name>   one dataset per weight ("/" in the name makes subgroups)
    /optimizer_weights   attrs: weight_names; the optimizer's variables in order (see keras_compile)

Layers are matched to their groups by name, in the config's order; a layer's arrays are its ``weight_names``, in
order, which is Keras's ``get_weights`` order and tinynet's.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from tinynet.fileio import atomic_write, open_regular_file
from tinynet.interop import h5_reading, keras_compile
from tinynet.interop.building import build_model, compile_model
from tinynet.interop.dependencies import h5py as import_h5py
from tinynet.interop.errors import KerasFormatError
from tinynet.interop.keras_layers import keras_layer_config, keras_sequential_config, sequential_from_keras

#: What a file tinynet writes says in ``keras_version``: the format is Keras 3's.
KERAS_VERSION = "3.0.0"


def load_h5_model(path: str | os.PathLike) -> Any:
    """Read a Keras full-model ``.h5`` file into a compiled (when the file was) tinynet Sequential."""
    with open_regular_file(path) as (file, _size), h5_reading.open_file(file, "the file") as root:
        return model_from_h5(root)


def model_from_h5(root: Any) -> Any:
    model_config = h5_reading.json_attribute(root, "model_config", "/")
    if model_config is None:
        raise KerasFormatError("it has no model_config attribute: a weights file? use model.load_weights")
    translated = sequential_from_keras(model_config, _keras_major(root))
    weights_group = h5_reading.child(root, "model_weights", "")
    stored = [layer_arrays(weights_group, kwargs.get("name"), "/model_weights")
              for _, kwargs, _ in translated.layers]
    model = build_model(translated, stored)
    training = h5_reading.json_attribute(root, "training_config", "/")
    if training is not None:
        if not isinstance(training, dict):
            raise KerasFormatError("training_config is not a JSON object")
        optimizer_config = training.get("optimizer_config")
        if not isinstance(optimizer_config, dict):
            raise KerasFormatError("training_config.optimizer_config is not a JSON object")
        optimizer = keras_compile.optimizer_from_keras(optimizer_config.get("class_name"),
                                                       optimizer_config.get("config"))
        compile_model(model, optimizer, keras_compile.loss_from_keras(training.get("loss")),
                      keras_compile.metrics_from_keras(training.get("metrics")))
        if h5_reading.has_hard_child(root, "optimizer_weights"):
            keras_compile.restore_optimizer_state(model, optimizer_arrays(root))
    return model


def _keras_major(root: Any) -> int | None:
    """The major version in the file's ``keras_version`` attribute ("2.2.4" -> 2), None when absent or unreadable."""
    version = h5_reading.attribute(root, "keras_version", "/")
    if isinstance(version, bytes | np.bytes_):
        version = bytes(version).decode("utf-8", errors="replace")
    major = version.split(".")[0] if isinstance(version, str) else ""
    if not (major.isascii() and major.isdigit() and len(major) <= 3):
        return None
    return int(major)


def layer_arrays(group: Any, layer_name: Any, where: str) -> list[h5_reading.Stored]:
    """The datasets of one layer's group, in its ``weight_names`` order (headers only, nothing read)."""
    if not isinstance(layer_name, str):
        raise KerasFormatError(f"{where}: a layer without a name cannot be matched to its weights")
    layer_group = h5_reading.child(group, layer_name, where)
    where = f"{where}/{layer_name}"
    names = h5_reading.name_list(layer_group, "weight_names", where) or []
    return [h5_reading.Stored(h5_reading.path(layer_group, name, where), f"{where}/{name}") for name in names]


def optimizer_arrays(root: Any) -> list[np.ndarray]:
    group = h5_reading.child(root, "optimizer_weights", "")
    names = h5_reading.name_list(group, "weight_names", "/optimizer_weights") or []
    arrays = []
    for position, name in enumerate(names):
        kinds = "fiu" if position == 0 else "f"  # the first is the iteration count
        stored = h5_reading.Stored(h5_reading.path(group, name, "/optimizer_weights"),
                                   f"/optimizer_weights/{name}", kinds)
        if np.prod(stored.shape) > 2**31:
            raise KerasFormatError(f"/optimizer_weights/{name} has shape {stored.shape}, too large for a slot")
        arrays.append(stored)
    return [stored.read() for stored in arrays]  # read after every header passed


# ------------------------------------------------------------------------------------------------------ writing
def save_h5_model(model: Any, path: str | os.PathLike) -> Path:
    """Write ``model`` as Keras 3's legacy ``.h5`` (atomically): ``keras.saving.load_model`` reads it."""
    h5py = import_h5py()
    config = keras_sequential_config(model)
    legacy_config = {"class_name": "Sequential", "config": config["config"]}
    compile_config = keras_compile.keras_compile_config(model)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as root:
        root.attrs["keras_version"] = KERAS_VERSION
        root.attrs["backend"] = "numpy"
        root.attrs["model_config"] = json.dumps(legacy_config)
        write_model_weights(root.create_group("model_weights"), model)
        if compile_config is not None:
            optimizer = compile_config["optimizer"]
            training = {key: value for key, value in compile_config.items() if key != "optimizer"}
            training["optimizer_config"] = {"class_name": optimizer["class_name"], "config": optimizer["config"]}
            root.attrs["training_config"] = json.dumps(training)
            group = root.create_group("optimizer_weights")
            variables = keras_compile.keras_optimizer_variables(model)
            group.attrs["weight_names"] = [name.encode("utf8") for name, _ in variables]
            for name, value in variables:
                group.create_dataset(name, data=value)
    path = Path(path)
    with atomic_write(path) as file:
        file.write(buffer.getbuffer())  # a view, not a copy of the whole file
    return path


def write_model_weights(group: Any, model: Any) -> None:
    """Keras's per-layer weight groups (``save_weights_to_hdf5_group``): also the legacy weights-file layout."""
    group.attrs["layer_names"] = [layer.name.encode("utf8") for layer in model.layers]
    group.attrs["backend"] = "numpy"
    group.attrs["keras_version"] = KERAS_VERSION
    for layer in model.layers:
        keras_layer_config(layer)  # refuses a layer Keras has no class for, before anything is written
        layer_group = group.create_group(layer.name)
        names = [f"{model.name}/{layer.name}/{name}" for name in layer.weight_names]
        layer_group.attrs["weight_names"] = [name.encode("utf8") for name in names]
        for name, weight in zip(names, layer.weight_names, strict=True):
            layer_group.create_dataset(name, data=layer._weight(weight))
