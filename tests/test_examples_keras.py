"""Keras 2.2.4's own MNIST examples (``examples/keras_mnist_cnn.py``, ``examples/keras_mnist_mlp.py``) still run on
tinynet, unchanged but for their imports, and still ask for Keras's recipes.

CI has no MNIST and must not fetch it, so ``mnist.load_data`` is replaced by digits-like stand-ins (dim noise with a
bright bar whose row depends on the label, as in ``conftest.tiny_idx_dataset``), and ``Sequential.fit`` by a
wrapper that records what the example asked for, then trains on the first few hundred images for a few epochs: the
full recipes (12 and 20 epochs over 60,000 images) took 35 and 9 minutes on two shared cores, and
``docs/reproduction.md`` has their figures. Everything else -- the reshapes, ``K.image_data_format()``,
``keras.utils.to_categorical``, the function object ``keras.losses.categorical_crossentropy`` given to ``compile``,
``summary``, ``evaluate`` -- runs as written.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

from tinynet.datasets import mnist
from tinynet.losses import CategoricalCrossentropy
from tinynet.models import Sequential
from tinynet.optimizers import Adadelta, RMSprop
from tinynet.utils import set_random_seed

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
KERAS_MLP_TRAIN, KERAS_MLP_TEST = 60000, 10000  # keras_mnist_mlp.py reshapes to these counts, as Keras's does


def _bar_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` 28x28 uint8 images of dim noise with a bright bar at rows ``2 + 2 * label``, labels ``index % 10``."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(count) % 10).astype(np.uint8)
    images = rng.integers(0, 40, size=(count, 28, 28), dtype=np.uint8)
    rows = 2 + 2 * labels[:, None] + np.arange(2)  # the two rows of each image's bar
    images[np.arange(count)[:, None], rows, 4:24] = 255
    return images, labels


def _run_example(monkeypatch, capsys, name: str, train: int, test: int, *, images_used: int, epochs_run: int):
    """Run ``examples/<name>`` with stand-in data and a shortened ``fit``; return its globals, the arguments it
    gave ``fit`` and what it printed."""
    monkeypatch.setattr(mnist, "load_data", lambda *args, **kwargs: (_bar_digits(train, 0), _bar_digits(test, 1)))
    fit_calls: list[dict] = []
    full_fit = Sequential.fit

    def shortened_fit(self, x, y, **options):
        fit_calls.append({"model": self, "samples": len(x), **options})
        x_test, y_test = options["validation_data"]
        return full_fit(self, x[:images_used], y[:images_used], batch_size=options["batch_size"], epochs=epochs_run,
                        verbose=0, validation_data=(x_test[:images_used], y_test[:images_used]))

    monkeypatch.setattr(Sequential, "fit", shortened_fit)
    set_random_seed(0)  # the examples draw their initial weights and dropout masks unseeded, as Keras's do
    namespace = runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return namespace, fit_calls, capsys.readouterr().out


def _printed_figure(output: str, label: str) -> float:
    lines = [line for line in output.splitlines() if line.startswith(label)]
    assert len(lines) == 1, f"expected one line starting with {label!r} in the example's output:\n{output}"
    return float(lines[0][len(label):])


def test_keras_mnist_cnn_runs_keras_recipe(monkeypatch, capsys):
    namespace, fit_calls, output = _run_example(monkeypatch, capsys, "keras_mnist_cnn.py", train=256, test=128,
                                                images_used=256, epochs_run=2)
    # Keras's recipe: Adadelta with its defaults (lr 1.0, rho 0.95), batches of 128, 12 epochs, test set as validation.
    [call] = fit_calls
    model = call["model"]
    assert (call["samples"], call["batch_size"], call["epochs"], call["verbose"]) == (256, 128, 12, 1)
    assert isinstance(model.optimizer, Adadelta) and model.optimizer.rho == pytest.approx(0.95)
    assert float(model.optimizer.learning_rate) == pytest.approx(1.0)
    assert isinstance(model.loss, CategoricalCrossentropy)  # from the function object keras.losses.categorical_...
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D", "Conv2D", "MaxPooling2D", "Dropout", "Flatten", "Dense", "Dropout", "Dense"]
    assert model.count_params() == 1_199_882  # Keras's summary of this network says the same
    assert namespace["input_shape"] == (28, 28, 1)  # channels_last, tinynet's (and Keras's) default
    # What it prints is what evaluate returns; a few hundred bar digits are learnt well past chance (0.1).
    assert _printed_figure(output, "Test accuracy:") == pytest.approx(namespace["score"][1])
    assert _printed_figure(output, "Test loss:") == pytest.approx(namespace["score"][0])
    assert namespace["score"][1] > 0.5


def test_keras_mnist_mlp_runs_keras_recipe(monkeypatch, capsys):
    namespace, fit_calls, output = _run_example(monkeypatch, capsys, "keras_mnist_mlp.py", train=KERAS_MLP_TRAIN,
                                                test=KERAS_MLP_TEST, images_used=1000, epochs_run=3)
    [call] = fit_calls
    model = call["model"]
    assert (call["samples"], call["batch_size"], call["epochs"], call["verbose"]) == (60000, 128, 20, 1)
    assert isinstance(model.optimizer, RMSprop) and model.optimizer.rho == pytest.approx(0.9)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.001)
    assert isinstance(model.loss, CategoricalCrossentropy)
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert model.count_params() == 669_706  # as Keras's summary of this network
    assert "Total params: 669,706" in output  # model.summary() ran
    # evaluate ran on the whole (stand-in) test set of 10,000.
    assert _printed_figure(output, "Test accuracy:") == pytest.approx(namespace["score"][1])
    assert namespace["score"][1] > 0.5
