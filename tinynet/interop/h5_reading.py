"""Reading an HDF5 file from a stranger with ``h5py``: every link, attribute and dataset checked before use.

An HDF5 file can do more than hold arrays, and each of these is refused before it costs anything:

* **Links elsewhere.** A soft link can make a loop; an external link opens another file (any path on the
  machine); a dataset can keep its data in an external raw file (``/dev/zero``, ``/etc/shadow``) or be a virtual
  dataset mapping other files. Only hard links and datasets stored inside the file are followed.
* **Sizes.** An attribute (Keras's ``model_config``) is read only after its stored size is checked against a cap
  (a variable-length string's bytes live in the file's global heap, uncompressed: at most the file's size);
  a dataset is read only after its shape and dtype (from its header) match what the model expects, so a chunked,
  compressed dataset cannot inflate to more than the weight it must be.
* **Types.** Weights must be real floats (any byte order); ``iteration`` may be an integer; nothing else.

Every refusal is a :class:`KerasFormatError` naming the HDF5 path; the loaders prefix the file's name.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from tinynet.interop.dependencies import h5py as import_h5py
from tinynet.interop.errors import KerasFormatError

#: The most bytes a JSON attribute (``model_config``, ``training_config``) or a name list may take.
MAX_ATTRIBUTE_BYTES = 16 * 2**20
MAX_NAMES = 100_000


def open_file(source: Any, what: str) -> Any:
    """``h5py.File`` over a binary file object, read-only; a file that is not HDF5 is a KerasFormatError."""
    h5py = import_h5py()
    try:
        return h5py.File(source, "r")
    except (OSError, ValueError) as error:
        raise KerasFormatError(f"{what} is not an HDF5 file ({error})") from None


def child(group: Any, name: str, where: str) -> Any:
    """``group[name]`` through a hard link only (a soft or external link is refused unfollowed)."""
    h5py = import_h5py()
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise KerasFormatError(f"{where}: {name!r:.80} is not a plain HDF5 name")
    try:
        link = group.get(name, getlink=True)
    except (KeyError, ValueError, OSError, RuntimeError) as error:
        raise KerasFormatError(f"{where}/{name}: unreadable link ({error})") from None
    if link is None:
        raise KerasFormatError(f"{where}/{name} is missing")
    if not isinstance(link, h5py.HardLink):
        raise KerasFormatError(f"{where}/{name} is a {type(link).__name__}; only objects stored in the file itself "
                               "are read")
    try:
        return group[name]
    except (KeyError, ValueError, OSError, RuntimeError) as error:
        raise KerasFormatError(f"{where}/{name}: unreadable ({error})") from None


def path(root: Any, parts: str, where: str) -> Any:
    """Walk ``a/b/c`` from ``root`` one hard link at a time."""
    node = root
    for part in parts.split("/"):
        node = child(node, part, where)
        where = f"{where}/{part}"
    return node


def is_group(node: Any) -> bool:
    return isinstance(node, import_h5py().Group)


def has_hard_child(group: Any, name: str) -> bool:
    link = group.get(name, getlink=True)
    return link is not None and isinstance(link, import_h5py().HardLink)


def attribute(node: Any, name: str, where: str) -> Any:
    """The attribute's value, after checking its stored size; None when absent."""
    try:
        if name not in node.attrs:
            return None
        identifier = node.attrs.get_id(name)
    except (KeyError, OSError, RuntimeError, ValueError) as error:
        raise KerasFormatError(f"{where}: attribute {name!r} is unreadable ({error})") from None
    try:
        size = identifier.get_storage_size()
    except (OSError, RuntimeError, ValueError):  # HDF5 reports an empty attribute's zero size as an error
        size = 0
    if size > MAX_ATTRIBUTE_BYTES:
        raise KerasFormatError(f"{where}: attribute {name!r} takes {size:,} bytes, more than the "
                               f"{MAX_ATTRIBUTE_BYTES:,} allowed")
    try:
        return node.attrs[name]
    except (OSError, RuntimeError, ValueError, TypeError) as error:
        raise KerasFormatError(f"{where}: attribute {name!r} is unreadable ({error})") from None


