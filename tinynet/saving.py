"""Saving and loading: whole models (``model.save`` / ``load_model``) and bare weights (``save_weights``).

A model file holds everything needed to carry on training exactly where it stopped:

* the architecture: the model's name, whether it runs fused stages (``model.fuse``) and, per layer, its class
  name and ``get_config()``;
* the weights, per layer, by name (``kernel``, ``bias``, state arrays);
* the compile settings: loss, metrics, the optimizer's class and ``get_config()``;
* the optimizer's state: ``iterations``, every per-parameter slot (SGD's ``velocities``, Adam's moments, ...) and
  any scalar state (Nadam's ``m_schedule``); a learning-rate schedule is part of the optimizer's config;
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

Reading trusts nothing in the file (anyone can recompute a checksum). Before memory is spent on a field, it is
checked: the path must be a regular file (``os.stat`` then ``fstat``: not ``/dev/zero``, not a FIFO that would
block), and no more than its size is read; archive members are read through :class:`tinynet.archive.NpzArchive`
(stored uncompressed, declared sizes that add up, each ``.npy`` header's dtype, shape and size checked before its
data is read, members the document never names refused unread); every layer is built under
:func:`tinynet.layers.base.checking_weight_allocations`, so a config can allocate only the weights whose headers
the file holds, in their shapes and dtype, and no layer takes more than :data:`MAX_SAMPLE_ELEMENTS` numbers per
sample; weights must be finite; random generators are restored only under names the rebuilt layer already uses
for a generator; ``epochs_done`` and the history must be epoch counts; abstract classes are no layers or losses.
Each refusal is one ``ValueError`` line naming the file and the field.

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
import math
import os
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tinynet import backend, losses, optimizers
from tinynet import layers as layers_module
from tinynet.archive import FLOAT_DTYPES, MAX_HEADER_BYTES, ArchiveError, NpzArchive
from tinynet.fileio import NotARegularFileError, atomic_write, open_regular_file, read_exactly
from tinynet.layers.base import Layer, checking_weight_allocations

MAGIC = b"\x93TINYNET"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sIQ32s")
HEADER_SIZE = _HEADER.size  # 52 bytes
DOCUMENT_KEY = "model.json"
_ZIP_MAGIC = b"PK\x03\x04"
#: More epochs than any run does; a larger ``epochs_done`` in a file is an attack or an accident.
MAX_EPOCHS = 2**31 - 1
#: The most numbers a layer of a loaded model may take per sample (a 2048 x 2048 x 4 image). Building a layer can
#: allocate in proportion to its input (AveragePooling2D's count plane), and a config could ask for any size.
MAX_SAMPLE_ELEMENTS = 2**24
#: The bit generators a saved random stream may name (tinynet makes PCG64; the others are NumPy's own).
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


# ------------------------------------------------------------------------------------------------ bare weights
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
    path = _checked_path(path, "load_weights")
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
    raise ValueError(f"its arrays do not match the model's weights: missing {_first(missing)}, unknown "
                     f"{_first(unknown)} (arrays are matched by name, <layer>/<weight>)")


def _grouped_by_layer(keys: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for key in keys:
        layer_name, _, weight_name = key.rpartition("/")
        groups.setdefault(layer_name, []).append(weight_name)
    return groups


def _first(names: list[str], count: int = 5) -> str:
    shown = ", ".join(repr(name) for name in names[:count])
    return f"[{shown}{', ...' if len(names) > count else ''}] ({len(names)})" if names else "none"


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
        with open_regular_file(path) as (file, size):
            payload = _checked_payload(file, size, path)
    except FileNotFoundError:
        raise FileNotFoundError(f"load_model: no such file: {path}") from None
    except NotARegularFileError as error:
        raise ValueError(f"load_model: {error}; expected a model file written by model.save") from None
    try:
        # np.savez stores members uncompressed, so nothing in a model file inflates: members may only declare what
        # the payload holds, and each array is checked from its .npy header before it is read (tinynet.archive).
        archive = NpzArchive(io.BytesIO(payload), len(payload),
                             allowed_dtypes={None: FLOAT_DTYPES, DOCUMENT_KEY: [np.uint8]})
        if DOCUMENT_KEY not in archive:
            raise ValueError(f"the payload has no {DOCUMENT_KEY} document")
        text = archive.read(DOCUMENT_KEY)
        if text.ndim != 1:
            raise ValueError(f"the {DOCUMENT_KEY} document has shape {text.shape}; expected a row of bytes")
        document = json.loads(text.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"load_model: {path}: the {DOCUMENT_KEY} document is not valid JSON "
                         f"({type(error).__name__}: {error})") from None
    except ValueError as error:  # ArchiveError and the checks above; also JSON's limit on an integer's digits
        raise ValueError(f"load_model: {path}: {error}") from None
    arrays = _StoredArrays(archive)
    try:
        with _random_streams_untouched():
            model = _model_from_document(document, arrays, custom_objects)
        unused = arrays.unused()
        if unused:
            raise _FormatError(f"the payload holds arrays the document never names: {_first(unused)}")
        return model
    except (_FormatError, ArchiveError) as error:
        raise ValueError(f"load_model: {path}: {error}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RecursionError, OverflowError,
            NotImplementedError) as error:
        raise ValueError(f"load_model: {path}: the model document is malformed or inconsistent "
                         f"({type(error).__name__}: {error})") from None


class _StoredArrays(Mapping):
    """The archive's arrays by key, each read (and checked: tinynet.archive) only when first asked for.

    Records which keys were asked for, so that members the document never names are refused without ever being
    read; :meth:`header` reads a header alone, for checking a config's shapes before anything is allocated.
    """

    def __init__(self, archive: NpzArchive) -> None:
        self._archive = archive
        self._read: dict[str, np.ndarray] = {}

    def __contains__(self, key: object) -> bool:
        return key != DOCUMENT_KEY and key in self._archive

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self:
            raise KeyError(key)
        if key not in self._read:
            self._read[key] = self._archive.read(key)
        return self._read[key]

    def __iter__(self) -> Iterator[str]:
        return (key for key in self._archive.keys if key != DOCUMENT_KEY)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def header(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        if key not in self:
            raise KeyError(key)
        return self._archive.header(key)

    def unused(self) -> list[str]:
        return [key for key in self._archive.keys if key != DOCUMENT_KEY and key not in self._read]


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


def _checked_payload(file: Any, size: int, path: Path) -> bytes:
    """The payload after the header, once magic, version, length and checksum are all right.

    ``size`` is the file's size from ``fstat``: no more than it is ever read, whatever the header says.
    """
    if size == 0:
        raise ValueError(f"load_model: {path} is empty (0 bytes): not a tinynet model file")
    start = read_exactly(file, min(size, HEADER_SIZE), f"load_model: {path}")
    if start[:len(MAGIC)] != MAGIC[:len(start)]:
        hint = ""
        if start.startswith(_ZIP_MAGIC):
            hint = " (it is a zip/npz archive: a weights file from save_weights? use load_weights for those)"
        raise ValueError(f"load_model: {path} is not a tinynet model file: it does not start with the tinynet "
                         f"magic bytes{hint}")
    if size < HEADER_SIZE:
        raise ValueError(f"load_model: {path} is truncated: {size} bytes, shorter than the "
                         f"{HEADER_SIZE}-byte header")
    _, version, length, digest = _HEADER.unpack_from(start)
    if version != FORMAT_VERSION:
        advice = "a newer tinynet wrote it; upgrade tinynet" if version > FORMAT_VERSION else "it is not supported"
        raise ValueError(f"load_model: {path} has format version {version}, this tinynet reads version "
                         f"{FORMAT_VERSION} ({advice})")
    held = size - HEADER_SIZE
    if held < length:
        raise ValueError(f"load_model: {path} is truncated: the header announces {length} payload bytes, "
                         f"the file holds {held}")
    if held > length:
        raise ValueError(f"load_model: {path} is corrupt: {held - length} unexpected bytes after the "
                         f"{length}-byte payload")
    payload = read_exactly(file, length, f"load_model: {path}")
    if file.read(1):
        raise ValueError(f"load_model: {path} grew while it was read; expected {size} bytes")
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
            # Only the unsigned words a bit generator's state holds (MT19937's key): a dtype from a file could
            # otherwise be "V1000000000", a gigabyte per element.
            if value["dtype"] not in ("uint32", "uint64"):
                raise _FormatError(f"an array in a random generator state has dtype {value['dtype']!r}; expected "
                                   "uint32 or uint64")
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
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in BIT_GENERATORS:
        raise _FormatError(f"unknown random bit generator {name!r}; expected one of {', '.join(BIT_GENERATORS)}")
    state = _from_json(state)
    bit_generator_class = getattr(np.random, name)
    candidate = np.random.Generator(bit_generator_class())
    try:  # NumPy checks the state's fields; set it on a new generator so a refusal leaves ``existing`` alone
        candidate.bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        raise _FormatError(f"the state of a {name} random generator is malformed ({type(error).__name__}: "
                           f"{error})") from None
    if isinstance(existing, np.random.Generator) and type(existing.bit_generator) is bit_generator_class:
        existing.bit_generator.state = candidate.bit_generator.state
        return existing
    return candidate


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
    # The metrics as compile was given them; a function is saved by name and found again in custom_objects.
    return [metric if isinstance(metric, str) else key
            for metric, (key, _) in zip(getattr(model, "_metric_requests", []), model._metrics, strict=True)]


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
            "state": optimizer.get_state() if hasattr(optimizer, "get_state") else {},
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
    # Only a class the module defines: it also imports names (Layer, Any, Iterable) that are no such class.
    if isinstance(found, type) and found.__module__.startswith(module.__name__):
        return found
    raise _FormatError(f"unknown {kind} class {class_name!r}; pass it in custom_objects={{{class_name!r}: ...}}")


def _layer_class(class_name: Any, custom_objects: dict[str, Any]) -> type:
    if isinstance(class_name, str) and class_name in custom_objects:
        return custom_objects[class_name]
    try:
        layer_class = layers_module.get(class_name)
    except (ValueError, TypeError, KeyError):
        raise _FormatError(f"unknown layer class {class_name!r}; pass it in "
                           f"custom_objects={{{class_name!r}: YourLayer}}") from None
    if layer_class.forward is Layer.forward or layer_class.backward is Layer.backward:
        raise _FormatError(f"layer class {class_name!r} is an abstract base class (no forward or backward)")
    return layer_class


def _array(arrays: _StoredArrays, key: Any, what: str) -> np.ndarray:
    if key not in arrays:
        raise _FormatError(f"the array of {what} ({key!r}) is missing from the payload")
    return arrays[key]


def _model_from_document(document: dict, arrays: _StoredArrays, custom_objects: dict[str, Any]) -> Any:
    """Rebuild the model a document describes, trusting none of it: every field a stranger could set is checked
    before it is used, and no layer allocates a weight that the file's arrays do not hold (``check_allocation``)."""
    from tinynet.models.sequential import Sequential

    if not isinstance(document, dict) or document.get("format") != "tinynet.model":
        raise _FormatError("the document does not describe a tinynet model")
    if document.get("format_version") != FORMAT_VERSION:
        raise _FormatError(f"the document has format version {document.get('format_version')!r}, expected "
                           f"{FORMAT_VERSION}")
    model_document = document["model"]
    layer_documents = _typed(model_document["layers"], list, "model.layers")
    model_class = custom_objects.get(model_document["class_name"], Sequential)

    # The shape and dtype of every stored weight, from the .npy headers alone, keyed by the layer object: a layer
    # built from its config may allocate exactly these and nothing else (a config could ask for gigabytes).
    stored: dict[Layer, dict[str, tuple[tuple[int, ...], np.dtype]]] = {}

    def check_allocation(layer: Layer, name: str, shape: tuple[int, ...]) -> None:
        held = stored.get(layer, {})
        if name not in held:
            raise _FormatError(f"layer {layer.name!r} has weights the file does not hold: its config makes "
                               f"{name!r} of shape {shape}, the file stores {sorted(held) or 'none'}")
        held_shape, held_dtype = held[name]
        if held_shape != shape:
            raise _FormatError(f"weight {layer.name}.{name} has shape {held_shape} in the file, the rebuilt layer "
                               f"expects {shape}")
        if held_dtype != layer.dtype:
            raise _FormatError(f"weight {layer.name}.{name} is stored as {held_dtype}, the rebuilt layer holds "
                               f"{layer.dtype}")

    layers = []
    with checking_weight_allocations(check_allocation):
        for position, layer_document in enumerate(layer_documents):
            layer_class = _layer_class(layer_document["class_name"], custom_objects)
            try:
                layer = layer_class.from_config(dict(layer_document["config"]))
            except (TypeError, ValueError) as error:
                raise _FormatError(f"layer {position} ({layer_document['class_name']}) cannot be rebuilt from its "
                                   f"config: {error}") from error
            _check_sample_size(layer._declared_input_shape, f"the input_shape of layer {layer.name!r}")
            weights = _typed(layer_document["weights"], dict, f"the weights of layer {layer.name!r}")
            stored[layer] = {name: arrays.header(_stored_key(arrays, key, f"{layer.name}.{name}"))
                             for name, key in weights.items()}
            if _typed(layer_document["built"], bool, f"built of layer {layer.name!r}") and not layer.built:
                input_shape = tuple(_typed(layer_document["input_shape"], list, f"input_shape of {layer.name!r}"))
                _check_sample_size(input_shape, f"the input shape of layer {layer.name!r}")
                layer.build(input_shape)
            layers.append(layer)
        model = model_class(layers, name=model_document["name"])
        if layers and all(document_["built"] for document_ in layer_documents) and not model.built:
            model.build((None, *layer_documents[0]["input_shape"]))

    # Weights: every name, shape and value (finite real numbers) checked before anything is set.
    pending = []
    for layer, layer_document in zip(model.layers, layer_documents, strict=True):
        saved = layer_document["weights"]
        if layer_document["built"] and sorted(saved) != sorted(layer.weight_names):
            raise _FormatError(f"layer {layer.name!r} has weights {layer.weight_names}, the file holds "
                               f"{sorted(saved)}")
        if not saved:
            continue
        values = [_array(arrays, saved[name], f"{layer.name}.{name}") for name in layer.weight_names]
        try:
            pending.append((layer, layer.check_weights(values)))
        except ValueError as error:
            raise _FormatError(f"weights of layer {layer.name!r}: {error}") from None
    for layer, values in pending:
        for name, value in zip(layer.weight_names, values, strict=True):
            layer._weight(name)[...] = value

    # Random streams: only generators the rebuilt layer has (a name from the file must not replace ``forward``).
    for layer, layer_document in zip(model.layers, layer_documents, strict=True):
        own = _layer_generators(layer)
        for attribute, state in _typed(layer_document["generators"], dict, f"generators of {layer.name!r}").items():
            if attribute not in own:
                raise _FormatError(f"layer {layer.name!r} has no random generator {attribute!r} (its generators: "
                                   f"{sorted(own) or 'none'})")
            setattr(layer, attribute, restore_generator(state, own[attribute]))
    model._shuffle_generator = restore_generator(model_document["shuffle_generator"], model._shuffle_generator)
    # Files written before ``fuse`` was recorded get the default.
    model.fuse = _typed(model_document.get("fuse", True), bool, "model.fuse")

    compile_document = document.get("compile")
    if compile_document is not None:
        loss = _rebuild_loss(compile_document["loss"], custom_objects)
        optimizer = _rebuild_optimizer(compile_document["optimizer"], arrays, custom_objects, model)
        model.compile(optimizer=optimizer, loss=loss,
                      metrics=[custom_objects.get(name, name) for name in compile_document["metrics"]])

    model.epochs_done = _epoch_number(document.get("epochs_done", 0), "epochs_done")
    _restore_history(model, document.get("history") or {"epoch": [], "history": {}})
    return model


