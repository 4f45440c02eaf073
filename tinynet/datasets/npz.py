"""Keras's ``mnist.npz``: a NumPy zip archive of four arrays, ``x_train``, ``y_train``, ``x_test``, ``y_test``.

Keras 2's ``mnist.load_data`` downloads this one file and returns its arrays as they are: ``x_*`` uint8 of
shape (count, 28, 28), ``y_*`` uint8 of shape (count,). :func:`parse_keras_npz` checks exactly that (keys, dtypes,
dimensions, and that images and labels agree in count) and raises ``ValueError`` naming the file and the
problem otherwise. Pickled objects are refused (``allow_pickle=False``): a data file must not run code.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

import numpy as np

KERAS_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

ZIP_MAGIC = b"PK"

Split = tuple[np.ndarray, np.ndarray]


def parse_keras_npz(
    data: bytes | bytearray,
    name: str = "<bytes>",
    train_count: int | None = None,
    test_count: int | None = None,
    image_shape: tuple[int, int] | None = None,
) -> tuple[Split, Split]:
    """Parse the bytes of a Keras-style npz into ``(x_train, y_train), (x_test, y_test)``.

    Args:
        data: the whole file's bytes.
        name: how to name the file in error messages.
        train_count, test_count, image_shape: if given, the exact sizes required (60000, 10000 and (28, 28)
            for MNIST); if ``None``, any size is accepted as long as images and labels agree.

    Raises:
        ValueError: not an npz archive, a key missing, a dtype other than uint8, or a wrong shape.
    """
    if bytes(data[:2]) != ZIP_MAGIC:
        raise ValueError(
            f"{name}: not an npz archive: an npz is a zip file and starts with {ZIP_MAGIC!r}, "
            f"this starts with {bytes(data[:4])!r}"
        )
    try:
        archive = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{name}: not a readable npz archive: {error}") from error
    with archive:
        missing = [key for key in KERAS_NPZ_KEYS if key not in archive.files]
        if missing:
            raise ValueError(
                f"{name}: missing key(s) {', '.join(missing)}; expected {', '.join(KERAS_NPZ_KEYS)}, "
                f"found {', '.join(archive.files) or 'none'}"
            )
        arrays = {}
        for key in KERAS_NPZ_KEYS:
            try:
                arrays[key] = archive[key]
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
                raise ValueError(f"{name}: array {key!r} is corrupt: {error}") from error

    for key, array in arrays.items():
        if array.dtype != np.uint8:
            raise ValueError(f"{name}: {key} must have dtype uint8, found {array.dtype}")
    for split, expected_count in (("train", train_count), ("test", test_count)):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3:
            raise ValueError(
                f"{name}: x_{split} must have 3 dimensions (count, rows, columns), found shape {images.shape}"
            )
        if labels.ndim != 1:
            raise ValueError(f"{name}: y_{split} must have 1 dimension (count,), found shape {labels.shape}")
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{name}: x_{split} has {images.shape[0]} images but y_{split} has {labels.shape[0]} labels"
            )
        if expected_count is not None and images.shape[0] != expected_count:
            raise ValueError(f"{name}: x_{split} must hold {expected_count} images, found {images.shape[0]}")
        if image_shape is not None and images.shape[1:] != tuple(image_shape):
            raise ValueError(
                f"{name}: x_{split} images must be {tuple(image_shape)}, found {images.shape[1:]}"
            )
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def read_keras_npz(path: str | Path, **expected) -> tuple[Split, Split]:
    """Read a Keras-style npz file; keyword arguments as in :func:`parse_keras_npz`."""
    path = Path(path)
    return parse_keras_npz(path.read_bytes(), str(path), **expected)


def encode_keras_npz(x_train, y_train, x_test, y_test) -> bytes:
    """Return the bytes of a compressed npz holding the four arrays under Keras's key names."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return buffer.getvalue()
