"""Sequential end to end: the tutorial CNN's shapes, parameter counts and summary; fit, evaluate and predict as
Keras 2 defines them; repeatable runs; clear errors."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from tinynet import backend, losses
from tinynet.callbacks import Callback
from tinynet.layers import Activation, Conv2D, Dense, Dropout, Flatten, Layer, MaxPooling2D
from tinynet.models import Sequential, passes
from tinynet.optimizers import SGD
from tinynet.utils import set_random_seed, to_categorical


# ---------------------------------------------------------------------------------------------- helpers
def tutorial_cnn() -> Sequential:
    """The MNIST tutorial's model, layer for layer, compiled as it compiles it."""
    model = Sequential()
    model.add(Conv2D(64, kernel_size=(3, 3), strides=(1, 1), padding="valid", data_format="channels_last",
                     input_shape=(28, 28, 1)))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Activation("relu"))
    model.add(Dropout(rate=0.25))
    model.add(Conv2D(32, kernel_size=(3, 3), strides=(1, 1), padding="valid"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Activation("relu"))
    model.add(Dropout(rate=0.25))
    model.add(Flatten())
    model.add(Dense(512))
    model.add(Activation("relu"))
    model.add(Dropout(rate=0.25))
    model.add(Dense(256))
    model.add(Activation("relu"))
    model.add(Dense(10, activation="softmax"))
    model.compile(optimizer=SGD(lr=0.001, momentum=0.0, decay=0.000001, nesterov=True),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def blobs(samples: int, seed: int = 0, features: int = 4, classes: int = 3):
    """Well separated Gaussian clusters: a problem a small MLP learns in a few epochs."""
    rng = np.random.default_rng(seed)
    centers = 3 * rng.standard_normal((classes, features))
    labels = rng.integers(0, classes, samples)
    x = (centers[labels] + 0.5 * rng.standard_normal((samples, features))).astype(np.float32)
    return x, labels


def mlp(features: int = 4, classes: int = 3, dropout: float = 0.0, lr: float = 0.1, **compile_kwargs) -> Sequential:
    layers = [Dense(16, activation="relu", input_shape=(features,))]
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(Dense(classes, activation="softmax"))
    model = Sequential(layers)
    model.compile(SGD(lr=lr, momentum=0.9), compile_kwargs.pop("loss", "categorical_crossentropy"),
                  metrics=compile_kwargs.pop("metrics", ["accuracy"]))
    return model


class BatchRecorder(Callback):
    """Keeps every hook call's logs."""

    def __init__(self):
        super().__init__()
        self.batches: list[dict] = []
        self.epochs: list[tuple[int, dict]] = []

    def on_batch_end(self, batch, logs=None):
        self.batches.append(dict(logs))

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append((epoch, dict(logs)))


class TrainingFlagSpy(Layer):
    """An identity layer written against the Layer contract that records every forward's training flag."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls: list[tuple[bool, int]] = []

    def forward(self, x, training=False):
        x = self._prepare_input(x)
        self.calls.append((training, len(x)))
        self._cache = x.shape
        return x

    def backward(self, dy):
        return self._check_output_gradient(dy, self._take_cache())


# --------------------------------------------------------------------------------------- tutorial model
def test_tutorial_cnn_shapes_counts_and_names():
    model = tutorial_cnn()
    rows = [(layer.name, layer.output_shape, layer.count_params()) for layer in model.layers]
    assert rows == [
        ("conv2d_1", (26, 26, 64), 640),
        ("max_pooling2d_1", (13, 13, 64), 0),
        ("activation_1", (13, 13, 64), 0),
        ("dropout_1", (13, 13, 64), 0),
        ("conv2d_2", (11, 11, 32), 18464),
        ("max_pooling2d_2", (5, 5, 32), 0),
        ("activation_2", (5, 5, 32), 0),
        ("dropout_2", (5, 5, 32), 0),
        ("flatten_1", (800,), 0),
        ("dense_1", (512,), 410112),
        ("activation_3", (512,), 0),
        ("dropout_3", (512,), 0),
        ("dense_2", (256,), 131328),
        ("activation_4", (256,), 0),
        ("dense_3", (10,), 2570),
    ]
    assert model.count_params() == 563114
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 10)
    assert [w.shape for w in model.get_weights()] == [
        (3, 3, 1, 64), (64,), (3, 3, 64, 32), (32,), (800, 512), (512,), (512, 256), (256,), (256, 10), (10,)]


KERAS_22_SUMMARY = """\
_________________________________________________________________
Layer (type)                 Output Shape              Param #   
=================================================================
conv2d_1 (Conv2D)            (None, 26, 26, 64)        640       
_________________________________________________________________
max_pooling2d_1 (MaxPooling2 (None, 13, 13, 64)        0         
_________________________________________________________________
activation_1 (Activation)    (None, 13, 13, 64)        0         
_________________________________________________________________
dropout_1 (Dropout)          (None, 13, 13, 64)        0         
_________________________________________________________________
conv2d_2 (Conv2D)            (None, 11, 11, 32)        18464     
_________________________________________________________________
max_pooling2d_2 (MaxPooling2 (None, 5, 5, 32)          0         
_________________________________________________________________
activation_2 (Activation)    (None, 5, 5, 32)          0         
_________________________________________________________________
dropout_2 (Dropout)          (None, 5, 5, 32)          0         
_________________________________________________________________
flatten_1 (Flatten)          (None, 800)               0         
_________________________________________________________________
dense_1 (Dense)              (None, 512)               410112    
_________________________________________________________________
activation_3 (Activation)    (None, 512)               0         
_________________________________________________________________
dropout_3 (Dropout)          (None, 512)               0         
_________________________________________________________________
dense_2 (Dense)              (None, 256)               131328    
_________________________________________________________________
activation_4 (Activation)    (None, 256)               0         
_________________________________________________________________
dense_3 (Dense)              (None, 10)                2570      
=================================================================
Total params: 563,114
Trainable params: 563,114
Non-trainable params: 0
_________________________________________________________________"""  # noqa: W291 (Keras pads rows to 65)


def test_summary_prints_keras_22_layout(capsys):
    lines: list[str] = []
    model = tutorial_cnn()
    model.summary(print_fn=lines.append)
    assert lines == KERAS_22_SUMMARY.split("\n")
    assert "conv2d_1 (Conv2D)            (None, 26, 26, 64)        640       " in lines
    assert any(line.startswith("max_pooling2d_1 (MaxPooling2 (None") for line in lines)
    assert "Total params: 563,114" in lines
    assert all(len(line) == 65 for line in lines if not line.endswith(("params: 563,114", "params: 0")))
    # Without print_fn it prints to stdout.
    model.summary()
    assert capsys.readouterr().out == KERAS_22_SUMMARY + "\n"


def test_summary_before_build_raises():
    with pytest.raises(RuntimeError, match=r"sequential_1: summary is unknown until the model is built"):
        Sequential([Dense(3)]).summary()


# ----------------------------------------------------------------------------------------------- fitting
def test_fit_learns_a_separable_problem():
    set_random_seed(0)
    x, labels = blobs(240)
    y = to_categorical(labels, 3)
    model = mlp()
    history = model.fit(x, y, batch_size=16, epochs=8, verbose=0)
    assert history is model.history
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]
    assert history.history["acc"][-1] > 0.95
    x_test, labels_test = blobs(100, seed=0)  # same centers, new points
    loss, accuracy = model.evaluate(x_test, to_categorical(labels_test, 3), verbose=0)
    assert accuracy > 0.95 and loss < 0.3
    assert np.mean(np.argmax(model.predict(x_test), axis=1) == labels_test) == accuracy


def test_fit_learns_a_tiny_image_problem_with_the_tutorial_layers():
    # 8x8 images holding one horizontal or one vertical bar: Conv-Pool-ReLU-Dropout-Flatten-Dense-softmax.
    set_random_seed(1)
    rng = np.random.default_rng(1)
    x = np.zeros((96, 8, 8, 1), dtype=np.float32)
    labels = rng.integers(0, 2, 96)
    positions = rng.integers(1, 7, 96)
    for image, label, position in zip(x, labels, positions, strict=True):
        if label:
            image[:, position, 0] = 1
        else:
            image[position, :, 0] = 1
    model = Sequential([Conv2D(4, 3, input_shape=(8, 8, 1)), MaxPooling2D(), Activation("relu"), Dropout(0.25),
                        Flatten(), Dense(2, activation="softmax")])
    model.compile(SGD(lr=0.1, momentum=0.9), "categorical_crossentropy", ["accuracy"])
    history = model.fit(x, to_categorical(labels), batch_size=8, epochs=6, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert model.evaluate(x, to_categorical(labels), verbose=0)[1] > 0.95


def _seeded_run(seed: int):
    set_random_seed(seed)
    x, labels = blobs(50, seed=3)
    y = to_categorical(labels, 3)
    model = mlp(dropout=0.3)
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, validation_split=0.2, shuffle=True)
    return model.get_weights(), history.history


def test_same_seed_gives_bit_identical_weights_and_history():
    weights_a, history_a = _seeded_run(7)
    weights_b, history_b = _seeded_run(7)
    assert all(np.array_equal(a, b) for a, b in zip(weights_a, weights_b, strict=True))
    assert history_a == history_b
    weights_c, history_c = _seeded_run(8)
    assert not np.array_equal(weights_a[0], weights_c[0])
    assert history_a["loss"] != history_c["loss"]


def test_history_keys_and_epoch_numbering():
    x, labels = blobs(20)
    y = to_categorical(labels, 3)
    model = mlp()
    history = model.fit(x, y, batch_size=8, epochs=10, initial_epoch=1, verbose=0, validation_data=(x[:6], y[:6]))
    # Keras 2.2.4: metrics=['accuracy'] logs one key, 'acc' (the tutorial reads it), and evaluate returns it.
    assert set(history.history) == {"loss", "acc", "val_loss", "val_acc"}
    assert model.metrics_names == ["loss", "acc"] and len(model.evaluate(x, y, verbose=0)) == 2
    assert history.epoch == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert all(len(values) == 9 for values in history.history.values())
    assert model.optimizer.iterations == 9 * 3
    without_metrics = mlp(metrics=[])
    assert set(without_metrics.fit(x, y, epochs=1, verbose=0).history) == {"loss"}


def test_epoch_figures_are_sample_weighted_means_of_batch_figures_with_a_partial_last_batch():
    x, labels = blobs(10, seed=5)
    y = to_categorical(labels, 3)
    model = mlp(dropout=0.2)
    recorder = BatchRecorder()
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[recorder])
    assert [logs["size"] for logs in recorder.batches] == [4, 4, 2, 4, 4, 2]
    assert [logs["batch"] for logs in recorder.batches] == [0, 1, 2, 0, 1, 2]
    for epoch in range(2):
        batches = recorder.batches[3 * epoch:3 * epoch + 3]
        for key in ("loss", "acc"):
            weighted = sum(b[key] * b["size"] for b in batches) / 10
            assert history.history[key][epoch] == pytest.approx(weighted, rel=1e-12)
        # an unweighted mean would differ: the batch losses are not all equal
        assert len({b["loss"] for b in batches}) == 3
    assert [epoch for epoch, _ in recorder.epochs] == [0, 1]


def test_validation_runs_once_per_epoch_with_dropout_off():
    set_random_seed(2)
    x, labels = blobs(30, seed=2)
    y = to_categorical(labels, 3)
    x_val, y_val = x[:10], y[:10]
    spy = TrainingFlagSpy()
    model = Sequential([Dense(16, activation="relu", input_shape=(4,)), Dropout(0.5), spy,
                        Dense(3, activation="softmax")])
    model.compile(SGD(lr=0.05), "categorical_crossentropy", ["accuracy"])
    loss = losses.get("categorical_crossentropy")

    class CheckValidation(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.first_call = len(spy.calls)

        def on_epoch_end(self, epoch, logs=None):
            calls = spy.calls[self.first_call:]
            training = [size for flag, size in calls if flag]
            inference = [size for flag, size in calls if not flag]
            assert training == [8, 8, 8, 6]
            assert inference == [8, 2]  # one pass over the 10 validation samples in fit's batches, after training
            assert calls[-2:] == [(False, 8), (False, 2)]
            # predict has dropout off; validation must agree with it exactly.
            probabilities = self.model.predict(x_val, batch_size=4)
            assert logs["val_loss"] == pytest.approx(loss(y_val, probabilities), rel=1e-6)
            accuracy = np.mean(np.argmax(probabilities, 1) == np.argmax(y_val, 1))
            assert logs["val_acc"] == pytest.approx(accuracy)
            self.checked = getattr(self, "checked", 0) + 1

    check = CheckValidation()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_data=(x_val, y_val), callbacks=[check])
    assert check.checked == 2


def test_validation_split_takes_the_last_fraction_before_shuffling():
    x, labels = blobs(20)
    y = to_categorical(labels, 3)
    model = mlp()
    recorder = BatchRecorder()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, validation_split=0.25, callbacks=[recorder])
    assert recorder.batches[0]["size"] == 15
    val_loss = recorder.epochs[0][1]["val_loss"]
    assert val_loss == pytest.approx(model.evaluate(x[15:], y[15:], verbose=0)[0], rel=1e-6)


def test_train_on_batch_reports_figures_from_before_the_update():
    set_random_seed(4)
    x, labels = blobs(12, seed=4)
    y = to_categorical(labels, 3)
    model = mlp(lr=0.5)
    before = model.evaluate(x, y, batch_size=12, verbose=0)
    result = model.train_on_batch(x, y)
    assert result == pytest.approx(before, rel=1e-6)
    after = model.evaluate(x, y, batch_size=12, verbose=0)
    assert after[0] < before[0] - 1e-3  # the weights did change, downhill
    assert model.optimizer.iterations == 1
    assert isinstance(mlp(metrics=[]).train_on_batch(x, y), float)


def test_predict_evaluate_and_the_batch_variants_agree_with_a_hand_forward_pass():
    x, labels = blobs(11, seed=6)
    y = to_categorical(labels, 3)
    model = mlp(dropout=0.5)
    kernel_1, bias_1, kernel_2, bias_2 = model.get_weights()
    logits = np.maximum(x @ kernel_1 + bias_1, 0) @ kernel_2 + bias_2
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)

    predicted = model.predict(x, batch_size=4)
    assert predicted.shape == (11, 3) and predicted.dtype == np.float32
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model.predict(x, batch_size=4), predicted)  # dropout off: repeatable
    np.testing.assert_allclose(model.predict_on_batch(x), predicted, rtol=1e-6)

    per_sample = -np.log(expected[np.arange(11), labels])
    accuracy = np.mean(np.argmax(expected, 1) == labels)
    loss, acc = model.evaluate(x, y, batch_size=4, verbose=0)  # batches 4, 4, 3
    assert loss == pytest.approx(per_sample.mean(), rel=1e-5)
    assert acc == pytest.approx(accuracy)
    assert model.test_on_batch(x, y) == pytest.approx([loss, acc], rel=1e-5)
    assert model.optimizer.iterations == 0  # none of these trained


def test_verbose_1_prints_banner_epoch_headers_and_final_bar_lines(capsys):
    x, labels = blobs(8)
    y = to_categorical(labels, 3)
    model = mlp()
    history = model.fit(x, y, batch_size=3, epochs=3, initial_epoch=1, verbose=1, validation_data=(x[:4], y[:4]))
    out = capsys.readouterr().out
    assert out.startswith("Train on 8 samples, validate on 4 samples\n")
    assert "Epoch 1/3" not in out
    assert out.index("Epoch 2/3") < out.index("Epoch 3/3")
    finals = re.findall(r"^8/8 \[=+\] - \d+s \d+[mu]?s/step - loss: (\d\.\d{4}) - acc: (\d\.\d{4}) - "
                        r"val_loss: (\d\.\d{4}) - val_acc: (\d\.\d{4})$", out, flags=re.MULTILINE)
    assert len(finals) == 2
    assert all(len(re.search(r"\[(.*)\]", line).group(1)) == 30 for line in out.splitlines() if "[" in line)
    for epoch, shown in enumerate(finals):
        for key, value in zip(("loss", "acc", "val_loss", "val_acc"), shown, strict=True):
            assert abs(float(value) - history.history[key][epoch]) <= 5.1e-5, key


def test_verbose_2_prints_one_line_per_epoch(capsys):
    x, labels = blobs(8)
    y = to_categorical(labels, 3)
    history = mlp().fit(x, y, batch_size=3, epochs=2, verbose=2)
    out = capsys.readouterr().out
    assert "Train on" not in out  # no validation data, no banner (Keras 2.2)
    lines = [line for line in out.splitlines() if line]
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    for epoch, line in enumerate(lines[1::2]):
        match = re.fullmatch(r" - \d+s - loss: (\d\.\d{4}) - acc: (\d\.\d{4})", line)
        assert match, line
        assert abs(float(match.group(1)) - history.history["loss"][epoch]) <= 5.1e-5
    assert "[" not in out


def test_verbose_0_prints_nothing(capsys):
    x, labels = blobs(8)
    mlp().fit(x, to_categorical(labels, 3), epochs=2, verbose=0, validation_data=(x, to_categorical(labels, 3)))
    assert capsys.readouterr().out == ""


def test_integer_images_are_accepted_and_cast():
    rng = np.random.default_rng(9)
    images = rng.integers(0, 256, (6, 5, 5, 1), dtype=np.uint8)
    model = Sequential([Conv2D(2, 3, input_shape=(5, 5, 1)), Flatten(), Dense(3, activation="softmax")])
    model.compile(SGD(), "categorical_crossentropy", ["accuracy"])
    np.testing.assert_array_equal(model.predict(images), model.predict(images.astype(np.float32)))
    y = to_categorical(rng.integers(0, 3, 6), 3)
    history = model.fit(images / 255.0, y, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    history = model.fit(images, y.astype(np.uint8), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.layers[0].params["kernel"].dtype == np.float32


def test_sparse_integer_labels_match_one_hot_training():
    x, labels = blobs(20, seed=8)
    results = []
    for loss, y in (("sparse_categorical_crossentropy", labels), ("categorical_crossentropy",
                                                                  to_categorical(labels, 3))):
        backend.clear_session()
        set_random_seed(11)
        model = mlp(loss=loss)
        before = model.evaluate(x, y, verbose=0)
        history = model.fit(x, y, batch_size=5, epochs=2, verbose=0)
        results.append((before, history.history, model.get_weights()))
    (sparse_before, sparse_history, sparse_weights), (dense_before, dense_history, dense_weights) = results
    assert sparse_before == pytest.approx(dense_before, rel=1e-6)
    assert sparse_history["loss"] == pytest.approx(dense_history["loss"], rel=1e-5)
    assert sparse_history["acc"] == dense_history["acc"]
    for a, b in zip(sparse_weights, dense_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # labels shaped (N, 1) are accepted too
    assert mlp(loss="sparse_categorical_crossentropy").evaluate(x, labels[:, None], verbose=0)[0] > 0


def test_get_and_set_weights_round_trip_and_errors():
    model = tutorial_cnn()
    weights = model.get_weights()
    assert len(weights) == 10
    shifted = [w + 1 for w in weights]
    model.set_weights(shifted)
    for got, want in zip(model.get_weights(), shifted, strict=True):
        np.testing.assert_array_equal(got, want)
    other = tutorial_cnn()
    other.set_weights(model.get_weights())
    x = np.random.default_rng(0).uniform(0, 1, (2, 28, 28, 1)).astype(np.float32)
    np.testing.assert_array_equal(other.predict(x), model.predict(x))

    with pytest.raises(ValueError, match=r"sequential_1.set_weights: expected 10 arrays, got 9"):
        model.set_weights(shifted[:9])
    wrong = list(shifted)
    wrong[4] = np.zeros((512, 800))
    with pytest.raises(ValueError, match=r"sequential_1.set_weights: dense_1.kernel expects shape \(800, 512\), "
                                         r"got \(512, 800\)"):
        model.set_weights(wrong)
    # nothing was half-written
    np.testing.assert_array_equal(model.get_weights()[0], shifted[0])


def test_dropout_model_is_deterministic_at_inference_and_random_in_training():
    model = Sequential([Dropout(0.5, input_shape=(1000,))])
    model.compile(SGD(), "mse")
    x = np.ones((2, 1000), dtype=np.float32)
    np.testing.assert_array_equal(model.predict(x), x)
    np.testing.assert_array_equal(model.predict_on_batch(x), x)
    training = passes.forward(model, x, training=True)
    assert set(np.unique(training)) == {0.0, 2.0}
    assert 0.45 < np.mean(training == 2.0) < 0.55


# ------------------------------------------------------------------------------------------------ errors
def test_uncompiled_model_raises_runtime_error():
    model = Sequential([Dense(3, input_shape=(4,))])
    x, y = np.zeros((2, 4)), np.zeros((2, 3))
    for call in (lambda: model.fit(x, y), lambda: model.evaluate(x, y), lambda: model.train_on_batch(x, y),
                 lambda: model.test_on_batch(x, y)):
        with pytest.raises(RuntimeError, match=r"sequential_1\.\w+: you must compile the model"):
            call()
    assert model.predict(x).shape == (2, 3)  # predicting needs no loss


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda m, x, y: m.fit(x[:, :3], y), ValueError,
     r"sequential_1.fit: x must have shape \(samples, 4\) for this model, got \(10, 3\)"),
    (lambda m, x, y: m.fit(x[0], y), ValueError, r"sequential_1.fit: x must be a non-empty batch \(samples, ...\), "
                                                 r"got shape \(4,\)"),
    (lambda m, x, y: m.fit(x, y[:9]), ValueError,
     r"sequential_1.fit: x and y must hold the same number of samples, got 10 and 9"),
    (lambda m, x, y: m.fit(x, y[:, :2]), ValueError,
     r"sequential_1.fit: y: loss 'categorical_crossentropy' expects targets of shape \(samples, 3\)"),
    (lambda m, x, y: m.fit(x, y, validation_data=(x[:2], y[:3])), ValueError,
     r"sequential_1.fit: x_val and y_val must hold the same number of samples, got 2 and 3"),
    (lambda m, x, y: m.fit(x, y, validation_data=(x[:2, :3], y[:2])), ValueError,
     r"sequential_1.fit: x_val must have shape \(samples, 4\)"),
    (lambda m, x, y: m.fit(x, y, validation_data=x), ValueError,
     r"sequential_1.fit: validation_data must be a tuple \(x_val, y_val\)"),
    (lambda m, x, y: m.fit(x, y, validation_split=1.5), ValueError, r"validation_split must be in \(0, 1\)"),
    (lambda m, x, y: m.fit(x, y, batch_size=0), ValueError, r"sequential_1.fit: batch_size must be a positive int"),
    (lambda m, x, y: m.fit(x, y, epochs=-1), ValueError, r"sequential_1.fit: epochs must be a non-negative int"),
    (lambda m, x, y: m.fit(x, y, verbose=3), ValueError, r"sequential_1.fit: verbose must be 0, 1 or 2, got 3"),
    (lambda m, x, y: m.fit(x, None), ValueError, r"sequential_1.fit: y \(the targets\) is required"),
    (lambda m, x, y: m.fit("x", y), TypeError, r"sequential_1.fit: x must be a NumPy array, got str"),
    (lambda m, x, y: m.fit(np.full((10, 4), np.nan), y), ValueError, r"sequential_1.fit: x contains NaN"),
    (lambda m, x, y: m.evaluate(x[:, :2], y), ValueError, r"sequential_1.evaluate: x must have shape \(samples, 4\)"),
    (lambda m, x, y: m.predict(x[:, None]), ValueError, r"sequential_1.predict: x must have shape \(samples, 4\) "
                                                        r"for this model, got \(10, 1, 4\)"),
    (lambda m, x, y: m.predict(x, batch_size=-2), ValueError, r"sequential_1.predict: batch_size must be a positive"),
    (lambda m, x, y: m.train_on_batch(x, y[:4]), ValueError,
     r"sequential_1.train_on_batch: x and y must hold the same number of samples, got 10 and 4"),
])
def test_model_input_errors_name_the_entry_point_and_argument(call, error, message):
    x, labels = blobs(10)
    model = mlp()
    with pytest.raises(error, match=message):
        call(model, x, to_categorical(labels, 3))


def test_compile_and_add_errors():
    model = Sequential([Dense(3, input_shape=(4,))])
    with pytest.raises(ValueError, match=r"sequential_1.compile: a loss is required"):
        model.compile(SGD())
    with pytest.raises(ValueError, match=r"loss: unknown loss 'crossentropy'"):
        model.compile(SGD(), "crossentropy")
    with pytest.raises(ValueError, match=r"optimizer: unknown optimizer 'rmsprops'"):
        model.compile("rmsprops", "mse")
    with pytest.raises(ValueError, match=r"sequential_1.compile: metrics: unknown metric 'f1'"):
        model.compile(SGD(), "mse", metrics=["f1"])
    with pytest.raises(ValueError, match=r"sequential_1.compile: metrics \['acc', 'accuracy'\] log more than one "
                                         r"value under acc"):
        model.compile(SGD(), "mse", metrics=["acc", "accuracy"])
    with pytest.raises(TypeError, match=r"sequential_1.add: expected a tinynet.layers.Layer, got str"):
        model.add("dense")
    with pytest.raises(ValueError, match=r"sequential_1.add: layer 'dense_1' is already in the model"):
        model.add(model.layers[0])
    with pytest.raises(ValueError, match=r"sequential_1.add: a layer named 'dense_1' is already in the model"):
        model.add(Dense(2, name="dense_1"))
    built_for_five = Dense(2)
    built_for_five.build((5,))
    with pytest.raises(ValueError, match=r"dense_2: already built for input shape \(5,\), but the previous layer "
                                         r"outputs \(3,\)"):
        model.add(built_for_five)
    with pytest.raises(ValueError, match=r"conv2d_1: expects inputs of shape \(batch, height, width, channels\)"):
        model.add(Conv2D(2, 3))  # a Conv2D after a Dense: reported on the line that adds it
    with pytest.raises(ValueError, match=r"sequential_2: the model has no layers"):
        Sequential().build((None, 3))
    with pytest.raises(ValueError, match=r"the input shape is unknown"):
        Sequential([Dense(2)]).build()


def test_model_without_input_shape_builds_on_first_data():
    model = Sequential([Dense(3), Dense(2, activation="softmax")])
    assert not model.built
    with pytest.raises(RuntimeError, match=r"output_shape is unknown until the model is built"):
        _ = model.output_shape
    model.compile(SGD(), "categorical_crossentropy")
    model.fit(np.ones((4, 5)), np.eye(2)[[0, 1, 0, 1]], verbose=0)
    assert model.built and model.input_shape == (None, 5)
    assert math.isclose(model.predict(np.ones((1, 5))).sum(), 1.0, rel_tol=1e-6)
