"""Keras 3's ``.keras`` file: a zip of ``metadata.json``, ``config.json`` and ``model.weights.h5``.

``config.json`` is the model's serialized config with its ``compile_config``; ``model.weights.h5`` holds the
layers' weights and the optimizer's variables in Keras 3's layout (:mod:`tinynet.interop.keras_weights`). Keras
writes the members stored, uncompressed (``keras/src/saving/saving_lib.py``, ``save_model``).

Reading a stranger's zip: only those three names may be present (another member is refused unread; Keras's
``assets/`` folder holds nothing for these layers); the JSON members may declare at most
:data:`MAX_JSON_BYTES`; the weights member, if compressed, at most :data:`MAX_EXPANSION` times its compressed
size (Keras's own bomb rule). The weights member is never inflated whole: h5py reads it through the zip as a
file, and only the datasets the config asks for, each checked from its header first (:mod:`h5_reading`).
"""

from __future__ import annotations

import datetime
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

from tinynet.fileio import atomic_write, open_regular_file
from tinynet.interop import h5_reading, keras_compile
from tinynet.interop.building import build_model, compile_model
from tinynet.interop.dependencies import h5py as import_h5py
from tinynet.interop.errors import KerasFormatError
from tinynet.interop.keras_h5 import KERAS_VERSION
from tinynet.interop.keras_layers import keras_sequential_config, sequential_from_keras
from tinynet.interop.keras_weights import read_variables, variable_list, write_variables
from tinynet.layers.base import snake_case

CONFIG_MEMBER, METADATA_MEMBER, WEIGHTS_MEMBER = "config.json", "metadata.json", "model.weights.h5"
MAX_JSON_BYTES = 16 * 2**20
MAX_EXPANSION = 100


def load_keras_model(path: str | os.PathLike) -> Any:
    """Read a Keras 3 ``.keras`` file into a compiled (when the file was) tinynet Sequential."""
    with open_regular_file(path) as (file, _size):
        try:
            archive = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            raise KerasFormatError(f"it is not a zip file, as a .keras file is ({error})") from None
        with archive:
            members = _checked_members(archive)
            config = _json_member(archive, members[CONFIG_MEMBER])
            if not isinstance(config, dict):
                raise KerasFormatError(f"{CONFIG_MEMBER} is not a JSON object")
            translated = sequential_from_keras(config)
            if WEIGHTS_MEMBER not in members:
                raise KerasFormatError(f"it has no {WEIGHTS_MEMBER} member")
            with archive.open(members[WEIGHTS_MEMBER]) as weights, \
                    h5_reading.open_file(weights, WEIGHTS_MEMBER) as root:
                groups = _groups([keras_class for _, _, keras_class in translated.layers])
                model = build_model(translated, read_variables(root, groups, WEIGHTS_MEMBER))
                compile_config = config.get("compile_config")
                if compile_config is not None and compile_config != {}:  # Keras 3 writes {} for an uncompiled model
                    _compile(model, compile_config)
                    if h5_reading.has_hard_child(root, "optimizer"):
                        optimizer_group = h5_reading.child(root, "optimizer", WEIGHTS_MEMBER)
                        stored = variable_list(optimizer_group, f"{WEIGHTS_MEMBER}/optimizer", kinds="fiu")
                        keras_compile.restore_optimizer_state(model, [array.read() for array in stored])
    return model


def _groups(keras_classes: list[str]) -> list[str]:
    used: dict[str, int] = {}
    groups = []
    for class_name in keras_classes:
        base = snake_case(class_name)
        count = used.get(base, 0)
        groups.append(base if count == 0 else f"{base}_{count}")
        used[base] = count + 1
    return groups


def _compile(model: Any, compile_config: Any) -> None:
    if not isinstance(compile_config, dict):
        raise KerasFormatError("compile_config is not a JSON object")
    optimizer = compile_config.get("optimizer")
    if isinstance(optimizer, str):
        optimizer = {"class_name": {"sgd": "SGD"}.get(optimizer.lower(), optimizer), "config": {}}
    if not isinstance(optimizer, dict):
        raise KerasFormatError("compile_config.optimizer is not a serialized optimizer")
    from tinynet.interop.keras_layers import _check_builtin

    _check_builtin(optimizer, "the optimizer")
    compile_model(model, keras_compile.optimizer_from_keras(optimizer.get("class_name"), optimizer.get("config")),
                  keras_compile.loss_from_keras(compile_config.get("loss")),
                  keras_compile.metrics_from_keras(compile_config.get("metrics")))


def _checked_members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        if info.filename in members:
            raise KerasFormatError(f"member {info.filename!r:.80} appears twice")
        if info.filename not in (CONFIG_MEMBER, METADATA_MEMBER, WEIGHTS_MEMBER):
            raise KerasFormatError(f"member {info.filename!r:.80} is not one a .keras file of a Sequential holds "
                                   f"({CONFIG_MEMBER}, {METADATA_MEMBER}, {WEIGHTS_MEMBER})")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise KerasFormatError(f"member {info.filename} uses compression method {info.compress_type}")
        if info.filename.endswith(".json") and info.file_size > MAX_JSON_BYTES:
            raise KerasFormatError(f"member {info.filename} declares {info.file_size:,} bytes, more than the "
                                   f"{MAX_JSON_BYTES:,} allowed")
        if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > MAX_EXPANSION * max(info.compress_size, 1):
            raise KerasFormatError(f"member {info.filename} declares {info.file_size:,} bytes from "
                                   f"{info.compress_size:,} compressed: a zip bomb")
        members[info.filename] = info
    if CONFIG_MEMBER not in members:
        raise KerasFormatError(f"it has no {CONFIG_MEMBER} member")
    return members


def _json_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Any:
    try:
        with archive.open(info) as member:
            data = member.read(info.file_size + 1)  # never more than declared (+1 to notice a lie)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:  # a CRC mismatch among them
        raise KerasFormatError(f"member {info.filename} is corrupt ({error})") from None
    if len(data) != info.file_size:
        raise KerasFormatError(f"member {info.filename} holds {len(data)} bytes, it declares {info.file_size}")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as error:
        raise KerasFormatError(f"member {info.filename} is not valid JSON ({type(error).__name__})") from None


# ------------------------------------------------------------------------------------------------------ writing
def save_keras_model(model: Any, path: str | os.PathLike) -> Path:
    """Write ``model`` as a Keras 3 ``.keras`` file (atomically): ``keras.saving.load_model`` reads it."""
    h5py = import_h5py()
    config = keras_sequential_config(model)
    compile_config = keras_compile.keras_compile_config(model)
    if compile_config is not None:
        config["compile_config"] = compile_config
    weights = io.BytesIO()
    with h5py.File(weights, "w") as root:
        write_variables(root, model)
        if compile_config is not None:
            variables = root.create_group("optimizer").create_group("vars")
            variables.attrs["name"] = type(model.optimizer).__name__.lower()
            for index, (_, value) in enumerate(keras_compile.keras_optimizer_variables(model)):
                variables.create_dataset(str(index), data=value)
    metadata = {"keras_version": KERAS_VERSION, "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(METADATA_MEMBER, json.dumps(metadata))
        archive.writestr(CONFIG_MEMBER, json.dumps(config))
        archive.writestr(WEIGHTS_MEMBER, weights.getbuffer())
    path = Path(path)
    with atomic_write(path) as file:
        file.write(buffer.getbuffer())  # a view, not a copy of the whole file
    return path
