"""Datasets as ``keras.datasets`` gives them: ``(x_train, y_train), (x_test, y_test)`` of uint8 arrays.

    from tinynet.datasets import mnist
    (x_train, y_train), (x_test, y_test) = mnist.load_data()

Files are cached per user (``$TINYNET_DATA_DIR``, else ``$XDG_CACHE_HOME/tinynet/datasets``, else
``~/.cache/tinynet/datasets``), one folder per dataset, checked against known SHA-256s whenever they are read,
and written atomically. Set ``TINYNET_OFFLINE=1`` to skip the web mirrors. This package knows nothing of
layers or models.

Public API:

* ``mnist.load_data(path=None)``, ``fashion_mnist.load_data(path=None)``
* :func:`fetch` -- fill the cache for one dataset by name and return its folder (for ``tinynet data fetch``)
* :func:`cache_dir` -- the cache root, or one dataset's folder
* :class:`DatasetUnavailableError` -- raised when no source could supply a dataset
* :func:`read_idx`, :func:`read_idx_images`, :func:`read_idx_labels`, :func:`write_idx` -- the IDX format
"""

from __future__ import annotations

from pathlib import Path

from tinynet.datasets import fashion_mnist, mnist
from tinynet.datasets.cache import ChecksumMismatchError, cache_dir
from tinynet.datasets.dataset import DatasetUnavailableError
from tinynet.datasets.idx import read_idx, read_idx_images, read_idx_labels, write_idx
from tinynet.datasets.npz import read_keras_npz

DATASETS = {mnist.NAME: mnist, fashion_mnist.NAME: fashion_mnist}
"""Dataset name -> its module (each has ``load_data``, ``fetch`` and ``DATASET``)."""


def fetch(name: str) -> Path:
    """Fill the cache for dataset ``name`` (``"mnist"`` or ``"fashion_mnist"``) and return its folder.

    Does nothing but check the files when they are already cached. ``"fashion-mnist"`` is accepted too.

    Raises:
        ValueError: unknown name.
        DatasetUnavailableError: every source failed; the message says what to do.
    """
    module = DATASETS.get(str(name).replace("-", "_"))
    if module is None:
        raise ValueError(f"fetch: name must be one of {', '.join(sorted(DATASETS))}, got {name!r}")
    return module.fetch()


__all__ = [
    "DATASETS",
    "ChecksumMismatchError",
    "DatasetUnavailableError",
    "cache_dir",
    "fashion_mnist",
    "fetch",
    "mnist",
    "read_idx",
    "read_idx_images",
    "read_idx_labels",
    "read_keras_npz",
    "write_idx",
]
