"""Files tinynet writes and reads: atomic writes (the old file or the complete new one, never half of either) and
reads that open only regular files (never wait on a FIFO or read ``/dev/zero`` until memory runs out)."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMPORARY_SUFFIX = ".tmp"
#: A temporary file whose writer is gone is removed by the next write into its folder once it is this old; the age
#: keeps it safe from a writer we cannot see (another machine or PID namespace sharing the folder).
STALE_TEMPORARY_SECONDS = 60.0


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, permissions: int = 0o666,
                 suffix: str = TEMPORARY_SUFFIX) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for binary writing; on success, move it into place atomically.

    ::

        with atomic_write("model.tnz") as file:
            file.write(data)

    If the ``with`` body raises (a full disk, an interrupt), the temporary file is deleted and ``path`` is left
    exactly as it was. Otherwise the data is flushed and fsynced, ``os.replace``-d onto ``path`` (a rename within
    one folder, atomic on POSIX), and the folder is fsynced so the rename itself survives a power cut.

    * Mode: a new file gets ``permissions`` less the umask (ordinary 0o666 by default; the dataset cache asks for
      0o600); a file that already exists keeps its mode (a 0600 checkpoint stays 0600).
    * Symlinks: when ``path`` is a symbolic link, the file it points to is replaced and the link stays, as
      ``open(path, "wb")`` would do.
    * Leftovers: the temporary file is ``.<name>.<pid>.<random><suffix>`` in the same folder. A process killed
      mid-write (``kill -9``, a power cut) cannot delete its own; so each write first removes the temporaries of
      this pattern in its folder whose writer process is dead (:func:`process_running`) and that are older than
      :data:`STALE_TEMPORARY_SECONDS`.
    """
    path = Path(os.path.realpath(path)) if Path(path).is_symlink() else Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; expected a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, suffix)
    try:
        existing_mode: int | None = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        existing_mode = None
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}{suffix}")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, permissions)
        with os.fdopen(descriptor, "wb") as file:
            if existing_mode is not None:
                os.fchmod(file.fileno(), existing_mode)
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def _temporary_pattern(suffix: str) -> re.Pattern[str]:
    # .<name>.<pid>.<32 hex digits><suffix>: the name atomic_write gives its temporary files, and nothing else.
    return re.compile(r"\..+\.(?P<pid>[0-9]+)\.[0-9a-f]{32}" + re.escape(suffix))


def remove_stale_temporaries(folder: Path, suffix: str = TEMPORARY_SUFFIX) -> list[Path]:
    """Delete the temporary files :func:`atomic_write` left in ``folder`` when its writer was killed.

    A temporary is stale when the pid in its name is not a running process and its last write is older than
    :data:`STALE_TEMPORARY_SECONDS` (a live writer keeps writing; the age also spares writers whose pid this process
    cannot see). Best effort: a file that vanishes or cannot be removed is left alone. Returns what was removed.
    """
    pattern = _temporary_pattern(suffix)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or process_running(int(match["pid"])):
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or now - entry.stat().st_mtime < STALE_TEMPORARY_SECONDS:
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def process_running(pid: int) -> bool:
    """True if a process with this pid runs on this machine (a zombie, dead but not yet reaped, does not count).

    The one liveness test for files named after their writer's pid: :func:`remove_stale_temporaries` here and the
    dataset cache's sweeps (:mod:`tinynet.datasets.leftovers`).

    Off POSIX the answer is always True (``os.kill`` there would end the process), so only the age rule applies.
    """
    if os.name != "posix":
        return True
    if pid <= 0:  # kill(0, ...) would address our own process group
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (ProcessLookupError, OverflowError):  # no such process (an absurd pid cannot be one either)
        return False
    except OSError:
        return True  # it exists under another user, or we cannot tell: keep its files
    try:
        # /proc/<pid>/stat: "pid (command) state ...", and the command may hold spaces and parentheses.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in {"Z", "X"}


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


class NotARegularFileError(ValueError):
    """The path names a FIFO, a device, a socket or a folder: something that is not a file of bytes at rest."""


def _kind_of(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO (named pipe)"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return kind
    return "special file"


@contextlib.contextmanager
def open_regular_file(path: str | os.PathLike) -> Iterator[tuple[BinaryIO, int]]:
    """Open ``path`` for binary reading only if it is a regular file; yield ``(file, size in bytes)``.

    A reader that trusts the path can be made to wait forever (a FIFO blocks ``open`` until a writer comes) or to
    read without end (``/dev/zero``, ``/dev/urandom``). So the path is ``stat``-ed before opening, opened with
    ``O_NONBLOCK`` (a FIFO swapped in after the check then opens at once instead of blocking), and ``fstat``-ed
    after opening to check the file actually opened. Readers should read at most ``size`` bytes (see
    :func:`read_exactly`).

    Raises:
        FileNotFoundError: nothing at ``path``.
        NotARegularFileError: (a ValueError) a folder, FIFO, device or socket; the message names the kind.
    """
    path = Path(path)
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotARegularFileError(f"{path} is a {_kind_of(mode)}, not a regular file")
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise NotARegularFileError(f"{path} is a {_kind_of(status.st_mode)}, not a regular file")
        os.set_blocking(descriptor, True)
        file = os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise
    with file:
        yield file, status.st_size


def read_exactly(file: BinaryIO, count: int, what: str) -> bytes:
    """Read exactly ``count`` bytes of ``file`` (never more): a ValueError naming ``what`` if fewer come."""
    data = file.read(count)
    if len(data) != count:
        raise ValueError(f"{what} ended after {len(data)} of {count} bytes (the file changed while it was read)")
    return data
