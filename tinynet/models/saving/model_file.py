"""Whole models: :func:`save_model` writes header and payload atomically; :func:`load_model` checks the header,
reads the document and rebuilds the model, refusing anything the document does not name."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from tinynet.archive import FLOAT_DTYPES, ArchiveError, NpzArchive
from tinynet.fileio import NotARegularFileError, atomic_write, open_regular_file
from tinynet.models.saving.document import build_document
from tinynet.models.saving.file_format import (
    DOCUMENT_KEY,
    FormatError,
    StoredArrays,
    checked_path,
    checked_payload,
    file_header,
    first_names,
    json_default,
)
from tinynet.models.saving.generators import random_streams_untouched
from tinynet.models.saving.rebuild import model_from_document


def save_model(model: Any, path: str | os.PathLike) -> Path:
    """Write ``model`` (architecture, weights, compile settings, optimizer and random state) to ``path``.

    The file appears complete or not at all: it is written beside ``path`` and renamed over it.
    """
    path = checked_path(path, "save_model")
    arrays: dict[str, np.ndarray] = {}

    def store(array: np.ndarray) -> str:
        array = np.asarray(array)
        if array.dtype.hasobject:
            raise TypeError(f"save_model: cannot store an array of dtype {array.dtype}")
        key = f"array_{len(arrays)}"
        arrays[key] = array
        return key

    document = build_document(model, store)
    try:
        text = json.dumps(document, default=json_default, allow_nan=True)
    except TypeError as error:
        raise TypeError(f"save_model: {model.name} cannot be written as JSON ({error}); every layer's get_config() "
                        "must hold numbers, strings, None, lists, tuples and dicts") from error
    arrays[DOCUMENT_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    buffer = io.BytesIO()
    # mypy matches a ``**dict`` against savez's ``allow_pickle: bool`` too; every key here is a member name.
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    payload = buffer.getbuffer()  # a view: hashing and writing need no second copy of the file
    header = file_header(payload)
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
    path = checked_path(path, "load_model")
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(f"load_model: custom_objects must be a dict of name -> class, got "
                        f"{type(custom_objects).__name__}")
    custom_objects = dict(custom_objects or {})
    if path.is_dir():
        raise ValueError(f"load_model: {path} is a folder; expected a model file written by model.save")
    try:
        with open_regular_file(path) as (file, size):
            payload = checked_payload(file, size, path)
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
    arrays = StoredArrays(archive)
    try:
        with random_streams_untouched():
            model = model_from_document(document, arrays, custom_objects)
        unused = arrays.unused()
        if unused:
            raise FormatError(f"the payload holds arrays the document never names: {first_names(unused)}")
        return model
    except (FormatError, ArchiveError) as error:
        raise ValueError(f"load_model: {path}: {error}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RecursionError, OverflowError,
            NotImplementedError) as error:
        raise ValueError(f"load_model: {path}: the model document is malformed or inconsistent "
                         f"({type(error).__name__}: {error})") from None
