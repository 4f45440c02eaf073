"""Keras files both ways: tinynet -> .keras/.h5 -> Keras 3, Keras 3 -> .keras/.h5 -> tinynet, and Keras 2 files.

Keras 3 runs on its numpy backend (``KERAS_BACKEND=numpy``: it builds, saves, loads and predicts without
TensorFlow, JAX's compiler or torch); those tests are skipped when Keras 3 is not installed. The Keras 2 files are
built here with h5py in Keras 2.2.4's layout (``_serialize_model`` in ``keras/engine/saving.py`` at tag 2.2.4:
root attributes ``keras_version``, ``backend``, ``model_config``, ``training_config``; ``model_weights`` with
``layer_names`` and per-layer ``weight_names``; ``optimizer_weights``), in both of Keras 2's Sequential forms.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tinynet import backend
from tinynet import layers as L
from tinynet.models import Sequential, load_model
from tinynet.optimizers import SGD

h5py = pytest.importorskip("h5py")
os.environ.setdefault("KERAS_BACKEND", "numpy")


def _keras():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "numpy" and os.environ.get("KERAS_BACKEND") == "numpy":
        pytest.skip("Keras was imported with another backend")
    return keras


def tutorial_cnn() -> Sequential:
    backend.set_random_seed(5)
    model = Sequential([L.Conv2D(8, (3, 3), input_shape=(12, 12, 1)), L.MaxPooling2D((2, 2)), L.Activation("relu"),
                        L.Dropout(0.25), L.Conv2D(8, (3, 3)), L.MaxPooling2D((2, 2)), L.Activation("relu"),
                        L.Dropout(0.25), L.Flatten(), L.Dense(10, activation="softmax")])
    model.compile(SGD(lr=0.001, decay=1e-6, nesterov=True), "categorical_crossentropy", ["accuracy"])
    return model


def every_layer() -> Sequential:
    backend.set_random_seed(6)
    model = Sequential([
        L.Conv2D(4, 3, padding="same", activation="relu", input_shape=(12, 11, 2)), L.BatchNormalization(),
        L.MaxPooling2D(2, padding="same"), L.AveragePooling2D(3, strides=2, padding="same"), L.LeakyReLU(0.2),
        L.ReLU(max_value=0.7, threshold=0.05), L.Dropout(0.3), L.Activation("tanh"), L.Conv2D(6, 2, use_bias=False),
        L.GlobalAveragePooling2D(), L.Dense(7, activation="sigmoid"), L.BatchNormalization(momentum=0.9),
        L.Dense(5, activation="softmax")])
    model.compile(SGD(0.05, momentum=0.9, decay=1e-3, nesterov=True), "categorical_crossentropy", ["accuracy"])
    return model


def _data(model: Sequential, count: int = 24) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((count, *model.input_shape[1:]), dtype=np.float32)
    return x, np.eye(model.output_shape[-1], dtype=np.float32)[np.arange(count) % model.output_shape[-1]]


def _trained(make) -> Sequential:
    model = make()
    x, y = _data(model)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # moving statistics and velocities that are not zeros
    return model


@pytest.mark.parametrize("make", [tutorial_cnn, every_layer])
@pytest.mark.parametrize("extension", ["keras", "h5"])
def test_tinynet_to_keras3(tmp_path, make, extension):
    keras = _keras()
    model = _trained(make)
    path = tmp_path / f"model.{extension}"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x, _ = _data(model, 37)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x), atol=1e-6)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert int(np.asarray(loaded.optimizer.iterations)) == model.optimizer.iterations
    assert loaded.optimizer.momentum == model.optimizer.momentum


@pytest.mark.parametrize("make", [tutorial_cnn, every_layer])
@pytest.mark.parametrize("extension", ["keras", "h5"])
def test_tinynet_round_trip_keeps_weights_compile_settings_and_velocities(tmp_path, make, extension):
    model = _trained(make)
    path = tmp_path / f"model.{extension}"
    model.save(path)
    loaded = load_model(path)
    x, y = _data(model, 37)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations
    assert type(loaded.loss) is type(model.loss) and loaded.metrics_names == model.metrics_names
    expected = model.optimizer.get_slots(model.layers)["velocities"]
    held = loaded.optimizer.get_slots(loaded.layers)["velocities"]
    assert sorted(held) == sorted(expected)
    assert expected or model.optimizer.momentum == 0
    for key, value in expected.items():
        np.testing.assert_array_equal(held[key], value)
    # Training continues as the original would: the same update from the same optimizer state. (A Keras file
    # keeps no random streams: both models get the same dropout generators for this check.)
    model.fuse = loaded.fuse = False
    for first, second in zip(model.layers, loaded.layers, strict=True):
        if hasattr(first, "generator"):
            first.generator, second.generator = np.random.default_rng(9), np.random.default_rng(9)
    model.train_on_batch(x[:8], y[:8])
    loaded.train_on_batch(x[:8], y[:8])
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), atol=1e-6)


def _keras_model(keras, every: bool):
    layers = keras.layers
    if every:
        stack = [keras.Input((12, 11, 2)), layers.Conv2D(4, 3, padding="same", activation="relu"),
                 layers.BatchNormalization(), layers.MaxPooling2D(2, padding="same"),
                 layers.AveragePooling2D(3, strides=2, padding="same"), layers.LeakyReLU(negative_slope=0.2),
                 layers.ReLU(max_value=0.7, threshold=0.05), layers.Dropout(0.3), layers.Activation("tanh"),
                 layers.Conv2D(6, 2, use_bias=False), layers.GlobalAveragePooling2D(),
                 layers.Dense(7, activation="sigmoid"), layers.BatchNormalization(), layers.Dense(5,
                                                                                              activation="softmax")]
    else:
        stack = [keras.Input((12, 12, 1)), layers.Conv2D(8, 3), layers.MaxPooling2D(2), layers.Activation("relu"),
                 layers.Dropout(0.25), layers.Flatten(), layers.Dense(10, activation="softmax")]
    model = keras.Sequential(stack)
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(size=w.shape).astype("float32") * 0.3 + (1.0 if "variance" in w.path else 0.0)
                       for w in model.weights])
    schedule = keras.optimizers.schedules.InverseTimeDecay(0.01, decay_steps=1, decay_rate=1e-4)
    model.compile(keras.optimizers.SGD(schedule, momentum=0.5), "categorical_crossentropy", ["accuracy"])
    return model


@pytest.mark.parametrize("every", [False, True])
@pytest.mark.parametrize("extension", ["keras", "h5"])
def test_keras3_to_tinynet_and_training_continues(tmp_path, every, extension):
    keras = _keras()
    original = _keras_model(keras, every)
    path = tmp_path / f"model.{extension}"
    original.save(path)
    model = load_model(path)
    x = np.random.default_rng(2).random((37, *original.input_shape[1:]), dtype=np.float32)
    np.testing.assert_allclose(model.predict(x), original.predict(x, verbose=0), atol=1e-6)
    assert model.optimizer.get_config() == {"learning_rate": 0.01, "momentum": 0.5, "decay": 1e-4,
                                            "nesterov": False}
    # Keras 3 writes ``metrics: null`` for a model compiled but never fitted or evaluated (its metrics are built
    # lazily); tinynet reads what the file says.
    assert model.metrics_names == ["loss"]
    y = np.eye(model.output_shape[-1], dtype=np.float32)[np.arange(37) % model.output_shape[-1]]
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, batch_size=37, epochs=5, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before


@pytest.mark.parametrize("weights_name", ["weights.weights.h5", "weights.h5"])
def test_weights_files_both_ways(tmp_path, weights_name):
    keras = _keras()
    model = _trained(every_layer)
    twin = _keras_model(keras, every=True)
    path = tmp_path / weights_name
    model.save_weights(path)
    twin.load_weights(path)
    x, _ = _data(model, 5)
    np.testing.assert_allclose(twin.predict(x, verbose=0), model.predict(x), atol=1e-6)
    twin.set_weights([w * 0.5 for w in twin.get_weights()])
    # Keras 3 writes only .weights.h5 weights files; a legacy .h5 comes from its full-model save.
    keras_path = tmp_path / ("k" + weights_name)
    twin.save(keras_path) if weights_name == "weights.h5" else twin.save_weights(keras_path)
    model.load_weights(keras_path)
    np.testing.assert_allclose(model.predict(x), twin.predict(x, verbose=0), atol=1e-6)


def test_saving_anything_else_keeps_tinynet_format(tmp_path):
    model = _trained(tutorial_cnn)
    model.save(tmp_path / "model.tnz")
    assert (tmp_path / "model.tnz").read_bytes().startswith(b"\x93TINYNET")
    model.save(tmp_path / "model.h5")
    assert (tmp_path / "model.h5").read_bytes().startswith(b"\x89HDF")


# ------------------------------------------------------------------------------------ Keras 2 files (h5py)
def _keras2_layers(list_form: bool) -> list[dict]:
    """The tutorial CNN's layer configs as Keras 2.2.4 serialized them (VarianceScaling initializers, lr)."""
    glorot = {"class_name": "VarianceScaling", "config": {"scale": 1.0, "mode": "fan_avg",
                                                          "distribution": "uniform", "seed": None}}
    zeros = {"class_name": "Zeros", "config": {}}
    return [
        {"class_name": "Conv2D", "config": {
            "name": "conv2d_1", "trainable": True, "batch_input_shape": [None, 8, 8, 1], "dtype": "float32",
            "filters": 3, "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid",
            "data_format": "channels_last", "dilation_rate": [1, 1], "activation": "linear", "use_bias": True,
            "kernel_initializer": glorot, "bias_initializer": zeros, "kernel_regularizer": None,
            "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
            "bias_constraint": None}},
        {"class_name": "MaxPooling2D", "config": {"name": "max_pooling2d_1", "trainable": True, "pool_size": [2, 2],
                                                  "padding": "valid", "strides": [2, 2],
                                                  "data_format": "channels_last"}},
        {"class_name": "LeakyReLU", "config": {"name": "leaky_re_lu_1", "trainable": True, "alpha": 0.1}},
        {"class_name": "Dropout", "config": {"name": "dropout_1", "trainable": True, "rate": 0.25,
                                             "noise_shape": None, "seed": None}},
        {"class_name": "Flatten", "config": {"name": "flatten_1", "trainable": True,
                                             "data_format": "channels_last"}},
        {"class_name": "Dense", "config": {
            "name": "dense_1", "trainable": True, "units": 4, "activation": "softmax", "use_bias": True,
            "kernel_initializer": glorot, "bias_initializer": zeros, "kernel_regularizer": None,
            "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
            "bias_constraint": None}},
    ]


