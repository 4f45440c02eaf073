"""The model file's envelope: header (magic bytes, format version, payload length, SHA-256), the checks that read
it back, and the lazily read arrays of its payload. See :mod:`tinynet.models.saving` for the layout."""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tinynet.archive import NpzArchive
from tinynet.fileio import read_exactly

MAGIC = b"\x93TINYNET"
FORMAT_VERSION = 1
HEADER = struct.Struct("<8sIQ32s")
HEADER_SIZE = HEADER.size  # 52 bytes
DOCUMENT_KEY = "model.json"
ZIP_MAGIC = b"PK\x03\x04"


class FormatError(Exception):
    """A problem with the document that has a precise message (turned into a ValueError naming the file)."""


def file_header(payload: bytes | memoryview) -> bytes:
    """The header a model file starts with, for ``payload`` (the npz archive after it): magic, format version,
    payload length and its SHA-256."""
    return HEADER.pack(MAGIC, FORMAT_VERSION, len(payload), hashlib.sha256(payload).digest())


def checked_path(path: Any, entry_point: str) -> Path:
    if not isinstance(path, str | os.PathLike) or not str(path):
        raise TypeError(f"{entry_point}: path must be a file path (str or os.PathLike), got {path!r}")
    return Path(path)


def checked_payload(file: Any, size: int, path: Path) -> bytes:
    """The payload after the header, once magic, version, length and checksum are all right.

    ``size`` is the file's size from ``fstat``: no more than it is ever read, whatever the header says.
    """
    if size == 0:
        raise ValueError(f"load_model: {path} is empty (0 bytes): not a tinynet model file")
    start = read_exactly(file, min(size, HEADER_SIZE), f"load_model: {path}")
    if start[:len(MAGIC)] != MAGIC[:len(start)]:
        hint = ""
        if start.startswith(ZIP_MAGIC):
            hint = " (it is a zip/npz archive: a weights file from save_weights? use load_weights for those)"
        raise ValueError(f"load_model: {path} is not a tinynet model file: it does not start with the tinynet "
                         f"magic bytes{hint}")
    if size < HEADER_SIZE:
        raise ValueError(f"load_model: {path} is truncated: {size} bytes, shorter than the "
                         f"{HEADER_SIZE}-byte header")
    _, version, length, digest = HEADER.unpack_from(start)
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


class StoredArrays(Mapping[str, np.ndarray]):
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


def stored_array(arrays: Mapping[str, np.ndarray], key: Any, what: str) -> np.ndarray:
    return arrays[stored_key(arrays, key, what)]


def stored_key(arrays: Mapping[str, np.ndarray], key: Any, what: str) -> str:
    if key not in arrays:
        raise FormatError(f"the array of {what} ({key!r}) is missing from the payload")
    return key


def typed(value: Any, expected: type, what: str) -> Any:
    """``value`` if it is an ``expected`` (a JSON type: list, dict, bool, str), else a refusal naming ``what``."""
    if not isinstance(value, expected):
        raise FormatError(f"{what} is {value!r:.80}; expected a JSON {expected.__name__}")
    return value


def json_default(value: Any) -> Any:
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


def first_names(names: list[str], count: int = 5) -> str:
    shown = ", ".join(repr(name) for name in names[:count])
    return f"[{shown}{', ...' if len(names) > count else ''}] ({len(names)})" if names else "none"
