"""The IDX file format of MNIST and Fashion-MNIST: read, validate and write.

An IDX file is a header followed by one array in C order, every number big-endian::

    bytes 0-1   0x00 0x00         always zero
    byte  2     dtype code        0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     dimension count   n
    4n bytes    n sizes, uint32 each
    the data    prod(sizes) * itemsize bytes, nothing after it

So the first four bytes, read as one big-endian integer, are ``0x00000803`` for MNIST's images (uint8, three
dimensions: count x 28 x 28) and ``0x00000801`` for its labels (uint8, one dimension: count).

:func:`parse_idx` checks each of these facts and raises ``ValueError`` naming the file and what was wrong,
so a truncated download or a file of another kind never turns into a silently wrong array. The data is not
copied: the array is a ``np.frombuffer`` view on the bytes read.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from tinynet.datasets.cache import atomic_write

IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""IDX dtype code -> the big-endian NumPy dtype of the stored numbers."""

IMAGES_MAGIC = 0x00000803
"""Magic number of an image file: uint8 data in three dimensions (count, rows, columns)."""

LABELS_MAGIC = 0x00000801
"""Magic number of a label file: uint8 data in one dimension (count)."""

GZIP_MAGIC = b"\x1f\x8b"


def parse_idx(data: bytes | bytearray | memoryview, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an IDX file (already decompressed) into an array, validating the header.

    Args:
        data: the whole file's bytes. A ``bytearray`` gives a writable array without a copy.
        name: how to name the file in error messages (usually its path).

    Returns:
        An array of the shape the header gives, in native byte order. For uint8 data it shares memory with
        ``data``.

    Raises:
        ValueError: the first two bytes are not zero, the dtype code is unknown, the header is cut short,
            or the data is shorter or longer than the sizes in the header say.
    """
    view = memoryview(data).cast("B")
    if len(view) < 4:
        raise ValueError(f"{name}: not an IDX file: only {len(view)} bytes, a header needs at least 4")
    magic = int.from_bytes(view[:4], "big")
    if view[0] != 0 or view[1] != 0:
        raise ValueError(
            f"{name}: not an IDX file: magic number is 0x{magic:08X}, "
            "expected two zero bytes then a dtype code and a dimension count (like 0x00000803)"
        )
    dtype_code, dimension_count = view[2], view[3]
    if dtype_code not in IDX_DTYPES:
        known = ", ".join(f"0x{code:02X}" for code in IDX_DTYPES)
        raise ValueError(
            f"{name}: unknown IDX dtype code 0x{dtype_code:02X} in magic number 0x{magic:08X}; "
            f"known codes: {known}"
        )
    header_bytes = 4 + 4 * dimension_count
    if len(view) < header_bytes:
        raise ValueError(
            f"{name}: truncated header: {dimension_count} dimensions need {header_bytes} header bytes, "
            f"the file has {len(view)}"
        )
    shape = tuple(int.from_bytes(view[4 + 4 * axis : 8 + 4 * axis], "big") for axis in range(dimension_count))
    dtype = IDX_DTYPES[dtype_code]
    # The product of an empty shape is 1: a 0-dimensional IDX file holds one number.
    data_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    expected_length = header_bytes + data_bytes
    if len(view) < expected_length:
        raise ValueError(
            f"{name}: truncated: header says shape {shape} of {dtype.name} "
            f"({expected_length} bytes in all), the file has {len(view)} bytes"
        )
    if len(view) > expected_length:
        raise ValueError(
            f"{name}: {len(view) - expected_length} unexpected bytes after the data: header says shape "
            f"{shape} of {dtype.name} ({expected_length} bytes in all), the file has {len(view)} bytes"
        )
    array = np.frombuffer(view, dtype=dtype, offset=header_bytes).reshape(shape)
    if dtype.byteorder == ">":
        array = array.astype(dtype.newbyteorder("="))
    return array


def parse_idx_images(data: bytes | bytearray | memoryview, name: str = "<bytes>") -> np.ndarray:
    """Parse an IDX image file: magic number 0x00000803, a uint8 array of shape (count, rows, columns)."""
    return _parse_expecting(data, name, IMAGES_MAGIC, "images (uint8, 3 dimensions: count, rows, columns)")


def parse_idx_labels(data: bytes | bytearray | memoryview, name: str = "<bytes>") -> np.ndarray:
    """Parse an IDX label file: magic number 0x00000801, a uint8 array of shape (count,)."""
    return _parse_expecting(data, name, LABELS_MAGIC, "labels (uint8, 1 dimension: count)")


def read_idx_bytes(path: str | Path) -> bytearray:
    """Read an IDX file's bytes, decompressing it if it is gzip (recognised by its content, not its name)."""
    path = Path(path)
    with open(path, "rb") as file:
        raw = bytearray(file.read())
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return bytearray(gzip.decompress(raw))
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(f"{path}: corrupt or truncated gzip file: {error}") from error


def read_idx(path: str | Path) -> np.ndarray:
    """Read any IDX file, raw or gzip-compressed, into an array (see :func:`parse_idx`)."""
    return parse_idx(read_idx_bytes(path), str(path))


def read_idx_images(path: str | Path) -> np.ndarray:
    """Read an IDX image file (raw or ``.gz``) into a uint8 array of shape (count, rows, columns)."""
    return parse_idx_images(read_idx_bytes(path), str(path))


def read_idx_labels(path: str | Path) -> np.ndarray:
    """Read an IDX label file (raw or ``.gz``) into a uint8 array of shape (count,)."""
    return parse_idx_labels(read_idx_bytes(path), str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """Return the IDX file bytes of ``array`` (the inverse of :func:`parse_idx`).

    Raises:
        TypeError: the dtype has no IDX code (IDX stores uint8, int8, int16, int32, float32, float64).
        ValueError: more than 255 dimensions, or a dimension too large for 32 bits.
    """
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise TypeError(
            "encode_idx: array dtype must be one of uint8, int8, int16, int32, float32, float64, "
            f"got {array.dtype}"
        )
    if array.ndim > 255:
        raise ValueError(f"encode_idx: an IDX file holds at most 255 dimensions, got {array.ndim}")
    if any(size >= 2**32 for size in array.shape):
        raise ValueError(f"encode_idx: every dimension must be below 2**32, got shape {array.shape}")
    code = codes[native]
    header = bytes([0, 0, code, array.ndim]) + b"".join(size.to_bytes(4, "big") for size in array.shape)
    return header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()


def write_idx(path: str | Path, array: np.ndarray, compress: bool = False) -> None:
    """Write ``array`` as an IDX file at ``path`` (gzip-compressed if ``compress``), atomically.

    The file appears whole or not at all (see :func:`tinynet.datasets.cache.atomic_write`).
    """
    data = encode_idx(array)
    if compress:
        # mtime=0 makes the output depend on the data only, so equal arrays give byte-identical files.
        data = gzip.compress(data, mtime=0)
    with atomic_write(Path(path)) as file:
        file.write(data)


def _parse_expecting(data, name: str, magic: int, meaning: str) -> np.ndarray:
    view = memoryview(data).cast("B")
    if len(view) >= 4:
        found = int.from_bytes(view[:4], "big")
        if found != magic:
            raise ValueError(
                f"{name}: magic number is 0x{found:08X}, expected 0x{magic:08X} for IDX {meaning}"
                + _explain_magic(found)
            )
    return parse_idx(view, name)


def _explain_magic(magic: int) -> str:
    if magic >> 16 != 0:
        return " (the first two bytes should be zero: this is not an IDX file)"
    dtype_code, dimension_count = (magic >> 8) & 0xFF, magic & 0xFF
    dtype = IDX_DTYPES.get(dtype_code)
    dtype_name = dtype.name if dtype is not None else f"unknown dtype code 0x{dtype_code:02X}"
    return f" (found {dtype_name} data in {dimension_count} dimensions)"
