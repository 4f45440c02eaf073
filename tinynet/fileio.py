"""Atomic file writes: a file tinynet writes is either the old one or the complete new one, never half of it."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMPORARY_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, permissions: int = 0o666,
                 suffix: str = TEMPORARY_SUFFIX) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for binary writing; on success, move it into place atomically.

    ::

        with atomic_write("model.tnz") as file:
            file.write(data)

    If the ``with`` body raises (a full disk, an interrupt), the temporary file is deleted and ``path`` is left
    exactly as it was. Otherwise the data is flushed and fsynced, ``os.replace``-d onto ``path`` (a rename within
    one folder, atomic on POSIX), and the folder is fsynced so the rename itself survives a power cut. The new
    file gets ``permissions`` less the umask (ordinary 0o666 by default; the dataset cache asks for 0o600). The
    temporary file is ``.<name>.<pid>.<random><suffix>`` in the same folder.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; expected a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}{suffix}")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, permissions)
        with os.fdopen(descriptor, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems cannot fsync a folder)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