def _keras2_file(path, list_form: bool, rng) -> dict[str, np.ndarray]:
    layers = _keras2_layers(list_form)
    config = layers if list_form else {"name": "sequential_1", "layers": layers}
    weights = {"conv2d_1": {"kernel": rng.normal(size=(3, 3, 1, 3)), "bias": rng.normal(size=3)},
               "dense_1": {"kernel": rng.normal(size=(27, 4)), "bias": rng.normal(size=4)}}
    with h5py.File(path, "w") as root:
        root.attrs["keras_version"] = b"2.2.4"
        root.attrs["backend"] = b"tensorflow"
        root.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": config}).encode()
        root.attrs["training_config"] = json.dumps({
            "optimizer_config": {"class_name": "SGD", "config": {"lr": 0.001, "momentum": 0.9, "decay": 1e-6,
                                                                 "nesterov": True}},
            "loss": "categorical_crossentropy", "metrics": ["accuracy"], "sample_weight_mode": None,
            "loss_weights": None}).encode()
        group = root.create_group("model_weights")
        group.attrs["layer_names"] = [layer["config"]["name"].encode() for layer in layers]
        group.attrs["backend"] = b"tensorflow"
        group.attrs["keras_version"] = b"2.2.4"
        optimizer_names = [b"training/SGD/Variable:0"]
        optimizer_values = [np.array(7, dtype=np.int64)]
        for layer in layers:
            name = layer["config"]["name"]
            layer_group = group.create_group(name)
            held = weights.get(name, {})
            layer_group.attrs["weight_names"] = [f"{name}/{weight}:0".encode() for weight in held]
            for weight, value in held.items():
                layer_group.create_dataset(f"{name}/{weight}:0", data=value.astype(np.float32))
                optimizer_names.append(f"training/SGD/Variable_{len(optimizer_names)}:0".encode())
                optimizer_values.append(np.full(value.shape, 0.5, np.float32))
        optimizer_group = root.create_group("optimizer_weights")
        optimizer_group.attrs["weight_names"] = optimizer_names
        for name, value in zip(optimizer_names, optimizer_values, strict=True):
            optimizer_group.create_dataset(name.decode(), data=value)
    return weights