def _typed(value: Any, expected: type, what: str) -> Any:
    """``value`` if it is an ``expected`` (a JSON type: list, dict, bool, str), else a refusal naming ``what``."""
    if not isinstance(value, expected):
        raise _FormatError(f"{what} is {value!r:.80}; expected a JSON {expected.__name__}")
    return value


def _check_sample_size(shape: tuple | None, what: str) -> None:
    if shape is None:
        return
    if not all(isinstance(length, int) and not isinstance(length, bool) and length > 0 for length in shape):
        raise _FormatError(f"{what} is {shape!r:.80}; expected positive ints")
    if math.prod(shape) > MAX_SAMPLE_ELEMENTS:
        raise _FormatError(f"{what} is {shape}: {math.prod(shape):,} numbers per sample, more than the "
                           f"{MAX_SAMPLE_ELEMENTS:,} a loaded model may take")


def _stored_key(arrays: _StoredArrays, key: Any, what: str) -> str:
    if key not in arrays:
        raise _FormatError(f"the array of {what} ({key!r}) is missing from the payload")
    return key


def _epoch_number(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_EPOCHS:
        raise _FormatError(f"{what} is {value!r:.80}; expected an epoch count, an int from 0 to {MAX_EPOCHS}")
    return value


def _restore_history(model: Any, history_document: Any) -> None:
    """The saved History: epochs are epoch numbers, and each metric a list of numbers (or None), one per epoch."""
    from tinynet.callbacks import History

    history_document = _typed(history_document, dict, "history")
    epochs = [_epoch_number(epoch, "an epoch of the history")
              for epoch in _typed(history_document["epoch"], list, "history.epoch")]
    columns = {}
    for key, values in _typed(history_document["history"], dict, "history.history").items():
        values = _typed(values, list, f"history of {key!r}")
        if len(values) != len(epochs) or not all(
                value is None or (isinstance(value, int | float) and not isinstance(value, bool)) for value in values):
            raise _FormatError(f"the history of {key!r} must hold one number (or null) per epoch ({len(epochs)})")
        columns[key] = list(values)
    history = History()
    history.epoch = epochs
    history.history = columns
    history.set_model(model)
    model.history = history
    model._restored_history = history


def _rebuild_loss(loss_document: dict, custom_objects: dict[str, Any]) -> Any:
    class_name, config = loss_document["class_name"], loss_document.get("config") or {}
    if class_name in custom_objects:
        return custom_objects[class_name](**config)
    loss_class = getattr(losses, class_name, None)
    if loss_class is losses.Loss:  # abstract: as a loss it would fail on the first batch
        raise _FormatError("the loss class 'Loss' is the abstract base class, not a loss")
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
    # Files written before scalar state was recorded hold none (SGD keeps none).
    state = optimizer_document.get("state", {})
    if not isinstance(state, dict):
        raise _FormatError(f"the optimizer field 'state' must be a JSON object, got {type(state).__name__}")
    if state or hasattr(optimizer, "set_state"):
        try:
            optimizer.set_state(dict(state))
        except (AttributeError, TypeError, ValueError) as error:
            raise _FormatError(f"the optimizer {class_name} cannot take the state {state!r}: {error}") from None

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
