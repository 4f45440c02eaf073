"""model.save / load_model: exact round trips for every layer and the optimizer, atomic writes, refused bad files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinynet import applications, backend, fileio, layers
from tinynet.layers.base import Layer
from tinynet.models import Sequential, load_model, saving
from tinynet.models.saving import model_file
from tinynet.optimizers import SGD
from tinynet.utils import to_categorical

REPOSITORY = Path(__file__).resolve().parents[1]
CLASSES = 3

# Layers whose constructor needs arguments, each with non-default settings so the config round trip means
# something; any other class in tinynet.layers must build with no arguments and take (H, W, C) images.
LAYER_FACTORIES = {
    "Conv2D": lambda: layers.Conv2D(3, (3, 2), strides=(1, 2), padding="same", activation="relu",
                                    kernel_initializer="he_normal", bias_initializer="ones"),
    "Dense": lambda: layers.Dense(5, activation="tanh", kernel_initializer="he_uniform"),
    "Activation": lambda: layers.Activation("sigmoid"),
    "Dropout": lambda: layers.Dropout(0.3, noise_shape=(None, 1, 1, None)),
    "MaxPooling2D": lambda: layers.MaxPooling2D((2, 2), strides=1, padding="same"),
    "ReLU": lambda: layers.ReLU(max_value=6.0, negative_slope=0.1, threshold=0.05),
    "Reshape": lambda: layers.Reshape((-1, 5)),
    "ZeroPadding2D": lambda: layers.ZeroPadding2D(((1, 0), (2, 1))),
    "ELU": lambda: layers.ELU(0.5),
}
VECTOR_LAYERS = {"Dense"}


def _layer_classes() -> list[type]:
    found = {}
    for name in layers.__all__:
        value = getattr(layers, name)
        if isinstance(value, type) and issubclass(value, Layer) and value is not Layer:
            found[value.__name__] = value
    return [found[name] for name in sorted(found)]


def _model_around(layer_class: type) -> Sequential:
    """A small trainable model with one ``layer_class`` layer in the middle."""
    name = layer_class.__name__
    layer = LAYER_FACTORIES[name]() if name in LAYER_FACTORIES else layer_class()
    if name in VECTOR_LAYERS:
        model = Sequential([layers.Dense(4, input_shape=(5,)), layer])
    else:
        model = Sequential([layers.Conv2D(2, 3, input_shape=(7, 7, 2), activation="relu"), layer])
    if len(model.output_shape) > 2:
        model.add(layers.Flatten())
    model.add(layers.Dense(CLASSES, activation="softmax"))
    return model


def _data(input_shape: tuple[int, ...], samples: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((samples, *input_shape), dtype=np.float32)
    return x, to_categorical(np.arange(samples) % CLASSES, CLASSES)


def _generator_states(layer) -> dict:
    return {name: value.bit_generator.state for name, value in vars(layer).items()
            if isinstance(value, np.random.Generator)}


def assert_same_model(original: Sequential, loaded: Sequential) -> None:
    """Everything training depends on is equal, bit for bit."""
    assert loaded.name == original.name
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in original.layers]
    for before, after in zip(original.layers, loaded.layers, strict=True):
        assert after.get_config() == before.get_config(), before.name
        assert after.input_shape == before.input_shape and after.output_shape == before.output_shape
        assert after.weight_names == before.weight_names
        for a, b in zip(before.get_weights(), after.get_weights(), strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b, strict=True)
        assert _generator_states(after) == _generator_states(before), before.name
    assert loaded._shuffle_generator.bit_generator.state == original._shuffle_generator.bit_generator.state
    assert loaded.epochs_done == original.epochs_done
    assert loaded.metrics_names == original.metrics_names
    assert type(loaded.loss) is type(original.loss)
    if original.optimizer is None:
        assert loaded.optimizer is None
        return
    assert type(loaded.optimizer) is type(original.optimizer)
    assert loaded.optimizer.get_config() == original.optimizer.get_config()
    assert loaded.optimizer.iterations == original.optimizer.iterations
    assert sorted(loaded.optimizer.velocities) == sorted(original.optimizer.velocities)
    for key, velocity in original.optimizer.velocities.items():
        np.testing.assert_array_equal(loaded.optimizer.velocities[key], velocity, strict=True)


def _trained(model: Sequential, epochs: int = 2) -> tuple[Sequential, np.ndarray, np.ndarray]:
    model.compile(SGD(learning_rate=0.05, momentum=0.9, nesterov=True, decay=1e-3), "categorical_crossentropy",
                  ["accuracy"])
    x, y = _data(model.input_shape[1:])
    model.fit(x, y, batch_size=4, epochs=epochs, verbose=0, validation_split=0.25)
    return model, x, y


# ------------------------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("layer_class", _layer_classes(), ids=lambda cls: cls.__name__)
def test_round_trip_is_exact_for_every_layer_type(layer_class, tmp_path):
    backend.set_random_seed(11)
    model, x, y = _trained(_model_around(layer_class))
    path = tmp_path / "model"
    model.save(path)
    assert sorted(tmp_path.iterdir()) == [path], "exactly the path given, no extension, no temporary file left"
    loaded = load_model(path)
    assert_same_model(model, loaded)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x), strict=True)
    assert loaded.history.history == model.history.history and loaded.history.epoch == model.history.epoch

    # The strongest check: both carry on identically (same shuffles, same dropout masks, same updates).
    for carrying_on in (model, loaded):
        carrying_on.fit(x, y, batch_size=4, epochs=4, initial_epoch=2, verbose=0, validation_split=0.25)
    assert loaded.history.history == model.history.history
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b, strict=True)


def test_tutorial_cnn_round_trip_with_its_optimizer(tmp_path):
    backend.set_random_seed(1)
    model = applications.mnist_cnn()
    model.compile(SGD(learning_rate=0.01, momentum=0.9, decay=1e-6, nesterov=True), "categorical_crossentropy",
                  ["accuracy"])
    x, _ = _data((28, 28, 1), samples=4)
    y = to_categorical([3, 1, 4, 1], 10)
    model.train_on_batch(x, y)
    model.train_on_batch(x, y)
    model.save(tmp_path / "cnn.tnz")
    loaded = load_model(tmp_path / "cnn.tnz")
    assert_same_model(model, loaded)
    assert loaded.optimizer.iterations == 2 and len(loaded.optimizer.velocities) == 10
    assert loaded.count_params() == 563_114
    np.testing.assert_array_equal(loaded.train_on_batch(x, y), model.train_on_batch(x, y))


def test_an_unfused_model_stays_unfused_and_trains_the_same_after_loading(tmp_path):
    backend.set_random_seed(2)
    model = applications.mnist_cnn()
    model.fuse = False  # the layer-by-layer reference, which rounds differently from the fused stages
    model.compile(SGD(learning_rate=0.01, momentum=0.9), "categorical_crossentropy", ["accuracy"])
    x, _ = _data((28, 28, 1), samples=4)
    y = to_categorical([3, 1, 4, 1], 10)
    model.train_on_batch(x, y)
    model.save(tmp_path / "unfused.tnz")
    loaded = load_model(tmp_path / "unfused.tnz")
    assert loaded.fuse is False
    np.testing.assert_array_equal(loaded.train_on_batch(x, y), model.train_on_batch(x, y))
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        assert np.array_equal(a, b)
    model.fuse = True
    model.save(tmp_path / "fused.tnz")
    assert load_model(tmp_path / "fused.tnz").fuse is True


def test_float64_models_keep_their_dtype(tmp_path, float64):
    model, _, _ = _trained(_model_around(layers.Dense), epochs=1)
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    backend.set_floatx("float32")  # the file, not the process default, decides
    assert_same_model(model, load_model(tmp_path / "m"))
    assert all(weight.dtype == np.float64 for weight in loaded.get_weights())


def test_uncompiled_and_unbuilt_models_round_trip(tmp_path):
    unbuilt = Sequential([layers.Dense(4, activation="relu"), layers.Dense(2)], name="sketch")
    unbuilt.save(tmp_path / "unbuilt")
    loaded = load_model(tmp_path / "unbuilt")
    assert loaded.name == "sketch" and not loaded.built and loaded.optimizer is None
    assert [layer.get_config() for layer in loaded.layers] == [layer.get_config() for layer in unbuilt.layers]

    built = Sequential([layers.Dense(4, input_shape=(3,)), layers.Activation("softmax")])
    built.save(tmp_path / "built")
    assert_same_model(built, load_model(tmp_path / "built"))


def test_sparse_loss_and_explicit_metric_round_trip(tmp_path):
    model = Sequential([layers.Dense(3, input_shape=(4,), activation="softmax")])
    model.compile(SGD(0.1), "sparse_categorical_crossentropy", ["sparse_categorical_accuracy"])
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.loss.name == "sparse_categorical_crossentropy" and loaded._metrics == model._metrics
    assert loaded.metrics_names == ["loss", "sparse_categorical_accuracy"]


class Scale(Layer):
    """A custom layer: ``y = x * gain``, with a NumPy generator of its own that the model file must keep."""

    def __init__(self, start: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.start = start
        self.noise_generator = np.random.default_rng(5)

    def build(self, input_shape):
        self.add_weight("gain", (input_shape[-1],), "ones")
        self.params["gain"][...] = self.start
        super().build(input_shape)

    def forward(self, x, training=False):
        x = self._prepare_input(x)
        self._cache = x
        return x * self.params["gain"]

    def backward(self, dy):
        x = self._take_cache()
        self.grads["gain"] = (dy * x).reshape(-1, x.shape[-1]).sum(axis=0)
        return dy * self.params["gain"]

    def get_config(self):
        return super().get_config() | {"start": self.start}


def test_custom_layers_need_custom_objects(tmp_path):
    model = Sequential([layers.Dense(3, input_shape=(2,)), Scale(3.0), layers.Dense(2, activation="softmax")])
    model.compile(SGD(0.1, momentum=0.5), "categorical_crossentropy")
    model.train_on_batch(np.ones((2, 2), np.float32), np.eye(2, dtype=np.float32))
    model.layers[1].noise_generator.random(7)  # its state must travel too
    model.save(tmp_path / "custom")
    with pytest.raises(ValueError, match=r"custom.*unknown layer class 'Scale'.*custom_objects"):
        load_model(tmp_path / "custom")
    loaded = load_model(tmp_path / "custom", custom_objects={"Scale": Scale})
    assert_same_model(model, loaded)
    assert loaded.layers[1].start == 3.0
    with pytest.raises(TypeError, match="custom_objects"):
        load_model(tmp_path / "custom", custom_objects=[Scale])


def test_bare_weights_files_still_work(tmp_path):
    model, x, _ = _trained(_model_around(layers.Dense), epochs=1)
    model.save_weights(tmp_path / "weights.npz")
    other = _model_around(layers.Dense)
    other.load_weights(tmp_path / "weights.npz")
    np.testing.assert_array_equal(other.predict(x), model.predict(x))


# ------------------------------------------------------------------------------------------------ the format
def _saved(tmp_path, name="model.tnz") -> tuple[Path, Sequential]:
    backend.set_random_seed(3)
    model, _, _ = _trained(_model_around(layers.Dropout), epochs=1)
    path = tmp_path / name
    model.save(path)
    return path, model


def test_file_layout_header_version_length_and_checksum(tmp_path):
    path, _ = _saved(tmp_path)
    data = path.read_bytes()
    magic, version, length, digest = saving.HEADER.unpack_from(data)
    assert magic == saving.MAGIC == data[:8] and version == saving.FORMAT_VERSION == 1
    assert length == len(data) - saving.HEADER_SIZE
    assert digest == hashlib.sha256(data[saving.HEADER_SIZE:]).digest()
    with np.load(io.BytesIO(data[saving.HEADER_SIZE:]), allow_pickle=False) as archive:
        document = json.loads(archive[saving.DOCUMENT_KEY].tobytes())
    assert document["format"] == "tinynet.model" and document["epochs_done"] == 1
    state = document["model"]["shuffle_generator"]
    assert state["bit_generator"] == "PCG64" and state["state"]["state"] > 2**64  # a big int, kept by JSON


def _failing_atomic_write(real, fail_after_bytes: int):
    """atomic_write whose file fails (as a full disk would) once ``fail_after_bytes`` have been written."""
    import contextlib

    @contextlib.contextmanager
    def failing(path):
        with real(path) as file:
            class HalfWritten:
                written = 0

                def write(self, data):
                    room = fail_after_bytes - self.written
                    if len(data) > room:
                        file.write(data[:max(room, 0)])
                        raise OSError(28, "No space left on device")
                    self.written += len(data)
                    return file.write(data)
            yield HalfWritten()
    return failing


@pytest.mark.parametrize("fail_after_bytes", [0, 30, 1000])
def test_a_failed_save_leaves_the_previous_file_whole(tmp_path, monkeypatch, fail_after_bytes):
    path, model = _saved(tmp_path)
    before = path.read_bytes()
    model.layers[0].params["kernel"][...] = 0.5
    monkeypatch.setattr(model_file, "atomic_write", _failing_atomic_write(model_file.atomic_write, fail_after_bytes))
    with pytest.raises(OSError, match="No space left"):
        model.save(path)
    assert path.read_bytes() == before
    assert sorted(tmp_path.iterdir()) == [path], "the temporary file is removed"
    assert not np.all(load_model(path).layers[0].params["kernel"] == 0.5)


def test_a_process_killed_in_the_middle_of_a_save_leaves_the_previous_file_whole(tmp_path):
    path, _ = _saved(tmp_path)
    before = path.read_bytes()
    script = textwrap.dedent(f"""
        import contextlib, os
        from tinynet import fileio, layers
        from tinynet.models import load_model
        from tinynet.models.saving import model_file

        real = fileio.atomic_write

        @contextlib.contextmanager
        def killed_halfway(path):
            with real(path) as file:
                class Dying:
                    def write(self, data):
                        file.write(data[: len(data) // 2])
                        file.flush()
                        os._exit(9)  # no cleanup, no exception handlers: as a kill -9 or a power cut
                yield Dying()

        model = load_model({str(path)!r})
        model.layers[0].params["kernel"][...] = 0.5
        model_file.atomic_write = killed_halfway
        model.save({str(path)!r})
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPOSITORY, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 9, result.stderr
    assert path.read_bytes() == before
    leftovers = [item.name for item in tmp_path.iterdir() if item != path]
    assert leftovers and all(name.startswith(".model.tnz.") for name in leftovers)  # the temporary file only
    load_model(path)


# ------------------------------------------------------------------------------------------- refused files
def _expect_refusal(path: Path, *fragments: str) -> str:
    with pytest.raises(ValueError) as error:
        load_model(path)
    message = str(error.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_a_flipped_payload_byte_is_refused_as_corrupt(tmp_path):
    path, _ = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    _expect_refusal(path, "corrupt", "SHA-256")


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_flipped_byte_is_refused_with_a_value_error(tmp_path_factory, position, flip):
    folder = tmp_path_factory.mktemp("flip")
    path, _ = _saved(folder)
    data = bytearray(path.read_bytes())
    data[position % len(data)] ^= flip
    path.write_bytes(bytes(data))
    _expect_refusal(path)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keep=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_truncated_files_are_refused(tmp_path_factory, keep):
    folder = tmp_path_factory.mktemp("cut")
    path, _ = _saved(folder)
    data = path.read_bytes()
    cut = int(len(data) * keep)
    path.write_bytes(data[:cut])
    if cut == 0:
        _expect_refusal(path, "empty")
    else:
        _expect_refusal(path, "truncated")


def test_trailing_bytes_are_refused(tmp_path):
    path, _ = _saved(tmp_path)
    path.write_bytes(path.read_bytes() + b"\x00extra")
    _expect_refusal(path, "corrupt", "6 unexpected bytes")


@pytest.mark.parametrize("version", [0, 2, 99])
def test_other_format_versions_are_refused(tmp_path, version):
    path, _ = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    data[8:12] = version.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    message = _expect_refusal(path, f"format version {version}", "reads version 1")
    assert ("upgrade tinynet" in message) == (version > 1)


def test_foreign_files_are_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("just some text, long enough to pass for a header if nobody checked the magic bytes")
    _expect_refusal(text, "not a tinynet model file")
    weights = tmp_path / "weights.npz"
    _model_around(layers.Dense).save_weights(weights)
    _expect_refusal(weights, "not a tinynet model file", "use load_weights")
    _expect_refusal(tmp_path, "is a folder")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_model(tmp_path / "missing.tnz")


def _rewrite_document(path: Path, change) -> None:
    """Re-pack a model file with its JSON document changed and a valid header (checks past the checksum)."""
    payload = path.read_bytes()[saving.HEADER_SIZE:]
    with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    document = json.loads(arrays[saving.DOCUMENT_KEY].tobytes())
    change(document)
    arrays[saving.DOCUMENT_KEY] = np.frombuffer(json.dumps(document).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    path.write_bytes(saving.file_header(payload) + payload)


@pytest.mark.parametrize("change, fragments", [
    (lambda d: d["model"]["layers"][1].update(class_name="Mystery"), ["unknown layer class 'Mystery'"]),
    (lambda d: d["compile"]["optimizer"].update(class_name="Adamish"), ["unknown optimizer class 'Adamish'"]),
    (lambda d: d["compile"]["loss"].update(class_name="FocalLoss"), ["unknown loss class 'FocalLoss'"]),
    (lambda d: d["model"]["layers"][0]["config"].update(filters=-2), ["cannot be rebuilt", "filters"]),
    (lambda d: d["model"]["layers"][0]["weights"].popitem(), ["has weights"]),
    (lambda d: d["model"]["layers"][0]["weights"].update(kernel="array_999"), ["missing"]),
    (lambda d: d["model"]["shuffle_generator"].update(bit_generator="Lottery"), ["unknown random bit generator"]),
    (lambda d: d.pop("model"), ["malformed"]),
    (lambda d: d.update(format="something.else"), ["does not describe a tinynet model"]),
])
def test_inconsistent_documents_are_refused_naming_the_problem(tmp_path, change, fragments):
    path, _ = _saved(tmp_path)
    _rewrite_document(path, change)
    _expect_refusal(path, *fragments)


def test_a_weight_of_the_wrong_shape_is_refused(tmp_path):
    path, _ = _saved(tmp_path)
    payload = path.read_bytes()[saving.HEADER_SIZE:]
    with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    document = json.loads(arrays[saving.DOCUMENT_KEY].tobytes())
    key = document["model"]["layers"][0]["weights"]["kernel"]
    arrays[key] = arrays[key][..., :1]
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    path.write_bytes(saving.HEADER.pack(saving.MAGIC, 1, len(payload), hashlib.sha256(payload).digest()) + payload)
    _expect_refusal(path, "kernel has shape", "expects")


def test_the_readme_example_runs(tmp_path, monkeypatch):
    import re

    text = (REPOSITORY / "README.md").read_text()
    section = text[text.index("## Saving, resuming and callbacks"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["model"].epochs_done == 4
    assert [line.split(",")[0] for line in (tmp_path / "log.csv").read_text().splitlines()] == \
        ["epoch", "0", "1", "2", "3"]


def test_loading_leaves_the_process_random_streams_alone(tmp_path):
    path, _ = _saved(tmp_path)
    backend.set_random_seed(8)
    expected = _model_around(layers.Dropout).get_weights()
    backend.set_random_seed(8)
    load_model(path)
    for a, b in zip(expected, _model_around(layers.Dropout).get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


# -------------------------------------------------------------------------------- what saving leaves behind
def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                             text=True, check=True)
    return int(process.stdout)


def _age(path: Path, seconds: float = fileio.STALE_TEMPORARY_SECONDS + 5) -> None:
    when = time.time() - seconds
    os.utime(path, (when, when))


def test_a_save_removes_stale_temporaries_of_dead_writers_and_keeps_the_rest(tmp_path):
    path, model = _saved(tmp_path)
    dead, alive = _dead_pid(), os.getpid()
    stale = tmp_path / f".model.tnz.{dead}.{'a' * 32}.tmp"
    other_checkpoint = tmp_path / f".epoch-3.tnz.{dead}.{'b' * 32}.tmp"  # ModelCheckpoint's other file names too
    fresh = tmp_path / f".model.tnz.{dead}.{'c' * 32}.tmp"  # its writer may be one we cannot see: too young
    live = tmp_path / f".model.tnz.{alive}.{'d' * 32}.tmp"
    unrelated = tmp_path / f".model.tnz.{dead}.notes.tmp"  # not our pattern
    for leftover in (stale, other_checkpoint, fresh, live, unrelated):
        leftover.write_bytes(b"half a model")
    for old in (stale, other_checkpoint, live, unrelated):
        _age(old)
    model.save(path)
    assert sorted(item.name for item in tmp_path.iterdir()) == sorted(
        item.name for item in (path, fresh, live, unrelated))
    load_model(path)


def test_the_temporary_of_a_killed_save_is_removed_by_the_next_save(tmp_path):
    path, model = _saved(tmp_path)
    script = textwrap.dedent(f"""
        import os
        from tinynet import fileio
        with fileio.atomic_write({str(path)!r}) as file:
            file.write(b"half")
            file.flush()
            os.kill(os.getpid(), 9)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPOSITORY, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == -9, result.stderr
    (leftover,) = [item for item in tmp_path.iterdir() if item != path]
    _age(leftover)
    model.save(path)
    assert sorted(tmp_path.iterdir()) == [path]


def test_saving_over_a_file_keeps_its_mode(tmp_path):
    path, model = _saved(tmp_path)
    path.chmod(0o600)
    model.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    weights = tmp_path / "weights.npz"
    model.save_weights(weights)
    weights.chmod(0o640)
    model.save_weights(weights)
    assert stat.S_IMODE(weights.stat().st_mode) == 0o640


def test_saving_through_a_symlink_replaces_the_file_it_points_to(tmp_path):
    path, model = _saved(tmp_path)
    link = tmp_path / "latest.tnz"
    link.symlink_to(path.name)
    model.layers[0].params["kernel"][...] = 0.25
    model.save(link)
    assert link.is_symlink() and os.readlink(link) == path.name
    assert np.all(load_model(path).layers[0].params["kernel"] == 0.25)
    assert sorted(item.name for item in tmp_path.iterdir()) == ["latest.tnz", "model.tnz"]


# ------------------------------------------------------------------------------------- bare weights by name
def test_load_weights_matches_arrays_by_name_not_by_their_order_in_the_file(tmp_path):
    model, x, _ = _trained(_model_around(layers.Dense), epochs=1)
    arrays = {f"{layer.name}/{name}": layer._weight(name) for layer in model.layers for name in layer.weight_names}
    path = tmp_path / "reversed.npz"
    np.savez(path, **dict(reversed(arrays.items())))  # the last layer's bias first
    fresh = _model_around(layers.Dense)
    for layer, original in zip(fresh.layers, model.layers, strict=True):
        layer.name = original.name
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))


def test_load_weights_refuses_names_of_the_model_in_the_wrong_places(tmp_path):
    model = Sequential([layers.Dense(4, input_shape=(4,), name="a"), layers.Dense(4, name="b")])
    kernel_a, bias_a, kernel_b, bias_b = (np.full(shape, value, np.float32) for shape, value in
                                          (((4, 4), 1), ((4,), 2), ((4, 4), 3), ((4,), 4)))
    path = tmp_path / "swapped.npz"
    # A file whose order says "a, b" but whose names say b's kernel is a's: names win.
    np.savez(path, **{"b/kernel": kernel_a, "b/bias": bias_a, "a/kernel": kernel_b, "a/bias": bias_b})
    model.load_weights(path)
    np.testing.assert_array_equal(model.layers[0].params["kernel"], kernel_b)
    np.testing.assert_array_equal(model.layers[1].params["bias"], bias_a)
    np.savez(path, **{"a/kernel": kernel_a, "a/bias": bias_a, "c/kernel": kernel_b, "c/bias": bias_b})
    with pytest.raises(ValueError, match=r"missing \['b/kernel', 'b/bias'\].*unknown \['c/kernel', 'c/bias'\]"):
        model.load_weights(path)


def test_load_weights_reads_a_compressed_npz_too(tmp_path):
    model, x, _ = _trained(_model_around(layers.Dense), epochs=1)
    path = tmp_path / "compressed.npz"
    np.savez_compressed(path, **{f"{layer.name}/{name}": layer._weight(name)
                                 for layer in model.layers for name in layer.weight_names})
    fresh = _model_around(layers.Dense)
    fresh.load_weights(path)  # a twin with other automatic names: matched by position
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))