@pytest.mark.parametrize("list_form", [True, False], ids=["keras<=2.2.2 list", "keras>=2.2.3 dict"])
def test_keras2_h5_files_load(tmp_path, list_form):
    rng = np.random.default_rng(3)
    weights = _keras2_file(tmp_path / "keras2.h5", list_form, rng)
    model = load_model(tmp_path / "keras2.h5")
    assert [layer.name for layer in model.layers] == [layer["config"]["name"] for layer in _keras2_layers(list_form)]
    assert model.input_shape == (None, 8, 8, 1)
    assert model.layers[2].alpha == 0.1
    assert model.optimizer.get_config() == {"learning_rate": 0.001, "momentum": 0.9, "decay": 1e-6,
                                            "nesterov": True}
    assert model.optimizer.iterations == 7
    np.testing.assert_array_equal(model.optimizer.get_slots(model.layers)["velocities"][("dense_1", "bias")],
                                  np.full(4, 0.5, np.float32))
    x = rng.random((4, 8, 8, 1), dtype=np.float32)
    conv = weights["conv2d_1"]
    patches = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))  # (N, 6, 6, 1, 3, 3)
    z = np.einsum("nhwcij,ijcf->nhwf", patches, conv["kernel"]) + conv["bias"]
    z = z.reshape(4, 3, 2, 3, 2, 3).max(axis=(2, 4))
    z = np.where(z > 0, z, 0.1 * z).reshape(4, -1) @ weights["dense_1"]["kernel"] + weights["dense_1"]["bias"]
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(model.predict(x), expected / expected.sum(axis=1, keepdims=True), atol=1e-5)


