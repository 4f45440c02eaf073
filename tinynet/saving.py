"""Saving and loading: whole models (``model.save`` / ``load_model``) and bare weights (``save_weights``).

A model file holds everything needed to carry on training exactly where it stopped:

* the architecture: the model's name, whether it runs fused stages (``model.fuse``) and, per layer, its class
  name and ``get_config()``;
* the weights, per layer, by name (``kernel``, ``bias``, state arrays);
* the compile settings: loss, metrics, the optimizer's class and ``get_config()``;
* the optimizer's state: ``iterations`` and every per-parameter slot (SGD's ``velocities``);
* the random streams: the model's shuffle generator and every ``numpy.random.Generator`` attribute of a layer
  (``Dropout.generator``), so epoch ``e`` shuffles and drops out the same whether or not the process restarted;
* ``epochs_done`` (the ``initial_epoch`` to continue from) and the history of the epochs done so far.

Layout of the file (all integers little-endian)::

    offset  size  field
    0       8     MAGIC            b"\\x93TINYNET"
    8       4     format version   uint32 (FORMAT_VERSION)
    12      8     payload length   uint64, bytes after the header
    20      32    SHA-256          of the payload
    52      ...   payload          an uncompressed np.savez archive: the arrays, plus the JSON document stored as
                                   a uint8 array under DOCUMENT_KEY; read back with allow_pickle=False

JSON holds the configuration and the generator states (PCG64's 128-bit integers are plain JSON integers); the
document names the archive entry of each array. The file is written through :func:`tinynet.fileio.atomic_write`,
so an interrupted save leaves the previous file whole, and it is written at exactly the path given (no extension
is added). :func:`load_model` checks the magic bytes, the version, the length and the checksum before it reads
anything, and raises a ``ValueError`` naming the file and the problem rather than return a half-built model.

Not saved: the random streams of seeded initializers (they only matter when a layer is built, and a loaded model
is already built), and the process-wide seed of :mod:`tinynet.backend`.

Bare weights (:func:`save_weights` / :func:`load_weights`) stay a plain ``.npz`` with one array per weight, named
``<layer>/<weight>`` in model order, also written atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tinynet import backend, losses, optimizers
from tinynet import layers as layers_module
from tinynet.fileio import atomic_write

MAGIC = b"\x93TINYNET"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sIQ32s")
HEADER_SIZE = _HEADER.size  # 52 bytes
DOCUMENT_KEY = "model.json"
_ZIP_MAGIC = b"PK\x03\x04"


# ------------------------------------------------------------------------------------------------ bare weights
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


# ------------------------------------------------------------------------------------------------ whole models
def save_model(model: Any, path: str | os.PathLike) -> Path:
    """Write ``model`` (architecture, weights, compile settings, optimizer and random state) to ``path``.

    The file appears complete or not at all: it is written beside ``path`` and renamed over it.
    """
    path = _checked_path(path, "save_model")
    arrays: dict[str, np.ndarray] = {}

    def store(array: np.ndarray) -> str:
        array = np.asarray(array)
        if array.dtype.hasobject:
            raise TypeError(f"save_model: cannot store an array of dtype {array.dtype}")
        key = f"array_{len(arrays)}"
        arrays[key] = array
        return key

    document = {
        "format": "tinynet.model",
        "format_version": FORMAT_VERSION,
        "tinynet_version": _tinynet_version(),
        "model": _model_document(model, store),
        "compile": _compile_document(model, store),
        "epochs_done": int(getattr(model, "epochs_done", 0)),
        "history": _history_document(model),
    }
    try:
        text = json.dumps(document, default=_json_default, allow_nan=True)
    except TypeError as error:
        raise TypeError(f"save_model: {model.name} cannot be written as JSON ({error}); every layer's get_config() "
                        "must hold numbers, strings, None, lists, tuples and dicts") from error
    arrays[DOCUMENT_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, len(payload), hashlib.sha256(payload).digest())
    with atomic_write(path) as file:
        file.write(header)
        file.write(payload)
    return path


def load_model(path: str | os.PathLike, custom_objects: dict[str, Any] | None = None) -> Any:
    """Rebuild a model saved by :func:`save_model` (``model.save``), compiled and ready to continue training.

    ``custom_objects`` maps class names to classes for layers, losses or optimizers that are not part of tinynet
    (Keras's argument of the same name). Continue training with ``model.fit(..., initial_epoch=model.epochs_done)``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a tinynet model file, is truncated or corrupt, has an unsupported format
            version, or names a class that is neither in tinynet nor in ``custom_objects``. The message names the
            file and the problem.
    """
    path = _checked_path(path, "load_model")
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(f"load_model: custom_objects must be a dict of name -> class, got "
                        f"{type(custom_objects).__name__}")
    custom_objects = dict(custom_objects or {})
    if path.is_dir():
        raise ValueError(f"load_model: {path} is a folder; expected a model file written by model.save")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"load_model: no such file: {path}") from None
    payload = _checked_payload(data, path)
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"load_model: {path}: the payload is not a readable archive ({error})") from error
    if DOCUMENT_KEY not in arrays:
        raise ValueError(f"load_model: {path}: the payload has no {DOCUMENT_KEY} document")
    try:
        document = json.loads(arrays.pop(DOCUMENT_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"load_model: {path}: the {DOCUMENT_KEY} document is not valid JSON ({error})") from error
    try:
        with _random_streams_untouched():
            return _model_from_document(document, arrays, custom_objects)
    except _FormatError as error:
        raise ValueError(f"load_model: {path}: {error}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        raise ValueError(f"load_model: {path}: the model document is malformed or inconsistent "
                         f"({type(error).__name__}: {error})") from error


@contextlib.contextmanager
def _random_streams_untouched():
    """Rebuilding layers draws initial weights and spawns generators; do it from throwaway streams, so that loading
    a model leaves the process's seeded streams (and so the models built after it) exactly as they were."""
    root, global_generator = backend._root_seed_sequence, backend._global_generator
    backend._root_seed_sequence, backend._global_generator = np.random.SeedSequence(0), None
    try:
        yield
    finally:
        backend._root_seed_sequence, backend._global_generator = root, global_generator


def _checked_path(path: Any, entry_point: str) -> Path:
    if not isinstance(path, str | os.PathLike) or not str(path):
        raise TypeError(f"{entry_point}: path must be a file path (str or os.PathLike), got {path!r}")
    return Path(path)


def _checked_payload(data: bytes, path: Path) -> bytes:
    """The payload after the header, once magic, version, length and checksum are all right."""
    if not data:
        raise ValueError(f"load_model: {path} is empty (0 bytes): not a tinynet model file")
    if data[:len(MAGIC)] != MAGIC[:len(data)]:
        hint = ""
        if data.startswith(_ZIP_MAGIC):
            hint = " (it is a zip/npz archive: a weights file from save_weights? use load_weights for those)"
        raise ValueError(f"load_model: {path} is not a tinynet model file: it does not start with the tinynet "
                         f"magic bytes{hint}")
    if len(data) < HEADER_SIZE:
        raise ValueError(f"load_model: {path} is truncated: {len(data)} bytes, shorter than the "
                         f"{HEADER_SIZE}-byte header")
    _, version, length, digest = _HEADER.unpack_from(data)
    if version != FORMAT_VERSION:
        advice = "a newer tinynet wrote it; upgrade tinynet" if version > FORMAT_VERSION else "it is not supported"
        raise ValueError(f"load_model: {path} has format version {version}, this tinynet reads version "
                         f"{FORMAT_VERSION} ({advice})")
    payload = data[HEADER_SIZE:]
    if len(payload) < length:
        raise ValueError(f"load_model: {path} is truncated: the header announces {length} payload bytes, "
                         f"the file holds {len(payload)}")
    if len(payload) > length:
        raise ValueError(f"load_model: {path} is corrupt: {len(payload) - length} unexpected bytes after the "
                         f"{length}-byte payload")
    if hashlib.sha256(payload).digest() != digest:
        raise ValueError(f"load_model: {path} is corrupt: the SHA-256 of its payload does not match the one in "
                         "its header")
    return payload


def _tinynet_version() -> str:
    import tinynet  # the package root imports this module's importers: read its version only when saving

    return str(getattr(tinynet, "__version__", "unknown"))


class _FormatError(Exception):
    """A problem with the document that has a precise message (turned into a ValueError naming the file)."""


# ------------------------------------------------------------------------------------------------ JSON helpers
def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.name}
    if isinstance(value, np.dtype):
        return value.name
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON serializable")


