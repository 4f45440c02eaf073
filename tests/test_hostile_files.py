"""Model and weights files are input from strangers: a sweep of crafted files, each refused with a ValueError naming
the file, in bounded memory and time.

The SHA-256 in a model file's header stops accidents, not attackers (anyone can recompute it), so every file here
carries a valid header: the checks under test are the ones behind it. Each load runs under tracemalloc (NumPy
reports its array allocations to it) with the process's address space capped a little above its current size,
so a loader that starts to inflate a bomb fails this test rather than the machine, and under an interval timer,
so a loader that waits on a FIFO fails rather than hangs.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import struct
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tinynet import backend, layers
from tinynet.models import Sequential, load_model, saving
from tinynet.optimizers import SGD

MEMORY_BUDGET = 200 * 2**20  # bytes a refusal may allocate above the model's own (tiny) size
SECONDS_PER_LOAD = 10
DOCUMENT_MEMBER = saving.DOCUMENT_KEY + ".npy"


# ----------------------------------------------------------------------------------------------- the victim
def _model() -> Sequential:
    backend.set_random_seed(11)
    model = Sequential([layers.Dense(8, input_shape=(6,), activation="relu", name="hidden"),
                        layers.Dropout(0.5, name="drop"), layers.Dense(3, activation="softmax", name="out")],
                       name="victim")
    model.compile(SGD(0.1, momentum=0.9), "categorical_crossentropy", ["accuracy"])
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[bytes, bytes]:
    """The bytes of a trained model's file and of its bare weights file."""
    folder = tmp_path_factory.mktemp("victim")
    model = _model()
    x = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(16) % 3]
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(folder / "model.tnz")
    model.save_weights(folder / "weights.npz")
    return (folder / "model.tnz").read_bytes(), (folder / "weights.npz").read_bytes()


# ------------------------------------------------------------------------------------------ crafting files
def _members(data: bytes, header: bool = True) -> dict[str, bytes]:
    payload = data[saving.HEADER_SIZE:] if header else data
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _document(members: dict[str, bytes]) -> dict:
    return json.loads(np.load(io.BytesIO(members[DOCUMENT_MEMBER])).tobytes())


def _with_document(members: dict[str, bytes], document: dict | str) -> dict[str, bytes]:
    text = document if isinstance(document, str) else json.dumps(document)
    return {**members, DOCUMENT_MEMBER: _npy(np.frombuffer(text.encode(), dtype=np.uint8))}