# --------------------------------------------------------------------------------------- clear refusals
def _keras3_config_file(tmp_path, change) -> object:
    model = _trained(tutorial_cnn)
    model.save(tmp_path / "model.h5")
    with h5py.File(tmp_path / "model.h5", "r+") as root:
        config = json.loads(root.attrs["model_config"])
        change(config["config"]["layers"])
        root.attrs["model_config"] = json.dumps(config)
    return tmp_path / "model.h5"


@pytest.mark.parametrize("change, fragments", [
    (lambda layers: layers.insert(2, {"class_name": "Lambda", "config": {"name": "code", "function": "gAN..."}}),
     ["Lambda", "code"]),
    (lambda layers: layers.insert(2, {"class_name": "LSTM", "config": {"name": "lstm"}}), ["LSTM"]),
    (lambda layers: layers[1]["config"].update(kernel_regularizer={"class_name": "L2", "config": {"l2": 0.1}}),
     ["kernel_regularizer"]),
    (lambda layers: layers[1]["config"].update(dilation_rate=[2, 2], strides=[2, 2]), ["dilation_rate", "strides"]),
    (lambda layers: layers[-1]["config"].update(activation="hard_sigmoid"), ["hard_sigmoid", "Keras 3"]),
    (lambda layers: layers[1].update(registered_name="my_package>MyConv"), ["my_package>MyConv"]),
    (lambda layers: layers[1].update(module="my_package.layers"), ["my_package.layers"]),
    (lambda layers: layers[-1]["config"].update(activation="gelu"), ["gelu"]),
])
def test_what_tinynet_lacks_is_refused_by_name(tmp_path, change, fragments):
    path = _keras3_config_file(tmp_path, change)
    with pytest.raises(ValueError) as error:
        load_model(path)
    for fragment in [str(path), *fragments]:
        assert fragment in str(error.value)


@pytest.mark.parametrize("module, extra, action", [
    ("h5py", "keras", lambda model, folder: model.save(folder / "model.keras")),
    ("onnx", "onnx", lambda model, folder: model.export(folder / "model.onnx")),
])
def test_a_missing_optional_package_names_the_extra(tmp_path, monkeypatch, module, extra, action):
    monkeypatch.setitem(__import__("sys").modules, module, None)  # as if it were not installed
    with pytest.raises(ImportError, match=rf"pip install 'tinynet\[{extra}\]'"):
        action(tutorial_cnn(), tmp_path)
