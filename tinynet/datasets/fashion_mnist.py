"""Fashion-MNIST (Zalando's 28x28 clothing images), loaded as ``keras.datasets.fashion_mnist`` loads them.

    (x_train, y_train), (x_test, y_test) = tinynet.datasets.fashion_mnist.load_data()

gives uint8 arrays of shapes (60000, 28, 28), (60000,), (10000, 28, 28), (10000,); labels 0-9 name the
classes in :data:`CLASS_NAMES`. The files are cached, raw, in ``cache_dir("fashion_mnist")`` and checked
against the SHA-256s below every time they are read.

Where the files come from when the cache lacks them, in order:

1. the gzipped IDX files from the web, Keras's copy then the project's own mirror (skipped when
   ``TINYNET_OFFLINE=1``; each gives up after a few seconds without an answer);
2. Debian's package ``dataset-fashion-mnist``, which installs the gzipped files in
   ``/usr/share/datasets/fashion-mnist`` (this module only reads that folder; it never installs anything);
3. gzipped IDX files a person put in the cache folder by hand.
"""

from __future__ import annotations

from pathlib import Path

from tinynet.datasets.cache import cache_dir
from tinynet.datasets.dataset import IDX_FILE_NAMES, DatasetSpec, Splits, fetch_dataset, idx_layout, load_dataset
from tinynet.datasets.sources import LocalFolder, Source, WebMirror

NAME = "fashion_mnist"

DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")
"""The label values 0-9 in order, as the Fashion-MNIST authors name them."""

RAW_IDX_SHA256 = {
    IDX_FILE_NAMES["train_images"]: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    IDX_FILE_NAMES["train_labels"]: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    IDX_FILE_NAMES["test_images"]: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    IDX_FILE_NAMES["test_labels"]: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
"""SHA-256 of the four *uncompressed* IDX files. Checksumming the raw bytes rather than the .gz files matters:
Debian's package holds .gz files that differ byte for byte from the upstream ones (other compression settings)
while unpacking to the same data, so only the raw checksum identifies the data whatever the source."""

DATASET = DatasetSpec(
    name=NAME,
    layouts=(idx_layout(RAW_IDX_SHA256, train_count=60000, test_count=10000),),
    train_count=60000,
    test_count=10000,
    by_hand=(f"Or install the Debian package {DEBIAN_PACKAGE} (apt-get install {DEBIAN_PACKAGE}), "
             f"which puts the files in {DEBIAN_FOLDER}.",),
)

IDX_MIRRORS = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)


def default_sources() -> list[Source]:
    """The sources tried, in order, when the cache is incomplete."""
    return [
        *(WebMirror(mirror, layout="idx", suffix=".gz") for mirror in IDX_MIRRORS),
        LocalFolder(DEBIAN_FOLDER, description=f"Debian package {DEBIAN_PACKAGE} ({DEBIAN_FOLDER})",
                    layout="idx", hint=f"install the Debian package {DEBIAN_PACKAGE}"),
        LocalFolder(cache_dir(NAME), description=f"gzipped files placed by hand in {cache_dir(NAME)}",
                    layout="idx", suffixes=(".gz",)),
    ]


def load_data(path: str | Path | None = None) -> Splits:
    """Load Fashion-MNIST as ``(x_train, y_train), (x_test, y_test)``: uint8 arrays (60000, 28, 28),
    (60000,), (10000, 28, 28), (10000,).

    Args:
        path: ``None`` (the usual case) to use the checked cache, fetching the files into it the first time.
            Or files you already have, read as they are (format checked, checksums not): a folder with
            ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
            ``t10k-labels-idx1-ubyte`` (each raw or ``.gz``, e.g. ``/usr/share/datasets/fashion-mnist``), or
            a Keras-style ``.npz`` with arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``.

    Raises:
        DatasetUnavailableError: not cached and no source could supply it; the message says what to do.
        FileNotFoundError, ValueError: ``path`` has nothing usable, or a malformed file.
    """
    return load_dataset(DATASET, default_sources(), path)


def fetch() -> Path:
    """Fill the cache with Fashion-MNIST if it is not already there (checked) and return its folder."""
    return fetch_dataset(DATASET, default_sources())
