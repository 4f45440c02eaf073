"""The on-disk dataset cache: where it lives, how files are checked, and how they are written.

Layout::

    $TINYNET_DATA_DIR/                      (if set), else
    $XDG_CACHE_HOME/tinynet/datasets/       (if XDG_CACHE_HOME is set), else
    ~/.cache/tinynet/datasets/
        mnist/            train-images-idx3-ubyte, train-labels-idx1-ubyte, ... (or mnist.npz)
        fashion_mnist/    train-images-idx3-ubyte, ...

Two promises hold for every file in the cache:

* **Checked before use.** Each file has a :class:`FileSpec` (name, size, SHA-256). :func:`read_verified`
  reads the whole file once, compares its size (a cheap test that catches truncation with a clear message)
  and its SHA-256, and hands back the very bytes it hashed, so there is no window between checking a file
  and parsing it.
* **Never half-written.** :func:`atomic_write` writes to a temporary file in the same folder, flushes and
  fsyncs it, then ``os.replace``-s it over the final name. ``os.replace`` is atomic within one file system,
  so a reader sees either the old file, the new one, or none; a crash or an exception mid-write leaves at
  most a stray temporary file (and on an exception, not even that). :func:`write_verified` adds the
  checksum test before the replace, so a wrong download never takes a cache file's name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from tinynet import fileio

DATA_DIR_VARIABLE = "TINYNET_DATA_DIR"
"""Environment variable naming the cache root; it wins over ``XDG_CACHE_HOME`` and ``~/.cache``."""

CHUNK_BYTES = 1 << 20
"""Size of the pieces in which downloads and copies are streamed to disk."""

TEMPORARY_SUFFIX = ".part"
"""Temporary files are named ``.<final name>.<random>.part``, hidden and easy to recognise."""


@dataclass(frozen=True)
class FileSpec:
    """One file the cache may hold: its name in the dataset's folder, its exact size and its SHA-256."""

    name: str
    size: int
    sha256: str

    def describe(self) -> str:
        return f"{self.name}  ({self.size} bytes, SHA-256 {self.sha256})"


class ChecksumMismatchError(ValueError):
    """A file's size or SHA-256 is not the one recorded for it: it is truncated, corrupt, or not that file."""


def cache_dir(dataset: str | None = None) -> Path:
    """Return the dataset cache root, or the folder of one dataset inside it.

    The root is ``$TINYNET_DATA_DIR`` if that is set and not empty, else ``$XDG_CACHE_HOME/tinynet/datasets``,
    else ``~/.cache/tinynet/datasets``. Nothing is created here; fetching creates the folder it writes to.

    Args:
        dataset: ``None`` for the root, or a dataset name such as ``"mnist"`` for its subfolder.
    """
    configured = os.environ.get(DATA_DIR_VARIABLE)
    if configured:
        root = Path(configured).expanduser()
    else:
        xdg_cache = os.environ.get("XDG_CACHE_HOME")
        # The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
        base = Path(xdg_cache) if xdg_cache and os.path.isabs(xdg_cache) else Path.home() / ".cache"
        root = base / "tinynet" / "datasets"
    if dataset is None:
        return root
    if not dataset or "/" in dataset or "\\" in dataset or dataset in {".", ".."}:
        raise ValueError(f"cache_dir: dataset must be a plain folder name, got {dataset!r}")
    return root / dataset


def read_verified(path: Path, spec: FileSpec) -> bytearray:
    """Read ``path`` whole and return its bytes if they match ``spec``; raise otherwise.

    The result is a ``bytearray`` so that arrays built on it with ``np.frombuffer`` are writable, as Keras's
    are.

    Raises:
        FileNotFoundError: the file is not there.
        ChecksumMismatchError: the size or SHA-256 differs from ``spec``.
    """
    path = Path(path)
    size = path.stat().st_size
    if size != spec.size:
        shortfall = " (truncated?)" if size < spec.size else ""
        raise ChecksumMismatchError(f"{path}: size is {size} bytes, expected {spec.size}{shortfall}")
    data = bytearray(size)
    with open(path, "rb") as file:
        read = file.readinto(data)
    if read != size:
        raise ChecksumMismatchError(f"{path}: read {read} bytes, expected {size} (changed while reading?)")
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise ChecksumMismatchError(f"{path}: SHA-256 is {digest}, expected {spec.sha256}")
    return data


def file_matches(path: Path, spec: FileSpec) -> bool:
    """True if ``path`` exists and has exactly ``spec``'s size and SHA-256 (read in chunks, not whole)."""
    path = Path(path)
    try:
        if path.stat().st_size != spec.size:
            return False
        digest = hashlib.sha256()
        with open(path, "rb") as file:
            while chunk := file.read(CHUNK_BYTES):
                digest.update(chunk)
    except FileNotFoundError:
        return False
    return digest.hexdigest() == spec.sha256


def atomic_write(path: Path) -> contextlib.AbstractContextManager[BinaryIO]:
    """:func:`tinynet.fileio.atomic_write` for cache files: temporary ``.part`` file beside ``path``, flushed,
    fsynced, renamed into place, folder fsynced; owner-only permissions (0600), which suit a per-user cache.
    If the ``with`` body raises, ``path`` is left exactly as it was."""
    return fileio.atomic_write(path, permissions=0o600, suffix=TEMPORARY_SUFFIX)


def write_verified(path: Path, spec: FileSpec, chunks: Iterable[bytes]) -> None:
    """Stream ``chunks`` into ``path`` through :func:`atomic_write`, keeping it only if it matches ``spec``.

    Size and SHA-256 are computed while writing; writing stops as soon as more than ``spec.size`` bytes have
    come (so a wrong or endless stream cannot fill the disk). On any mismatch the temporary file is removed,
    ``path`` is untouched, and :class:`ChecksumMismatchError` is raised.
    """
    path = Path(path)
    digest = hashlib.sha256()
    written = 0
    with atomic_write(path) as file:
        for chunk in chunks:
            written += len(chunk)
            if written > spec.size:
                raise ChecksumMismatchError(f"{spec.name}: got more than the expected {spec.size} bytes")
            digest.update(chunk)
            file.write(chunk)
        if written != spec.size:
            raise ChecksumMismatchError(f"{spec.name}: got {written} bytes, expected {spec.size}")
        if digest.hexdigest() != spec.sha256:
            raise ChecksumMismatchError(
                f"{spec.name}: SHA-256 is {digest.hexdigest()}, expected {spec.sha256}"
            )


class ByteReader(Protocol):
    """What :func:`read_chunks` drains: a file, a gzip stream, an HTTP response, a member of a tar file."""

    def read(self, size: int, /) -> bytes: ...


def read_chunks(stream: ByteReader, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Yield successive pieces of a readable binary stream until it is exhausted."""
    while chunk := stream.read(chunk_bytes):
        yield chunk