def _from_json(value: Any) -> Any:
    """Undo :func:`_json_default` for arrays (found inside generator states such as MT19937's key)."""
    if isinstance(value, dict):
        if set(value) == {"__ndarray__", "dtype"}:
            return np.asarray(value["__ndarray__"], dtype=value["dtype"])
        return {key: _from_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    return value


# ------------------------------------------------------------------------------------------------ random state
def generator_state(generator: np.random.Generator) -> dict[str, Any]:
    """The full state of a NumPy Generator as a JSON-ready dict (``bit_generator`` names its class)."""
    return generator.bit_generator.state


def restore_generator(state: dict[str, Any], existing: Any = None) -> np.random.Generator:
    """A Generator in exactly ``state``: ``existing`` itself when it has the same bit generator, else a new one."""
    state = _from_json(state)
    name = state.get("bit_generator") if isinstance(state, dict) else None
    bit_generator_class = getattr(np.random, str(name), None)
    if not (isinstance(bit_generator_class, type) and issubclass(bit_generator_class, np.random.BitGenerator)):
        raise _FormatError(f"unknown random bit generator {name!r}")
    if isinstance(existing, np.random.Generator) and type(existing.bit_generator) is bit_generator_class:
        generator = existing
    else:
        generator = np.random.Generator(bit_generator_class())
    generator.bit_generator.state = state
    return generator


def _layer_generators(layer: Any) -> dict[str, np.random.Generator]:
    return {name: value for name, value in vars(layer).items() if isinstance(value, np.random.Generator)}


# ------------------------------------------------------------------------------------------------ writing parts
def _model_document(model: Any, store) -> dict[str, Any]:
    layer_documents = []
    for layer in model.layers:
        layer_documents.append({
            "class_name": type(layer).__name__,
            "config": layer.get_config(),
            "built": bool(layer.built),
            "input_shape": list(layer.input_shape) if layer.built else None,
            "weights": {name: store(layer._weight(name)) for name in layer.weight_names} if layer.built else {},
            "generators": {name: generator_state(gen) for name, gen in _layer_generators(layer).items()},
        })
    return {
        "class_name": type(model).__name__,
        "name": model.name,
        "layers": layer_documents,
        "shuffle_generator": generator_state(model._shuffle_generator),
        "fuse": bool(getattr(model, "fuse", True)),  # the fused stages round differently: part of a run's identity
    }


def _metric_names(model: Any) -> list[str]:
    accuracy = getattr(model, "_accuracy", None)
    if accuracy is None:
        return []
    # compile(metrics=['accuracy']) resolves to the loss's own accuracy; anything else was named explicitly.
    default = getattr(model.loss, "accuracy_metric", None)
    return ["accuracy"] if accuracy.__name__ == default else [accuracy.__name__]


def _compile_document(model: Any, store) -> dict[str, Any] | None:
    if model.loss is None or model.optimizer is None:
        return None
    optimizer = model.optimizer
    if not hasattr(optimizer, "get_config"):
        raise TypeError(f"save_model: the optimizer {type(optimizer).__name__} has no get_config()")
    if hasattr(optimizer, "get_slots"):
        # This model's slots only: the optimizer may also train other models, whose layers can have the same names.
        named_slots = optimizer.get_slots(model.layers)
    else:  # an optimizer of the user's keeping {(layer name, parameter name): array} dicts it declares
        named_slots = {attribute: getattr(optimizer, attribute) for attribute in getattr(optimizer, "slot_names", ())
                       if _is_parameter_slot(getattr(optimizer, attribute, None))}
    slots = {attribute: [[layer_name, param_name, store(array)] for (layer_name, param_name), array in named.items()]
             for attribute, named in named_slots.items()}
    return {
        "loss": {"class_name": type(model.loss).__name__, "name": model.loss.name, "config": model.loss.get_config()},
        "metrics": _metric_names(model),
        "optimizer": {
            "class_name": type(optimizer).__name__,
            "config": optimizer.get_config(),
            "iterations": int(getattr(optimizer, "iterations", 0)),
            "slots": slots,
        },
    }


def _is_parameter_slot(value: Any) -> bool:
    """A dict ``{(layer name, parameter name): array}``: SGD's velocities, or any optimizer's moments."""
    return isinstance(value, dict) and all(
        isinstance(key, tuple) and len(key) == 2 and all(isinstance(part, str) for part in key)
        and isinstance(array, np.ndarray)
        for key, array in value.items()
    )


def merged_history(model: Any) -> tuple[list[int], dict[str, list[float]]]:
    """Every epoch recorded so far: a loaded model's saved history, continued by the last ``fit``'s.

    Epochs of the saved history at or after the first epoch of the last fit are replaced by the new ones.
    """
    epochs: list[int] = []
    history: dict[str, list[float]] = {}
    restored = getattr(model, "_restored_history", None)
    current = getattr(model, "history", None)
    sources = [source for source in (restored, current) if source is not None]
    if len(sources) == 2 and sources[0] is sources[1]:
        sources = sources[:1]
    for source in sources:
        if not source.epoch:
            continue
        first = source.epoch[0]
        keep = [row for row, epoch in enumerate(epochs) if epoch < first]
        epochs = [epochs[row] for row in keep]
        history = {key: [values[row] for row in keep] for key, values in history.items()}
        for row, epoch in enumerate(source.epoch):
            epochs.append(int(epoch))
            for key in [*history, *(key for key in source.history if key not in history)]:
                column = source.history.get(key)
                history.setdefault(key, [None] * (len(epochs) - 1))
                history[key].append(float(column[row]) if column is not None and row < len(column) else None)
    return epochs, history


def _history_document(model: Any) -> dict[str, Any]:
    epochs, history = merged_history(model)
    return {"epoch": epochs, "history": history}


# ------------------------------------------------------------------------------------------------ reading parts
def _lookup_class(class_name: Any, custom_objects: dict[str, Any], module: Any, kind: str) -> type:
    if not isinstance(class_name, str):
        raise _FormatError(f"a {kind} class name must be a string, got {class_name!r}")
    if class_name in custom_objects:
        return custom_objects[class_name]
    found = getattr(module, class_name, None)
    if isinstance(found, type):
        return found
    raise _FormatError(f"unknown {kind} class {class_name!r}; pass it in custom_objects={{{class_name!r}: ...}}")


def _layer_class(class_name: Any, custom_objects: dict[str, Any]) -> type:
    if isinstance(class_name, str) and class_name in custom_objects:
        return custom_objects[class_name]
    try:
        return layers_module.get(class_name)
    except (ValueError, TypeError, KeyError):
        raise _FormatError(f"unknown layer class {class_name!r}; pass it in "
                           f"custom_objects={{{class_name!r}: YourLayer}}") from None


def _array(arrays: dict[str, np.ndarray], key: Any, what: str) -> np.ndarray:
    if key not in arrays:
        raise _FormatError(f"the array of {what} ({key!r}) is missing from the payload")
    return arrays[key]


def _model_from_document(document: dict, arrays: dict[str, np.ndarray], custom_objects: dict[str, Any]) -> Any:
    from tinynet.callbacks import History
    from tinynet.models.sequential import Sequential

    if not isinstance(document, dict) or document.get("format") != "tinynet.model":
        raise _FormatError("the document does not describe a tinynet model")
    if document.get("format_version") != FORMAT_VERSION:
        raise _FormatError(f"the document has format version {document.get('format_version')!r}, expected "
                           f"{FORMAT_VERSION}")
    model_document = document["model"]
    model_class = custom_objects.get(model_document["class_name"], Sequential)
    layers = []
    for position, layer_document in enumerate(model_document["layers"]):
        layer_class = _layer_class(layer_document["class_name"], custom_objects)
        try:
            layer = layer_class.from_config(dict(layer_document["config"]))
        except (TypeError, ValueError) as error:
            raise _FormatError(f"layer {position} ({layer_document['class_name']}) cannot be rebuilt from its "
                               f"config: {error}") from error
        if layer_document["built"] and not layer.built:
            layer.build(tuple(layer_document["input_shape"]))
        layers.append(layer)
    model = model_class(layers, name=model_document["name"])
    if layers and all(document_["built"] for document_ in model_document["layers"]) and not model.built:
        model.build((None, *model_document["layers"][0]["input_shape"]))

    # Weights: check every name and shape before anything is set.
    pending = []
    for layer, layer_document in zip(model.layers, model_document["layers"], strict=True):
        saved = layer_document["weights"]
        if layer_document["built"] and sorted(saved) != sorted(layer.weight_names):
            raise _FormatError(f"layer {layer.name!r} has weights {layer.weight_names}, the file holds "
                               f"{sorted(saved)}")
        for name, key in saved.items():
            value = _array(arrays, key, f"{layer.name}.{name}")
            if value.shape != layer._weight(name).shape:
                raise _FormatError(f"weight {layer.name}.{name} has shape {value.shape} in the file, the rebuilt "
                                   f"layer expects {layer._weight(name).shape}")
            pending.append((layer, name, value))
    for layer, name, value in pending:
        layer._weight(name)[...] = value
    for layer, layer_document in zip(model.layers, model_document["layers"], strict=True):
        for attribute, state in layer_document["generators"].items():
            setattr(layer, attribute, restore_generator(state, getattr(layer, attribute, None)))
    model._shuffle_generator = restore_generator(model_document["shuffle_generator"], model._shuffle_generator)
    model.fuse = bool(model_document.get("fuse", True))  # files written before it was recorded: the default

    compile_document = document.get("compile")
    if compile_document is not None:
        loss = _rebuild_loss(compile_document["loss"], custom_objects)
        optimizer = _rebuild_optimizer(compile_document["optimizer"], arrays, custom_objects, model)
        model.compile(optimizer=optimizer, loss=loss, metrics=list(compile_document["metrics"]))

    model.epochs_done = int(document.get("epochs_done", 0))
    history_document = document.get("history") or {"epoch": [], "history": {}}
    history = History()
    history.epoch = [int(epoch) for epoch in history_document["epoch"]]
    history.history = {key: list(values) for key, values in history_document["history"].items()}
    history.set_model(model)
    model.history = history
    model._restored_history = history
    return model


def _rebuild_loss(loss_document: dict, custom_objects: dict[str, Any]) -> Any:
    class_name, config = loss_document["class_name"], loss_document.get("config") or {}
    if class_name in custom_objects:
        return custom_objects[class_name](**config)
    loss_class = getattr(losses, class_name, None)
    if isinstance(loss_class, type) and issubclass(loss_class, losses.Loss):
        return loss_class(**config)
    raise _FormatError(f"unknown loss class {class_name!r} (loss {loss_document.get('name')!r}); pass it in "
                       f"custom_objects={{{class_name!r}: YourLoss}}")


def _rebuild_optimizer(optimizer_document: dict, arrays: dict[str, np.ndarray], custom_objects: dict[str, Any],
                       model: Any):
    """The optimizer of the file, with its ``iterations`` and slots checked against the rebuilt ``model``.

    Slot names come from the file, so only those the optimizer class declares in ``slot_names`` are taken (a name
    such as ``apply_gradients`` must never reach ``setattr``), and each array must have exactly its parameter's
    shape and dtype: the update kernel indexes it by the parameter's positions.
    """
    class_name = optimizer_document["class_name"]
    optimizer_class = _lookup_class(class_name, custom_objects, optimizers, "optimizer")
    if not hasattr(optimizer_class, "apply_gradients"):  # another class the optimizers module happens to import
        raise _FormatError(f"unknown optimizer class {class_name!r}; pass it in "
                           f"custom_objects={{{class_name!r}: YourOptimizer}}")
    config = optimizer_document["config"]
    if not isinstance(config, dict):
        raise _FormatError(f"the optimizer's config must be a JSON object, got {config!r}")
    try:
        optimizer = optimizer_class.from_config(dict(config)) if hasattr(optimizer_class, "from_config") \
            else optimizer_class(**config)
    except (TypeError, ValueError) as error:
        raise _FormatError(f"the optimizer {class_name} cannot be rebuilt from its config: {error}") from None
    iterations = optimizer_document["iterations"]
    if isinstance(iterations, bool) or not isinstance(iterations, int) \
            or not 0 <= iterations <= optimizers.MAX_ITERATIONS:
        raise _FormatError(f"the optimizer field 'iterations' must be an int in [0, 2**63 - 1] (the number of "
                           f"updates applied), got {iterations!r}")
    optimizer.iterations = iterations

    slots_document = optimizer_document["slots"]
    if not isinstance(slots_document, dict):
        raise _FormatError(f"the optimizer field 'slots' must be a JSON object, got {type(slots_document).__name__}")
    known = tuple(getattr(optimizer_class, "slot_names", ()))
    parameters = {(layer.name, name): param for layer in model.layers for name, param in layer.params.items()}
    slots: dict[str, dict[tuple[str, str], np.ndarray]] = {}
    for attribute, entries in slots_document.items():
        if attribute not in known:
            raise _FormatError(f"unknown optimizer slot {attribute!r}: {class_name} keeps "
                               f"{', '.join(map(repr, known)) or 'no slots'}")
        if not isinstance(entries, list):
            raise _FormatError(f"optimizer slot {attribute!r} must be a list of [layer, parameter, array] entries")
        slot = slots[attribute] = {}
        for entry in entries:
            if not (isinstance(entry, list) and len(entry) == 3 and all(isinstance(part, str) for part in entry)):
                raise _FormatError(f"optimizer slot {attribute!r}: entry {entry!r} is not [layer, parameter, array]")
            layer_name, param_name, key = entry
            what = f"optimizer slot {attribute} of {layer_name}.{param_name}"
            if (layer_name, param_name) in slot:
                raise _FormatError(f"{what} appears twice")
            param = parameters.get((layer_name, param_name))
            if param is None:
                raise _FormatError(f"{what} names no parameter of the model")
            value = _array(arrays, key, what)
            if value.shape != param.shape or value.dtype != param.dtype:
                raise _FormatError(f"{what} has shape {value.shape} and dtype {value.dtype} in the file, the "
                                   f"parameter has shape {param.shape} and dtype {param.dtype}")
            slot[(layer_name, param_name)] = np.array(value, order="C")
    try:
        if hasattr(optimizer, "check_learning_rate"):
            optimizer.check_learning_rate(model.layers)
        if hasattr(optimizer, "set_slots"):
            optimizer.set_slots(model.layers, slots)
        else:
            for attribute, slot in slots.items():
                setattr(optimizer, attribute, slot)
    except (TypeError, ValueError) as error:
        raise _FormatError(str(error)) from None
    return optimizer
