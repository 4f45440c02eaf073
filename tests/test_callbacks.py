"""Callbacks: Keras 2's hook order and logs, ModelCheckpoint, EarlyStopping, TerminateOnNaN, CSVLogger."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from tinynet import backend, layers
from tinynet.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    History,
    ModelCheckpoint,
    ProgbarLogger,
    TerminateOnNaN,
)
from tinynet.layers.base import Layer
from tinynet.models import NumericalFaultError, Sequential, load_model
from tinynet.optimizers import SGD
from tinynet.utils import to_categorical

CLASSES = 3


def _model(seed: int = 0, learning_rate: float = 0.1) -> Sequential:
    backend.set_random_seed(seed)
    model = Sequential([
        layers.Conv2D(2, 3, input_shape=(5, 5, 1), activation="relu"),
        layers.Flatten(),
        layers.Dropout(0.2),
        layers.Dense(CLASSES, activation="softmax"),
    ])
    model.compile(SGD(learning_rate, momentum=0.9), "categorical_crossentropy", ["accuracy"])
    return model


def _data(samples: int = 10):
    rng = np.random.default_rng(1)
    x = rng.random((samples, 5, 5, 1), dtype=np.float32)
    return x, to_categorical(np.arange(samples) % CLASSES, CLASSES)


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def _record(self, hook, *args):
        self.calls.append((hook, *[dict(arg) if isinstance(arg, dict) else arg for arg in args]))

    def on_train_begin(self, logs=None):
        self._record("train_begin")

    def on_train_end(self, logs=None):
        self._record("train_end")

    def on_epoch_begin(self, epoch, logs=None):
        self._record("epoch_begin", epoch)

    def on_epoch_end(self, epoch, logs=None):
        self._record("epoch_end", epoch, logs)

    def on_batch_begin(self, batch, logs=None):
        self._record("batch_begin", batch, logs)

    def on_batch_end(self, batch, logs=None):
        self._record("batch_end", batch, logs)


# ------------------------------------------------------------------------------------------------- the hooks
def test_hooks_fire_in_keras_order_with_keras_logs():
    x, y = _data(10)
    recorder = Recorder()
    model = _model()
    model.fit(x, y, batch_size=4, epochs=3, initial_epoch=1, verbose=0, validation_data=(x[:4], y[:4]),
              callbacks=[recorder])
    hooks = [call[0] for call in recorder.calls]
    per_epoch = ["epoch_begin"] + ["batch_begin", "batch_end"] * 3 + ["epoch_end"]
    assert hooks == ["train_begin", *per_epoch, *per_epoch, "train_end"]
    assert [call[1] for call in recorder.calls if call[0] == "epoch_begin"] == [1, 2]
    batch_ends = [call for call in recorder.calls if call[0] == "batch_end"]
    assert [call[1] for call in batch_ends] == [0, 1, 2, 0, 1, 2]
    assert [call[2]["size"] for call in batch_ends[:3]] == [4, 4, 2]
    assert set(batch_ends[0][2]) == {"batch", "size", "loss", "acc"}
    assert set(recorder.calls[1 + 1][2]) == {"batch", "size"}  # on_batch_begin
    epoch_logs = [call[2] for call in recorder.calls if call[0] == "epoch_end"]
    assert set(epoch_logs[0]) == {"loss", "acc", "val_loss", "val_acc"}
    # The epoch's loss is the sample-weighted mean of its batches' losses.
    losses = [call[2]["loss"] for call in batch_ends[:3]]
    assert epoch_logs[0]["loss"] == pytest.approx((4 * losses[0] + 4 * losses[1] + 2 * losses[2]) / 10)
    assert recorder.model is model and recorder.params["epochs"] == 3 and recorder.params["samples"] == 10
    assert model.history.epoch == [1, 2] and isinstance(model.history, History)


def test_callbacks_must_be_callback_instances():
    x, y = _data()
    with pytest.raises(TypeError, match="Callback"):
        _model().fit(x, y, verbose=0, callbacks=[print])


# ------------------------------------------------------------------------------------------ ModelCheckpoint
class SavingStub:
    """Stands in for a model: records what ModelCheckpoint asks it to save."""

    def __init__(self):
        self.saved = []
        self.stop_training = False

    def save(self, path):
        self.saved.append(("model", path))

    def save_weights(self, path):
        self.saved.append(("weights", path))


def _drive(callback, values, monitor="val_loss"):
    model = SavingStub()
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {"loss": 1.0, monitor: value})
    return model


def test_checkpoint_paths_are_formatted_as_keras_does(tmp_path):
    x, y = _data()
    pattern = str(tmp_path / "model.{epoch:02d}-{val_loss:.4f}.tnz")
    model = _model()
    history = model.fit(x, y, batch_size=5, epochs=3, verbose=0, validation_data=(x, y),
                        callbacks=[ModelCheckpoint(pattern)])
    expected = [f"model.{epoch + 1:02d}-{loss:.4f}.tnz" for epoch, loss in enumerate(history.history["val_loss"])]
    assert sorted(path.name for path in tmp_path.iterdir()) == expected
    last = load_model(tmp_path / expected[-1])
    assert last.epochs_done == 3
    for a, b in zip(last.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_period_and_weights_only(tmp_path):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=5, verbose=0, callbacks=[
        ModelCheckpoint(str(tmp_path / "w{epoch}.npz"), monitor="loss", save_weights_only=True, period=2)])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["w2.npz", "w4.npz"]
    other = _model(seed=5)
    other.load_weights(tmp_path / "w4.npz")
    assert not np.array_equal(other.get_weights()[0], model.get_weights()[0])  # epoch 4's, not the last


@pytest.mark.parametrize("mode, monitor, values, saved_epochs", [
    ("min", "val_loss", [0.5, 0.4, 0.45, 0.3, 0.3], [0, 1, 3]),
    ("max", "val_acc", [0.5, 0.4, 0.6, 0.6, 0.7], [0, 2, 4]),
    ("auto", "val_acc", [0.5, 0.4, 0.6, 0.6, 0.7], [0, 2, 4]),  # 'acc' in the name means higher is better
    ("auto", "val_loss", [0.5, 0.4, 0.45, 0.3, 0.3], [0, 1, 3]),
])
def test_save_best_only_follows_the_mode(mode, monitor, values, saved_epochs):
    callback = ModelCheckpoint("best-{epoch}.tnz", monitor=monitor, save_best_only=True, mode=mode)
    model = _drive(callback, values, monitor)
    assert model.saved == [("model", f"best-{epoch + 1}.tnz") for epoch in saved_epochs]


def test_checkpoint_never_saves_a_non_finite_epoch():
    callback = ModelCheckpoint("every.tnz")
    model = SavingStub()
    callback.set_model(model)
    callback.on_epoch_end(0, {"loss": 0.3, "val_loss": 0.4})
    with pytest.warns(RuntimeWarning, match="previous checkpoint is kept"):
        callback.on_epoch_end(1, {"loss": math.nan, "val_loss": 0.4})
    with pytest.warns(RuntimeWarning, match="val_loss is inf"):
        callback.on_epoch_end(2, {"loss": 0.3, "val_loss": math.inf})
    assert model.saved == [("model", "every.tnz")]



@pytest.mark.parametrize("spoil", ["weight", "velocity"])
@pytest.mark.parametrize("weights_only", [False, True])
def test_checkpoint_never_writes_non_finite_state_whatever_the_logs_say(tmp_path, spoil, weights_only):
    """The logs can be finite while the weights are not (an update that overflowed after the loss was computed,
    a callback that changed them): the checkpoint reads the state it would write."""
    x, y = _data()
    model = _model()
    path = tmp_path / "checkpoint"
    callback = ModelCheckpoint(path, monitor="loss", save_weights_only=weights_only)
    model.fit(x, y, batch_size=5, verbose=0, callbacks=[callback])
    saved = path.read_bytes()
    if spoil == "weight":
        model.layers[-1].params["bias"][1] = np.inf
        expected = "weight dense_1.bias holds NaN or Inf"
    else:
        model.optimizer.get_slots(model.layers)["velocities"][("conv2d_1", "kernel")][0, 0, 0, 0] = np.nan
        expected = "optimizer slot velocities of conv2d_1.kernel holds NaN or Inf"
    callback.set_model(model)
    with pytest.warns(RuntimeWarning, match=f"epoch 2: the {expected}; not saving"):
        callback.on_epoch_end(1, {"loss": 0.5, "val_loss": 0.5})
    assert path.read_bytes() == saved


def test_checkpoint_problems_are_named():
    with pytest.warns(RuntimeWarning, match="only with val_loss available"):
        _drive(ModelCheckpoint("m.tnz", save_best_only=True), [0.1], monitor="loss")
    with pytest.raises(ValueError, match="'val_acc', which is not among this epoch's logs"):
        _drive(ModelCheckpoint("m-{val_acc}.tnz"), [0.1])
    with pytest.raises(ValueError, match="mode must be"):
        ModelCheckpoint("m.tnz", mode="lowest")
    with pytest.raises(ValueError, match="period"):
        ModelCheckpoint("m.tnz", period=0)


# -------------------------------------------------------------------------------------------- EarlyStopping
class WeightsStub(SavingStub):
    def __init__(self):
        super().__init__()
        self.weights = [np.zeros(2)]
        self.restored = None

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.restored = weights


def _early(callback, values, monitor="val_loss"):
    model = WeightsStub()
    callback.set_model(model)
    callback.on_train_begin()
    stopped_at = None
    for epoch, value in enumerate(values):
        model.weights = [np.full(2, float(epoch))]
        callback.on_epoch_end(epoch, {monitor: value})
        if model.stop_training:
            stopped_at = epoch
            break
    return model, stopped_at


@pytest.mark.parametrize("kwargs, values, stopped_at", [
    ({"patience": 0}, [1.0, 0.9, 0.95, 0.5], 2),
    ({"patience": 2}, [1.0, 0.9, 0.95, 0.92, 0.5], 3),
    ({"patience": 2}, [1.0, 0.9, 0.95, 0.8, 0.85, 0.86], 5),
    ({"patience": 1, "min_delta": 0.2}, [1.0, 0.85, 0.7], 1),  # 0.15 is not enough of an improvement
    ({"patience": 1, "baseline": 0.5}, [0.9, 0.8], 0),
    ({"patience": 1, "monitor": "val_acc"}, [0.5, 0.6, 0.55], 2),  # 'auto' maximises accuracies
    ({"patience": 1, "monitor": "val_acc", "mode": "min"}, [0.5, 0.6], 1),
    ({"patience": 3}, [1.0, 0.9, 0.8, 0.7], None),
])
def test_early_stopping_patience_delta_baseline_and_mode(kwargs, values, stopped_at):
    monitor = kwargs.get("monitor", "val_loss")
    callback = EarlyStopping(**kwargs)
    _, stopped = _early(callback, values, monitor)
    assert stopped == stopped_at
    assert callback.stopped_epoch == (stopped_at or 0)


def test_early_stopping_restores_the_best_weights():
    callback = EarlyStopping(patience=2, restore_best_weights=True)
    model, stopped = _early(callback, [1.0, 0.5, 0.7, 0.8, 0.1])
    assert stopped == 3
    np.testing.assert_array_equal(model.restored[0], np.full(2, 1.0))  # epoch 1 had the lowest val_loss


def test_early_stopping_ends_fit_and_warns_on_a_missing_figure(capsys):
    x, y = _data()
    model = _model()
    history = model.fit(x, y, epochs=10, verbose=0,
                        callbacks=[EarlyStopping(monitor="loss", min_delta=100.0, patience=1, verbose=1)])
    assert history.epoch == [0, 1]  # the first epoch improves on +inf, the second not by 100
    assert "Epoch 00002: early stopping" in capsys.readouterr().out
    with pytest.warns(RuntimeWarning, match="'val_loss', which is not available"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[EarlyStopping()])
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=-1)


# ------------------------------------------------------------------------------------------- TerminateOnNaN
def test_terminate_on_nan_stops_quietly_where_fit_would_raise(capsys):
    x, y = _data()
    model = _model()
    model.layers[-1].params["kernel"][0, 0] = np.nan
    with pytest.raises(NumericalFaultError):
        model.fit(x, y, verbose=0)
    weights = model.get_weights()
    history = model.fit(x, y, epochs=3, batch_size=5, verbose=0, callbacks=[TerminateOnNaN()])
    assert "Batch 0: Invalid loss, terminating training" in capsys.readouterr().out
    assert history.epoch == [0] and math.isnan(history.history["loss"][0])
    for before, after in zip(weights, model.get_weights(), strict=True):  # the faulty update was not applied
        np.testing.assert_array_equal(before, after)
    assert model.epochs_done == 0  # the epoch did not complete


class NaNGradient(Layer):
    """The identity going forward; a NaN gradient going back (the loss stays finite)."""

    def forward(self, x, training=False):
        x = self._prepare_input(x)
        self._cache = x.shape
        return x

    def backward(self, dy):
        self._take_cache()
        return dy * np.nan


def test_a_nan_gradient_with_a_finite_loss_is_caught_too(capsys):
    backend.set_random_seed(0)
    model = Sequential([layers.Dense(4, input_shape=(3,)), NaNGradient(), layers.Dense(2, activation="softmax")])
    model.compile(SGD(0.1), "categorical_crossentropy")
    x, y = np.ones((4, 3), np.float32), to_categorical([0, 1, 0, 1], 2)
    with pytest.raises(NumericalFaultError) as fault:
        model.fit(x, y, verbose=0)
    assert fault.value.quantity == "gradient" and fault.value.layer == "dense_1"
    assert "gradient of its 'kernel'" in str(fault.value) and "epoch 1/1, batch 1/1" in str(fault.value)
    model.fit(x, y, verbose=0, callbacks=[TerminateOnNaN()])
    assert "Batch 0: NaN or Inf in a gradient, terminating training" in capsys.readouterr().out
    assert model.numerical_fault.quantity == "gradient"


def test_an_update_that_overflows_is_named_as_such(capsys):
    """A finite loss and finite gradients, times a rate that is finite in float32, overflow in the update."""
    backend.set_random_seed(0)
    model = Sequential([layers.Dense(3, input_shape=(2,), activation="softmax")])
    model.compile(SGD(learning_rate=3e38), "categorical_crossentropy")
    x, y = np.full((4, 2), 10.0, np.float32), to_categorical([0, 1, 2, 0], 3)
    with np.errstate(over="ignore", invalid="ignore"):
        model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[TerminateOnNaN()])
    out = capsys.readouterr().out
    assert "Batch 0: the update made a weight NaN or Inf (the gradients were finite), terminating training" in out
    assert "in a gradient" not in out
    assert model.numerical_fault.quantity == "update" and model.epochs_done == 0


# ------------------------------------------------------------------------------------------------ CSVLogger
def _rows(path):
    with open(path, newline="") as file:
        return list(csv.reader(file))


def test_csv_logger_writes_one_row_per_epoch_with_sorted_columns(tmp_path):
    x, y = _data()
    path = tmp_path / "log.csv"
    model = _model()
    history = model.fit(x, y, epochs=3, verbose=0, validation_data=(x, y), callbacks=[CSVLogger(path)])
    rows = _rows(path)
    assert rows[0] == ["epoch", "acc", "loss", "val_acc", "val_loss"]
    assert [row[0] for row in rows[1:]] == ["0", "1", "2"]  # Keras writes 0-based epochs
    assert [float(row[2]) for row in rows[1:]] == history.history["loss"]  # repr: exact
    assert sorted(item.name for item in tmp_path.iterdir()) == ["log.csv"]


def test_csv_logger_numbers_epochs_as_keras_does_not_as_fit_prints_them(tmp_path, capsys):
    # Keras 2's CSVLogger writes the 0-based index passed to on_epoch_end: the epoch fit prints as "Epoch 2/3" is
    # row 1. (tinynet train's history.csv numbers rows as printed; the README explains both.)
    x, y = _data()
    path = tmp_path / "log.csv"
    history = _model().fit(x, y, epochs=3, initial_epoch=1, verbose=1, callbacks=[CSVLogger(path)])
    printed = capsys.readouterr().out
    assert "Epoch 2/3" in printed and "Epoch 3/3" in printed and "Epoch 1/3" not in printed
    assert [row[0] for row in _rows(path)[1:]] == ["1", "2"] == [str(epoch) for epoch in history.epoch]


def test_csv_logger_rows_are_on_disk_after_each_epoch(tmp_path):
    x, y = _data()
    path = tmp_path / "log.csv"
    seen = []

    class Peek(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(len(_rows(path)))

    _model().fit(x, y, epochs=3, verbose=0, callbacks=[CSVLogger(path), Peek()])
    assert seen == [2, 3, 4]


def test_csv_logger_append_continues_and_replaces_rows_a_resumed_run_redoes(tmp_path):
    x, y = _data()
    path = tmp_path / "log.csv"
    model = _model()
    model.fit(x, y, epochs=3, verbose=0, callbacks=[CSVLogger(path, separator=";")])
    assert len(_rows(path)) == 4
    # A resumed run that starts again from epoch 2 (its checkpoint was from epoch 2) and goes on to epoch 4.
    model.fit(x, y, epochs=5, initial_epoch=2, verbose=0, callbacks=[CSVLogger(path, separator=";", append=True)])
    rows = [line.split(";") for line in path.read_text().splitlines()]
    assert [row[0] for row in rows[1:]] == ["0", "1", "2", "3", "4"]
    assert rows[0] == ["epoch", "acc", "loss"]
    # Without append the file starts over.
    model.fit(x, y, epochs=1, verbose=0, callbacks=[CSVLogger(path)])
    assert [row[0] for row in _rows(path)] == ["epoch", "0"]


def test_csv_logger_append_drops_a_torn_last_line_and_refuses_a_headerless_file(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,loss\n0,0.5\n1,0.4")  # the last row was cut short
    logger = CSVLogger(path, append=True)
    logger.on_train_begin()
    logger.on_epoch_end(1, {"loss": 0.25})
    assert path.read_text() == "epoch,loss\n0,0.5\n1,0.25\n"
    path.write_text("0,0.5\n")
    with pytest.raises(ValueError, match="not a header"):
        CSVLogger(path, append=True).on_train_begin()
    with pytest.raises(ValueError, match="separator"):
        CSVLogger(path, separator=", ")
    with pytest.raises(ValueError, match="folder"):
        CSVLogger(tmp_path)


def test_csv_logger_fills_missing_figures_with_na(tmp_path):
    path = tmp_path / "log.csv"
    logger = CSVLogger(path)
    logger.on_train_begin()
    logger.on_epoch_end(0, {"loss": 0.5, "val_loss": 0.6})
    logger.on_epoch_end(1, {"loss": 0.4})
    assert _rows(path)[-1] == ["1", "0.4", "NA"]


def test_progbar_logger_ending_an_epoch_it_never_began_names_the_missing_call():
    logger = ProgbarLogger()
    logger.set_params({"epochs": 1, "samples": 4, "metrics": ["loss"]})
    with pytest.raises(RuntimeError, match=r"ProgbarLogger\.on_epoch_end: called before on_epoch_begin"):
        logger.on_epoch_end(0, {"loss": 0.5})