def _zip(members: dict[str, bytes], deflated: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            method = zipfile.ZIP_DEFLATED if name in deflated else zipfile.ZIP_STORED
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buffer.getvalue()


def _model_file(payload: bytes) -> bytes:
    """A valid header (magic, version, length, SHA-256) over any payload: what an attacker can always make."""
    return saving.file_header(payload) + payload


def _declare_size(archive: bytes, name: str, size: int) -> bytes:
    """Patch the uncompressed size a zip declares for member ``name``, in the central directory and local header."""
    data, encoded = bytearray(archive), name.encode()
    for signature, name_length_at, name_at, size_at in ((b"PK\x01\x02", 28, 46, 24), (b"PK\x03\x04", 26, 30, 22)):
        position = data.find(signature)
        while position >= 0:
            (length,) = struct.unpack_from("<H", data, position + name_length_at)
            if data[position + name_at:position + name_at + length] == encoded:
                struct.pack_into("<I", data, position + size_at, size)
            position = data.find(signature, position + 4)
    return bytes(data)


def _weight_key(members: dict[str, bytes], layer: int, weight: str) -> str:
    return _document(members)["model"]["layers"][layer]["weights"][weight] + ".npy"


def _slot_entries(members: dict[str, bytes]) -> list:
    return _document(members)["compile"]["optimizer"]["slots"]["velocities"]


def _edit(change: Callable[[dict], None]) -> Callable[[dict[str, bytes]], bytes]:
    """A model file whose JSON document went through ``change``."""
    def craft(members: dict[str, bytes]) -> bytes:
        document = _document(members)
        change(document)
        return _model_file(_zip(_with_document(members, document)))
    return craft


def _replace_weight(layer: int, weight: str, make: Callable[[np.ndarray], bytes]) -> Callable:
    """A model file whose stored ``weight`` of layer ``layer`` is replaced by ``make(original)`` (.npy bytes)."""
    def craft(members: dict[str, bytes]) -> bytes:
        key = _weight_key(members, layer, weight)
        original = np.load(io.BytesIO(members[key]))
        return _model_file(_zip({**members, key: make(original)}))
    return craft


def _set(path: tuple, value) -> Callable[[dict], None]:
    def change(document: dict) -> None:
        target = document
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
    return change


def _huge_dense(document: dict) -> None:
    # 12 KB of JSON asking for a 16384 x 16384 kernel (1 GiB of float32, and as much again for its gradient).
    hidden = document["model"]["layers"][0]
    hidden["config"].update(units=16384, input_shape=[16384])
    hidden["input_shape"] = [16384]
    document["model"]["layers"][1]["input_shape"] = [16384]
    document["model"]["layers"][2]["input_shape"] = [16384]


def _npy_claiming(shape: tuple[int, ...], data: bytes) -> bytes:
    """An .npy member whose header declares ``shape`` (float32) in front of ``data``, whatever its length."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + data


def _append_raw_member(archive: bytes, name: str, stream: bytes, size: int, crc: int) -> bytes:
    """Append a raw deflated member to a zip of stored members (rewriting its central directory)."""
    source = zipfile.ZipFile(io.BytesIO(archive))
    infos = source.infolist()
    body = io.BytesIO()
    central = io.BytesIO()
    encoded_name = name.encode()

    def add(encoded: bytes, data: bytes, method: int, declared: int, checksum: int) -> None:
        offset = body.tell()
        body.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0, checksum, len(data), declared,
                               len(encoded), 0) + encoded + data)
        central.write(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0, checksum, len(data),
                                  declared, len(encoded), 0, 0, 0, 0, 0, offset) + encoded)

    for info in infos:
        data = source.read(info)
        add(info.filename.encode(), data, zipfile.ZIP_STORED, len(data), zlib.crc32(data))
    add(encoded_name, stream, zipfile.ZIP_DEFLATED, size, crc)
    directory = central.getvalue()
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(infos) + 1, len(infos) + 1, len(directory),
                      body.tell(), 0)
    return body.getvalue() + directory + end


# --------------------------------------------------------------------------------------------- the sweep
def _huge_pooling(document: dict) -> None:
    # No weights at all, but building it would allocate a 40000 x 40000 float64 plane of window counts (12.8 GB).
    pooling = layers.AveragePooling2D(2, input_shape=(40000, 40000, 1), name="pool")
    document["model"]["layers"] = [{"class_name": "AveragePooling2D", "config": pooling.get_config(), "built": True,
                                    "input_shape": [40000, 40000, 1], "weights": {}, "generators": {}}]


def _bomb(members: dict[str, bytes]) -> bytes:
    # 300 MB of zeros deflate to 300 KB; nobody asks for the member, so it must never be inflated.
    return _model_file(_append_raw_member(_zip(members), "bomb.npy", *_zeros_stream(300)))


MODEL_FILES: dict[str, tuple[Callable[[dict[str, bytes]], bytes], list[str]]] = {
    # --- optimizer slots and iterations: helper B's checks in _rebuild_optimizer
    "slot of the wrong shape": (
        lambda m: _model_file(_zip({**m, _slot_entries(m)[0][2] + ".npy": _npy(np.zeros((2, 2), np.float32))})),
        []),
    "slot named apply_gradients": (
        _edit(lambda d: d["compile"]["optimizer"]["slots"].update(
            apply_gradients=d["compile"]["optimizer"]["slots"]["velocities"])), ["apply_gradients"]),
    "iterations -1": (_edit(_set(("compile", "optimizer", "iterations"), -1)), ["iterations"]),
    # --- bombs and lying archives
    "unused deflated member inflating to 300 MB": (_bomb, ["bomb.npy"]),
    "deflated weight": (
        lambda m: _model_file(_zip(m, deflated=(_weight_key(m, 0, "kernel"),))), ["compression"]),
    "unused stored member": (lambda m: _model_file(_zip({**m, "array_99.npy": _npy(np.zeros(3, np.float32))})),
                             ["array_99", "never names"]),
    "member that is not .npy": (lambda m: _model_file(_zip({**m, "notes.txt": b"hello"})), ["notes.txt"]),
    "member declaring 4 GiB": (
        lambda m: _model_file(_declare_size(_zip(m), _weight_key(m, 0, "kernel"), 0xFFFFFFF0)), ["declares"]),
    "npy header declaring 10^12 elements": (
        _replace_weight(0, "kernel", lambda w: _npy_claiming((10**6, 10**6), w.tobytes())), ["implies"]),
    "duplicate member": (lambda m: _duplicate(m), ["twice"]),
    # --- allocation from the config
    "Dense(16384) on a 16384-wide input": (_edit(_huge_dense), ["hidden.kernel", "has shape"]),
    "AveragePooling2D on a 40000 x 40000 input": (_edit(_huge_pooling), ["pool", "numbers per sample"]),
    "input shape of 10^12": (_edit(lambda d: d["model"]["layers"][0].update(input_shape=[10**12])), ["shape"]),
    # --- attribute injection
    "generator named forward": (
        _edit(lambda d: d["model"]["layers"][1]["generators"].update(
            forward=d["model"]["layers"][1]["generators"]["generator"])), ["forward"]),
    "generator named params on a layer without any": (
        _edit(lambda d: d["model"]["layers"][0]["generators"].update(
            params=d["model"]["layers"][1]["generators"]["generator"])), ["params"]),
    "generator state with a gigabyte dtype": (
        _edit(lambda d: d["model"]["layers"][1]["generators"].update(generator={
            "bit_generator": "MT19937", "state": {"key": {"__ndarray__": [1], "dtype": "V1000000000"}, "pos": 0}})),
        ["V1000000000"]),
    "generator state of the wrong kind": (
        _edit(lambda d: d["model"]["layers"][1]["generators"]["generator"].update(state="nonsense")),
        ["PCG64"]),
    # --- unchecked state
    "epochs_done -3": (_edit(_set(("epochs_done",), -3)), ["epochs_done"]),
    "epochs_done 10^12": (_edit(_set(("epochs_done",), 10**12)), ["epochs_done"]),
    "epochs_done true": (_edit(_set(("epochs_done",), True)), ["epochs_done"]),
    "epochs_done of 5000 digits": (lambda m: _model_file(_zip(_with_document(
        m, json.dumps(_document(m)).replace('"epochs_done": 1', '"epochs_done": 1' + "0" * 5000)))), []),
    "history epoch 10^12": (_edit(lambda d: d["history"].update(epoch=[10**12])), ["history"]),
    "history of strings": (_edit(lambda d: d["history"]["history"].update(loss=["high"])), ["loss"]),
    "fuse as a string": (_edit(_set(("model", "fuse"), "yes")), ["fuse"]),
    "abstract Loss": (_edit(_set(("compile", "loss", "class_name"), "Loss")), ["Loss"]),
    "abstract Layer": (_edit(lambda d: d["model"]["layers"][1].update(
        class_name="Layer", config={"name": "drop", "trainable": True, "dtype": "float32"}, generators={})),
        ["Layer"]),
    "optimizer class Layer (imported by the optimizers module)": (
        _edit(lambda d: d["compile"]["optimizer"].update(class_name="Layer", config={})), ["Layer"]),
    "document nested 100000 deep": (lambda m: _model_file(_zip(_with_document(m, "[" * 100_000))), ["JSON"]),
    "document of floats": (
        lambda m: _model_file(_zip({**m, DOCUMENT_MEMBER: _npy(np.zeros(4, np.float32))})), ["model.json"]),
    # --- odd dtypes
    "datetime64 kernel": (_replace_weight(0, "kernel", lambda w: _npy(w.astype("datetime64[s]"))), ["dtype"]),
    "structured kernel": (_replace_weight(0, "kernel", lambda w: _npy(
        np.zeros(w.shape, dtype=[("a", "<f4")]))), ["dtype"]),
    "complex kernel": (_replace_weight(0, "kernel", lambda w: _npy(w.astype(np.complex64))), ["dtype"]),
    "bool kernel": (_replace_weight(0, "kernel", lambda w: _npy(w > 0)), ["dtype"]),
    "int64 kernel": (_replace_weight(0, "kernel", lambda w: _npy(w.astype(np.int64))), ["dtype"]),
    "big-endian kernel": (_replace_weight(0, "kernel", lambda w: _npy(w.astype(">f4"))), ["dtype"]),
    "object kernel (a pickle)": (_replace_weight(0, "kernel", lambda w: _npy(w.astype(object))), ["dtype"]),
    "float64 kernel in a float32 layer": (_replace_weight(0, "kernel", lambda w: _npy(w.astype(np.float64))),
                                          ["float64", "float32"]),
    "NaN kernel": (_replace_weight(0, "kernel", lambda w: _npy(np.full_like(w, np.nan))), ["non-finite"]),
    "infinite bias": (_replace_weight(2, "bias", lambda w: _npy(np.full_like(w, np.inf))), ["non-finite"]),
}


def _duplicate(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data)
        name = next(iter(members))
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr(zipfile.ZipInfo(name), members[name])
    return _model_file(buffer.getvalue())


class _Hung(BaseException):
    """Raised by the timer: no loader may catch it (a TimeoutError is an OSError, which loaders translate)."""


@contextlib.contextmanager
def _bounded(budget: int = MEMORY_BUDGET, seconds: float = SECONDS_PER_LOAD):
    """Measure the peak of traced allocations; cap the address space and the wall time as safety nets."""
    def timed_out(signum, frame):
        raise _Hung(f"the load took more than {seconds} s")

    with open("/proc/self/statm") as statm:
        virtual_bytes = int(statm.read().split()[0]) * resource.getpagesize()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = virtual_bytes + 4 * budget
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    previous_handler = signal.signal(signal.SIGALRM, timed_out)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    tracemalloc.start()
    peak = {}
    try:
        yield peak
    finally:
        peak["bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _expect_refusal(load: Callable[[], object], path: Path, fragments: list[str]) -> None:
    with _bounded() as peak, pytest.raises(ValueError) as error:
        load()
    message = str(error.value)
    assert str(path) in message, message
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert peak["bytes"] < MEMORY_BUDGET, f"the refusal allocated {peak['bytes'] / 2**20:.0f} MiB"


@pytest.mark.parametrize("case", sorted(MODEL_FILES))
def test_crafted_model_files_are_refused_in_bounded_memory(saved, tmp_path, case):
    craft, fragments = MODEL_FILES[case]
    path = tmp_path / "crafted.tnz"
    path.write_bytes(craft(_members(saved[0])))
    _expect_refusal(lambda: load_model(path), path, fragments)


def test_the_untouched_victim_loads(saved, tmp_path):
    """The sweep's files differ from a good one only where each case says (a control for the crafting)."""
    path = tmp_path / "model.tnz"
    path.write_bytes(_model_file(_zip(_members(saved[0]))))
    model = load_model(path)
    assert model.epochs_done == 1


# ------------------------------------------------------------------------------------------- special files
@pytest.mark.parametrize("special", ["/dev/zero", "/dev/null", "fifo", "folder"])
@pytest.mark.parametrize("loader", ["load_model", "load_weights"])
def test_special_files_are_refused_without_reading_them(tmp_path, special, loader):
    if special == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
    elif special == "folder":
        path = tmp_path
    else:
        path = Path(special)
        if not path.exists():
            pytest.skip(f"{special} does not exist here")
    model = _model()
    load = (lambda: load_model(path)) if loader == "load_model" else (lambda: model.load_weights(path))
    _expect_refusal(load, path, [])


# ----------------------------------------------------------------------------------------- weights files
def _weights_file(members: dict[str, bytes], deflated: tuple[str, ...] = ()) -> bytes:
    return _zip(members, deflated)


WEIGHTS_FILES: dict[str, tuple[Callable[[dict[str, bytes]], bytes], list[str]]] = {
    "unknown array name": (lambda m: _weights_file({**m, "foo.npy": _npy(np.zeros(3, np.float32))}),
                           ["foo"]),
    "missing array": (lambda m: _weights_file({k: v for k, v in m.items() if k != "out/bias.npy"}),
                      ["out/bias"]),
    "arrays under another layer's names": (
        lambda m: _weights_file({k.replace("out/", "hidden/X").replace("hidden/", "out/").replace("out/X", "hidden/"):
                                 v for k, v in m.items()}), ["shape"]),
    "member declaring 4 GiB": (lambda m: _declare_size(_weights_file(m), "out/bias.npy", 0xFFFFFFF0), ["declare"]),
    "deflated member inflating past its declared size": (
        lambda m: _declare_size(_weights_file(m, deflated=("out/bias.npy",)), "out/bias.npy", 20), ["out/bias"]),
    "unused deflated bomb": (
        lambda m: _append_raw_member(_weights_file(m), "bomb.npy", *_zeros_stream(300)), []),
    "NaN kernel": (lambda m: _weights_file({**m, "hidden/kernel.npy": _npy(np.full((6, 8), np.nan, np.float32))}),
                   ["hidden", "non-finite"]),
    "bool kernel": (lambda m: _weights_file({**m, "hidden/kernel.npy": _npy(np.ones((6, 8), bool))}), ["dtype"]),
    "complex kernel": (lambda m: _weights_file({**m, "hidden/kernel.npy": _npy(np.ones((6, 8), np.complex64))}),
                       ["dtype"]),
}


def _zeros_stream(megabytes: int) -> tuple[bytes, int, int]:
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    zeros, crc = bytes(2**20), 0
    chunks = []
    for _ in range(megabytes):
        chunks.append(compressor.compress(zeros))
        crc = zlib.crc32(zeros, crc)
    return b"".join(chunks) + compressor.flush(), megabytes * 2**20, crc


@pytest.mark.parametrize("case", sorted(WEIGHTS_FILES))
def test_crafted_weights_files_are_refused_and_leave_the_weights_alone(saved, tmp_path, case):
    craft, fragments = WEIGHTS_FILES[case]
    path = tmp_path / "crafted.npz"
    path.write_bytes(craft(_members(saved[1], header=False)))
    model = _model()
    before = model.get_weights()
    _expect_refusal(lambda: model.load_weights(path), path, fragments)
    for kept, original in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(kept, original)


# ------------------------------------------------------------------------------- Keras files (.h5, .keras)
# The same victim saved in Keras 3's formats; each case changes one field of a good file, with h5py or zipfile, and
# the loader must refuse it naming the file, in bounded memory and time, without following any link or running code.


@pytest.fixture(scope="module")
def saved_keras(tmp_path_factory) -> dict[str, bytes]:
    pytest.importorskip("h5py")
    folder = tmp_path_factory.mktemp("keras_victim")
    model = _model()
    x = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
    model.fit(x, np.eye(3, dtype=np.float32)[np.arange(16) % 3], epochs=1, batch_size=8, verbose=0)
    model.save(folder / "model.h5")
    model.save(folder / "model.keras")
    return {"h5": (folder / "model.h5").read_bytes(), "keras": (folder / "model.keras").read_bytes()}


def _h5_edit(change: Callable) -> Callable[[bytes, Path], bytes]:
    """A .h5 file changed in place by ``change(root)`` (an open h5py.File)."""
    def craft(data: bytes, folder: Path) -> bytes:
        import h5py

        path = folder / "edit.h5"
        path.write_bytes(data)
        with h5py.File(path, "r+", libver="latest") as root:  # "latest": attributes beyond 64 KB
            change(root)
        return path.read_bytes()
    return craft


def _config_edit(change: Callable[[dict], None]) -> Callable:
    def edit(root) -> None:
        config = json.loads(root.attrs["model_config"])
        change(config)
        root.attrs["model_config"] = json.dumps(config)
    return _h5_edit(edit)


def _replace_dataset(layer: str, index: int, make: Callable) -> Callable:
    def edit(root) -> None:
        group = root["model_weights"][layer]
        name = group.attrs["weight_names"][index]
        name = name.decode() if isinstance(name, bytes) else name
        original = group[name][()]
        del group[name]
        make(group, name, original)
    return _h5_edit(edit)


def _huge_attribute(data: bytes, folder: Path) -> bytes:
    """The victim copied into a file whose model_config is 20 MB (dense attribute storage needs libver latest)."""
    import h5py

    (folder / "source.h5").write_bytes(data)
    with h5py.File(folder / "source.h5", "r") as source, h5py.File(folder / "big.h5", "w", libver="latest") as root:
        for name in source:
            source.copy(name, root)
        root.attrs.create("model_config", np.zeros(20 * 2**20, np.uint8))
    return (folder / "big.h5").read_bytes()


def _keras_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _keras_config_edit(change: Callable[[dict], None]) -> Callable:
    def craft(data: bytes, folder: Path) -> bytes:
        members = _keras_members(data)
        config = json.loads(members["config.json"])
        change(config)
        return _zip({**members, "config.json": json.dumps(config).encode()})
    return craft


def _layers(config: dict) -> list:
    return config["config"]["layers"]


def _huge_dense_keras(config: dict) -> None:
    _layers(config)[0]["config"]["batch_shape"] = [None, 16384]
    _layers(config)[1]["config"]["units"] = 16384


KERAS_FILES: dict[str, tuple[str, Callable, list[str]]] = {
    # --- configs asking for what the file does not hold, or for what tinynet never does
    "h5: Dense(16384) on a 16384-wide input": ("h5", _config_edit(_huge_dense_keras), ["hidden.kernel", "shape"]),
    "h5: AveragePooling2D on 40000 x 40000": ("h5", _config_edit(lambda c: _layers(c).__setitem__(slice(0, 4), [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 40000, 40000, 1], "name": "in"}},
        {"class_name": "AveragePooling2D", "config": {"name": "hidden", "pool_size": [2, 2]}}])),
        ["numbers per sample"]),
    "h5: unknown layer class": ("h5", _config_edit(lambda c: _layers(c)[2].update(class_name="LSTM")), ["LSTM"]),
    "h5: Lambda layer": ("h5", _config_edit(lambda c: _layers(c).insert(2, {
        "class_name": "Lambda", "config": {"name": "code", "function": ["4wEAAAAAAAAA", None, None]}})),
        ["Lambda"]),
    "h5: custom object": ("h5", _config_edit(lambda c: _layers(c)[1].update(registered_name="evil>Dense")),
                          ["evil>Dense"]),
    "h5: Functional model": ("h5", _config_edit(lambda c: c.update(class_name="Functional")), ["Functional"]),
    "h5: model_config nested 100000 deep": ("h5", _h5_edit(lambda r: r.attrs.__setitem__("model_config",
                                                                                       "[" * 100_000)), ["JSON"]),
    "h5: model_config of 20 MB": ("h5", lambda data, folder: _huge_attribute(data, folder),
                                  ["model_config", "bytes"]),
    # --- arrays that lie, live elsewhere or hold the wrong things
    "h5: kernel of the wrong shape": ("h5", _replace_dataset("hidden", 0, lambda g, n, w: g.create_dataset(
        n, data=np.zeros((7, 8), np.float32))), ["shape"]),
    "h5: compressed kernel declaring 10^10 elements": ("h5", _replace_dataset("hidden", 0, lambda g, n, w:
        g.create_dataset(n, shape=(10**5, 10**5), dtype=np.float32, chunks=(1000, 1000), compression="gzip")),
        ["shape"]),
    "h5: kernel stored in /dev/zero": ("h5", _replace_dataset("hidden", 0, lambda g, n, w: g.create_dataset(
        n, shape=w.shape, dtype=np.float32, external=[("/dev/zero", 0, 4 * w.size)])), ["outside the file"]),
    "h5: kernel behind an external link": ("h5", _replace_dataset("hidden", 0, lambda g, n, w: g.__setitem__(
        n, __import__("h5py").ExternalLink("/etc/passwd", "/x"))), ["ExternalLink"]),
    "h5: layer group behind a soft link": ("h5", _h5_edit(lambda r: (
        r["model_weights"].move("hidden", "moved"), r["model_weights"].__setitem__(
            "hidden", __import__("h5py").SoftLink("/model_weights/hidden")))), ["SoftLink"]),
    "h5: complex kernel": ("h5", _replace_dataset("hidden", 0, lambda g, n, w: g.create_dataset(
        n, data=w.astype(np.complex64))), ["dtype"]),
    "h5: string kernel": ("h5", _replace_dataset("hidden", 0, lambda g, n, w: g.create_dataset(
        n, data=np.full(w.shape, b"x"))), ["dtype"]),
    "h5: NaN kernel": ("h5", _replace_dataset("hidden", 0, lambda g, n, w: g.create_dataset(
        n, data=np.full_like(w, np.nan))), ["non-finite"]),
    "h5: optimizer slot of the wrong shape": ("h5", _h5_edit(lambda r: (
        r["optimizer_weights"].__delitem__("sgd/victim_hidden_kernel_momentum"),
        r["optimizer_weights"].create_dataset("sgd/victim_hidden_kernel_momentum", data=np.zeros((2, 2), "f4")))),
        ["slot", "shape"]),
    "h5: iterations -5": ("h5", _h5_edit(lambda r: (r["optimizer_weights"].__delitem__("sgd/iteration"),
                                                    r["optimizer_weights"].create_dataset("sgd/iteration", data=-5))),
                          ["iterations"]),
    "h5: not HDF5 at all": ("h5", lambda data, folder: b"\x89HDF\r\n\x1a\n" + bytes(4000), ["HDF5"]),
    # --- .keras zips
    ".keras: unused deflated member inflating to 300 MB": (
        "keras", lambda data, folder: _append_raw_member(data, "bomb.bin", *_zeros_stream(300)), ["bomb.bin"]),
    ".keras: weights member declaring 100x its compressed size": (
        "keras", lambda data, folder: _declare_size(_zip(_keras_members(data), deflated=("model.weights.h5",)),
                                                    "model.weights.h5", 0xFFFFFFF0), ["zip bomb"]),
    ".keras: config.json declaring 4 GiB": (
        "keras", lambda data, folder: _declare_size(data, "config.json", 0xFFFFFFF0), ["config.json"]),
    ".keras: Lambda layer": ("keras", _keras_config_edit(lambda c: _layers(c).insert(2, {
        "module": "keras.layers", "class_name": "Lambda", "config": {"name": "code"}})), ["Lambda"]),
    ".keras: unknown layer class": ("keras", _keras_config_edit(lambda c: _layers(c)[1].update(
        class_name="MultiHeadAttention")), ["MultiHeadAttention"]),
    ".keras: layer from another module": ("keras", _keras_config_edit(lambda c: _layers(c)[1].update(
        module="os")), ["'os'"]),
    ".keras: Dense(16384) on a 16384-wide input": ("keras", _keras_config_edit(_huge_dense_keras), ["shape"]),
    ".keras: duplicate member": ("keras", lambda data, folder: _duplicate_keras(data), ["twice"]),
}


def _duplicate_keras(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, member in _keras_members(data).items():
            archive.writestr(zipfile.ZipInfo(name), member)
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr(zipfile.ZipInfo("config.json"), _keras_members(data)["config.json"])
    return buffer.getvalue()


@pytest.mark.parametrize("case", sorted(KERAS_FILES))
def test_crafted_keras_files_are_refused_in_bounded_memory(saved_keras, tmp_path, case):
    kind, craft, fragments = KERAS_FILES[case]
    path = tmp_path / f"crafted.{kind}"
    path.write_bytes(craft(saved_keras[kind], tmp_path))
    _expect_refusal(lambda: load_model(path), path, fragments)


@pytest.mark.parametrize("kind", ["h5", "keras"])
def test_the_untouched_keras_victim_loads(saved_keras, tmp_path, kind):
    path = tmp_path / f"model.{kind}"
    path.write_bytes(saved_keras[kind] if kind == "h5" else _zip(_keras_members(saved_keras[kind])))
    assert [layer.name for layer in load_model(path).layers] == ["hidden", "drop", "out"]
