"""Keras interop of the Keras 2 layers and activations added for issue 12 (ELU, Reshape, ZeroPadding2D, dilated
Conv2D; elu, selu, softplus, softsign, exponential, hard_sigmoid): tinynet -> .keras/.h5 -> Keras 3 and back,
Keras 3 -> tinynet, and hard_sigmoid, whose formula Keras 3 changed, read only from Keras 2 files.

Keras 3 runs on its numpy backend, as in ``test_interop_keras.py``; those tests skip without it.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from test_interop_keras import _keras  # Keras 3 on its numpy backend, or a skip

from tinynet import backend
from tinynet import layers as L
from tinynet.models import Sequential, load_model
from tinynet.optimizers import SGD

h5py = pytest.importorskip("h5py")
os.environ.setdefault("KERAS_BACKEND", "numpy")


def new_layers() -> Sequential:
    backend.set_random_seed(7)
    model = Sequential([
        L.ZeroPadding2D(((1, 0), (2, 1)), input_shape=(7, 6, 2)),
        L.Conv2D(4, 3, dilation_rate=(2, 1), activation="elu"), L.ELU(0.5),
        L.Conv2D(3, 2, padding="same", dilation_rate=2, activation="selu"), L.ZeroPadding2D(1),
        L.Activation("softsign"), L.Reshape((-1, 3)), L.Activation("softplus"), L.Flatten(),
        L.Dense(6, activation="exponential"), L.Dense(3, activation="softmax")])
    model.compile(SGD(0.01, momentum=0.9), "categorical_crossentropy", ["accuracy"])
    return model


def _data(model: Sequential, count: int = 19) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((count, *model.input_shape[1:]), dtype=np.float32)
    return x, np.eye(model.output_shape[-1], dtype=np.float32)[np.arange(count) % model.output_shape[-1]]


@pytest.mark.parametrize("extension", ["keras", "h5"])
def test_the_new_layers_go_to_keras3_and_come_back(tmp_path, extension):
    keras = _keras()
    model = new_layers()
    x, y = _data(model)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / f"model.{extension}"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x), atol=1e-6)
    assert loaded.layers[1].dilation_rate == (2, 1) and loaded.layers[2].alpha == 0.5
    back = load_model(path)
    for before, after in zip(model.layers, back.layers, strict=True):
        assert after.get_config() | {"input_shape": None} == before.get_config() | {"input_shape": None}
    np.testing.assert_array_equal(back.predict(x), model.predict(x))


@pytest.mark.parametrize("extension", ["keras", "h5"])
def test_keras3_models_with_the_new_layers_load(tmp_path, extension):
    keras = _keras()
    layers = keras.layers
    original = keras.Sequential([
        keras.Input((9, 8, 2)), layers.ZeroPadding2D((1, 2)), layers.Conv2D(3, 3, dilation_rate=2, activation="elu"),
        layers.ELU(), layers.Conv2D(4, (2, 3), padding="same", dilation_rate=(1, 3), activation="softplus"),
        layers.Reshape((4, -1)), layers.Activation("selu"), layers.Flatten(),
        layers.Dense(5, activation="softsign"), layers.Dense(2, activation="exponential")])
    rng = np.random.default_rng(1)
    original.set_weights([rng.normal(size=w.shape).astype("float32") * 0.3 for w in original.weights])
    path = tmp_path / f"model.{extension}"
    original.save(path)
    model = load_model(path)
    assert [type(layer).__name__ for layer in model.layers] == [
        "ZeroPadding2D", "Conv2D", "ELU", "Conv2D", "Reshape", "Activation", "Flatten", "Dense", "Dense"]
    x = rng.random((11, 9, 8, 2), dtype=np.float32)
    np.testing.assert_allclose(model.predict(x), original.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_hard_sigmoid_is_read_from_keras2_files_only_and_never_written(tmp_path):
    model = Sequential([L.Dense(3, activation="hard_sigmoid", input_shape=(4,))])
    with pytest.raises(TypeError, match="hard_sigmoid"):
        model.save(tmp_path / "model.keras")
    model.layers[0].activation = L.Activation("linear").activation
    model.save(tmp_path / "model.h5")  # a Keras 3 format file, as tinynet writes them
    with h5py.File(tmp_path / "model.h5", "r+") as root:
        config = json.loads(root.attrs["model_config"])
        config["config"]["layers"][1]["config"]["activation"] = "hard_sigmoid"
        root.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ValueError, match="Keras 3's hard_sigmoid"):
        load_model(tmp_path / "model.h5")
    with h5py.File(tmp_path / "model.h5", "r+") as root:
        root.attrs["keras_version"] = b"2.2.4"
    loaded = load_model(tmp_path / "model.h5")
    x = np.linspace(-4, 4, 8, dtype=np.float32).reshape(2, 4)
    kernel, bias = loaded.layers[0].get_weights()
    np.testing.assert_allclose(loaded.predict(x), np.clip(0.2 * (x @ kernel + bias) + 0.5, 0, 1), atol=1e-6)


def test_an_uncompiled_keras3_model_loads_uncompiled(tmp_path):
    # Keras 3 writes "compile_config": {} (not null) for a model that was never compiled.
    keras = _keras()
    original = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softplus")])
    original.save(tmp_path / "model.keras")
    model = load_model(tmp_path / "model.keras")
    assert model.optimizer is None
    x = np.random.default_rng(0).random((4, 3), dtype=np.float32)
    np.testing.assert_allclose(model.predict(x), original.predict(x, verbose=0), atol=1e-6)


def test_a_keras_file_whose_last_layer_would_output_a_huge_sample_is_refused(tmp_path):
    # A few bytes of JSON asking for 10^6 rows of zeros around each image: 4 * 10^12 numbers per sample.
    Sequential([L.Conv2D(1, 1, input_shape=(4, 4, 1)), L.ZeroPadding2D(1)]).save(tmp_path / "model.h5")
    with h5py.File(tmp_path / "model.h5", "r+") as root:
        config = json.loads(root.attrs["model_config"])
        config["config"]["layers"][-1]["config"]["padding"] = 10**6
        root.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ValueError, match="numbers per sample"):
        load_model(tmp_path / "model.h5")