def json_attribute(node: Any, name: str, where: str) -> Any:
    """A JSON document kept in a string attribute (Keras's ``model_config``); None when absent."""
    value = attribute(node, name, where)
    if value is None:
        return None
    if isinstance(value, bytes | np.bytes_):
        value = bytes(value).decode("utf-8", errors="strict")
    if not isinstance(value, str):
        raise KerasFormatError(f"{where}: attribute {name!r} is not a string")
    try:
        return json.loads(value)
    except (json.JSONDecodeError, RecursionError, ValueError) as error:
        raise KerasFormatError(f"{where}: attribute {name!r} is not valid JSON ({type(error).__name__})") from None


def name_list(node: Any, name: str, where: str) -> list[str] | None:
    """A list of names (``layer_names``, ``weight_names``), also in Keras 2's chunked form ``name0, name1...``
    (``load_attributes_from_hdf5_group`` in ``keras/engine/saving.py`` at 2.2.4); None when absent."""
    if name in node.attrs:
        chunks = [attribute(node, name, where)]
    else:
        chunks = []
        while f"{name}{len(chunks)}" in node.attrs:
            if len(chunks) > 1000:
                raise KerasFormatError(f"{where}: attribute {name!r} is split into more than 1000 chunks")
            chunks.append(attribute(node, f"{name}{len(chunks)}", where))
        if not chunks:
            return None
    names: list[str] = []
    for chunk in chunks:
        chunk = np.asarray(chunk)
        if chunk.size and chunk.dtype.kind not in "SUO":
            raise KerasFormatError(f"{where}: attribute {name!r} is not a list of names")
        for item in chunk.reshape(-1):
            if isinstance(item, bytes | np.bytes_):
                item = bytes(item).decode("utf-8")
            if not isinstance(item, str):
                raise KerasFormatError(f"{where}: attribute {name!r} holds {type(item).__name__}, not a name")
            names.append(str(item))
        if len(names) > MAX_NAMES:
            raise KerasFormatError(f"{where}: attribute {name!r} lists more than {MAX_NAMES} names")
    return names


class Stored:
    """One dataset, checked from its header: ``shape`` and ``dtype`` are known before its data is read."""

    def __init__(self, dataset: Any, where: str, kinds: str = "f") -> None:
        h5py = import_h5py()
        if not isinstance(dataset, h5py.Dataset):
            raise KerasFormatError(f"{where} is a group, not an array")
        try:
            virtual = dataset.is_virtual
            external = dataset.id.get_create_plist().get_external_count()
            shape, dtype = tuple(int(length) for length in dataset.shape), dataset.dtype
        except (OSError, RuntimeError, ValueError, TypeError) as error:
            raise KerasFormatError(f"{where}: unreadable array header ({error})") from None
        if virtual or external:
            raise KerasFormatError(f"{where} keeps its data outside the file (a virtual or external dataset)")
        if dtype.kind not in kinds or dtype.itemsize not in (2, 4, 8) or dtype.fields is not None \
                or dtype.subdtype is not None:
            expected = "floats" if kinds == "f" else "numbers"
            raise KerasFormatError(f"{where} has dtype {dtype}; expected real {expected}")
        self.dataset, self.where, self.shape, self.dtype = dataset, where, shape, dtype

    def read(self, expected_shape: tuple[int, ...] | None = None) -> np.ndarray:
        if expected_shape is not None and self.shape != tuple(expected_shape):
            raise KerasFormatError(f"{self.where} has shape {self.shape}, expected {tuple(expected_shape)}")
        try:
            value = np.asarray(self.dataset[()])
        except (OSError, RuntimeError, ValueError, TypeError) as error:
            raise KerasFormatError(f"{self.where}: unreadable array data ({error})") from None
        if value.shape != self.shape:
            raise KerasFormatError(f"{self.where} read back with shape {value.shape}, its header says {self.shape}")
        return value.astype(value.dtype.newbyteorder("="), copy=False)
