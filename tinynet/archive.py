"""Reading ``.npz`` archives from strangers: every field is checked before memory is spent on it.

An ``.npz`` is a zip of ``.npy`` members. ``np.load`` trusts both layers: a zip member may declare 1 KB and inflate
to gigabytes, a 1 MB file may hold a member nobody asked for that inflates to 1 GB, and an ``.npy`` header may
declare any dtype (datetimes, structured records, complex numbers) and any shape. :class:`NpzArchive` checks, in
this order, each before the next costs anything:

1. the zip's central directory: member names (``<key>.npy``, no duplicates), compression (stored only, unless
   the reader allows deflate), and the declared sizes: a stored member's bytes lie in the file, so the stored
   sizes together cannot exceed the archive (members that overlap to multiply one block are refused); the
   declared uncompressed sizes together must stay within ``max_total_bytes``;
2. per member, only when asked for it: the ``.npy`` header (a few hundred bytes): the format version, a dtype
   among those allowed, a shape of non-negative ints, and ``header + prod(shape) * itemsize`` equal to the
   member's declared size; the caller may ask for an exact shape too;
3. then the data, read in bounded chunks into an array of exactly that size: a member whose compressed stream
   inflates to more or less than it declared is refused (zipfile's CRC check catches a changed byte).

Members never asked for are never inflated. Every refusal is an :class:`ArchiveError` (a ``ValueError``) whose
message names the member and the field; callers prefix the file name. ``allow_pickle`` never comes into it: no
object dtype is ever allowed.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from collections.abc import Iterable
from typing import IO, BinaryIO

import numpy as np
import numpy.typing as npt
from numpy.lib import format as npy_format

#: The dtypes a weight may be stored as: little-endian float32 and float64, plain numbers only.
FLOAT_DTYPES = (np.dtype("<f4"), np.dtype("<f8"))
MEMBER_SUFFIX = ".npy"
#: ``np.load``'s own limit on an ``.npy`` header; ours are under 200 bytes.
MAX_HEADER_BYTES = 10_000
_CHUNK_BYTES = 1 << 20


class ArchiveError(ValueError):
    """A problem with an archive or one of its members (the message names which and why)."""


class NpzArchive:
    """The members of an ``.npz`` held in ``source`` (a binary file object of ``size`` bytes), checked as read.

    ``allowed_dtypes`` maps each member key to the dtypes it may hold (the key ``None`` gives the default), so a
    reader can allow bytes for a document and floats for weights. ``max_total_bytes`` bounds the declared
    uncompressed sizes of all members together (default: the archive size, which is what stored members imply).
    """

    def __init__(self, source: BinaryIO, size: int, *, allowed_dtypes: dict[str | None, Iterable[npt.DTypeLike]],
                 allow_deflate: bool = False, max_total_bytes: int | None = None) -> None:
        self._allowed = {key: tuple(np.dtype(dtype) for dtype in dtypes) for key, dtypes in allowed_dtypes.items()}
        try:
            self._zip = zipfile.ZipFile(source)
            members = self._zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError,
                UnicodeDecodeError, OverflowError) as error:
            raise ArchiveError(f"not a readable npz archive ({error})") from None
        compressions = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED} if allow_deflate else {zipfile.ZIP_STORED}
        self._members: dict[str, zipfile.ZipInfo] = {}
        stored_bytes = declared_bytes = 0
        for info in members:
            if not info.filename.endswith(MEMBER_SUFFIX) or info.is_dir():
                raise ArchiveError(f"member {info.filename!r} is not an .npy array")
            key = info.filename[:-len(MEMBER_SUFFIX)]
            if key in self._members:
                raise ArchiveError(f"member {info.filename!r} appears twice")
            if info.compress_type not in compressions:
                allowed = "stored or deflated" if allow_deflate else "stored uncompressed"
                raise ArchiveError(f"member {info.filename!r} uses compression method {info.compress_type}; "
                                   f"members must be {allowed}")
            if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
                raise ArchiveError(f"member {info.filename!r} is stored uncompressed but declares "
                                   f"{info.file_size} bytes and occupies {info.compress_size}")
            stored_bytes += info.compress_size
            declared_bytes += info.file_size
            self._members[key] = info
        if stored_bytes > size:
            raise ArchiveError(f"the members occupy {stored_bytes} bytes together, more than the {size}-byte "
                               "archive holds (overlapping members)")
        limit = size if max_total_bytes is None else max_total_bytes
        if declared_bytes > limit:
            raise ArchiveError(f"the members declare {declared_bytes} bytes together once inflated, more than the "
                               f"{limit} bytes expected")

    @property
    def keys(self) -> list[str]:
        """Member names without ``.npy``, in archive order."""
        return list(self._members)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._members

    def header(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        """``(shape, dtype)`` of member ``key`` from its ``.npy`` header alone (a few hundred bytes are read)."""
        with self._open(key) as stream:
            shape, _, dtype, _ = self._read_header(key, stream)
        return shape, dtype

    def read(self, key: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """The array of member ``key`` (a fresh writable array), refusing it before allocating unless its header
        is sound and, when given, its shape is ``shape``."""
        with self._open(key) as stream:
            stored_shape, fortran_order, dtype, data_bytes = self._read_header(key, stream)
            if shape is not None and stored_shape != tuple(shape):
                raise ArchiveError(f"member {key!r} holds shape {stored_shape}, expected {tuple(shape)}")
            buffer = bytearray(data_bytes)
            view = memoryview(buffer)
            filled = 0
            try:
                while filled < data_bytes:
                    chunk = stream.read(min(_CHUNK_BYTES, data_bytes - filled))
                    if not chunk:
                        break
                    view[filled:filled + len(chunk)] = chunk
                    filled += len(chunk)
                extra = stream.read(1)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
                raise ArchiveError(f"member {key!r} is corrupt ({error})") from None
            if filled != data_bytes or extra:
                raise ArchiveError(f"member {key!r} holds {'more' if extra else filled} bytes of data, its header "
                                   f"declares {data_bytes}")
        array = np.frombuffer(buffer, dtype=dtype)
        return array.reshape(stored_shape, order="F" if fortran_order else "C")

    # ------------------------------------------------------------------------------------------------ helpers
    def _open(self, key: str) -> IO[bytes]:
        if key not in self:
            raise ArchiveError(f"there is no member {key!r}")
        try:
            return self._zip.open(self._members[key])
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError, zlib.error) as error:
            raise ArchiveError(f"member {key!r} cannot be opened ({error})") from None

    def _read_header(self, key: str, stream: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype, int]:
        """Shape, Fortran order, dtype and data size of the member, after checking each against the zip entry."""
        try:
            version = npy_format.read_magic(stream)
            if version == (1, 0):
                shape, fortran_order, dtype = npy_format.read_array_header_1_0(stream, MAX_HEADER_BYTES)
            elif version == (2, 0):
                shape, fortran_order, dtype = npy_format.read_array_header_2_0(stream, MAX_HEADER_BYTES)
            else:
                raise ArchiveError(f"member {key!r} has .npy format version {version}; expected 1.0 or 2.0")
        except ArchiveError:
            raise
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, OverflowError, EOFError,
                zipfile.BadZipFile, zlib.error, OSError) as error:
            raise ArchiveError(f"member {key!r} has no readable .npy header ({type(error).__name__}: "
                               f"{error})") from None
        allowed = self._allowed.get(key, self._allowed.get(None, ()))
        if dtype not in allowed:
            names = ", ".join(str(allowed_dtype) for allowed_dtype in allowed) or "nothing"
            raise ArchiveError(f"member {key!r} holds dtype {dtype.str} ({dtype}); expected one of: {names} "
                               "(little-endian)")
        if not all(isinstance(length, int) and length >= 0 for length in shape):
            raise ArchiveError(f"member {key!r} declares shape {shape!r}; expected non-negative ints")
        data_bytes = math.prod(shape) * dtype.itemsize
        info = self._members[key]
        header_bytes = stream.tell()
        if header_bytes + data_bytes != info.file_size:
            raise ArchiveError(f"member {key!r} declares {info.file_size} bytes, its .npy header implies "
                               f"{header_bytes + data_bytes} (shape {shape}, dtype {dtype})")
        return tuple(shape), bool(fortran_order), dtype, data_bytes
