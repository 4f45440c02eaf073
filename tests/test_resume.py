"""Exact resume and numerical faults.

Training N epochs in one go and training k epochs, saving, loading in a *new process* and going on from
``initial_epoch=model.epochs_done`` give bit-identical weights and history: the shuffle order and dropout masks
come from the saved generator states. A NaN or Inf stops training with an error naming epoch, batch and layer,
and the checkpoint of the last good epoch survives.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tinynet import backend, cli, layers
from tinynet.callbacks import Callback, CSVLogger, ModelCheckpoint, TerminateOnNaN
from tinynet.models import NumericalFaultError, Sequential, load_model
from tinynet.models import sequential as sequential_module
from tinynet.optimizers import SGD
from tinynet.utils import to_categorical

REPOSITORY = Path(__file__).resolve().parents[1]
CLASSES = 4
BATCH = 8


def _build(seed: int = 21) -> Sequential:
    """Every layer type with state that matters for resuming: weights, two dropout streams, momentum."""
    backend.clear_session()
    backend.set_random_seed(seed)
    model = Sequential([
        layers.Conv2D(4, 3, input_shape=(8, 8, 1), padding="same"),
        layers.MaxPooling2D(2),
        layers.Activation("relu"),
        layers.Dropout(0.3),
        layers.Flatten(),
        layers.Dense(16),
        layers.ReLU(),
        layers.Dropout(0.4),
        layers.Dense(CLASSES, activation="softmax"),
    ])
    model.compile(SGD(learning_rate=0.05, momentum=0.9, decay=1e-3, nesterov=True), "categorical_crossentropy",
                  ["accuracy"])
    return model


def _data():
    rng = np.random.default_rng(5)
    labels = np.arange(60) % CLASSES
    x = rng.random((60, 8, 8, 1), dtype=np.float32) * 0.3
    for index, label in enumerate(labels):
        x[index, 2 * label: 2 * label + 2, :, 0] += 0.7  # a learnable bar per class
    y = to_categorical(labels, CLASSES)
    return x[:44], y[:44], x[44:], y[44:]


def _fit(model: Sequential, epochs: int, initial_epoch: int, **kwargs):
    x, y, x_val, y_val = _data()
    return model.fit(x, y, batch_size=BATCH, epochs=epochs, initial_epoch=initial_epoch, verbose=0,
                     validation_data=(x_val, y_val), **kwargs)


def assert_weights_identical(first: list[np.ndarray], second: list[np.ndarray]) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b, strict=True)


# ------------------------------------------------------------------------------------------------ exact resume
def test_resume_in_the_same_process_is_bit_identical(tmp_path):
    one_go = _build()
    full = _fit(one_go, epochs=5, initial_epoch=1)  # Keras numbering: epochs 2..5, as the tutorial starts at 1

    first_part = _build()
    _fit(first_part, epochs=3, initial_epoch=1)
    assert first_part.epochs_done == 3
    first_part.save(tmp_path / "at3.tnz")
    resumed = load_model(tmp_path / "at3.tnz")
    rest = _fit(resumed, epochs=5, initial_epoch=resumed.epochs_done)

    assert rest.epoch == [3, 4] == full.epoch[2:]
    assert {key: values[2:] for key, values in full.history.items()} == rest.history
    assert_weights_identical(one_go.get_weights(), resumed.get_weights())
    assert resumed.optimizer.iterations == one_go.optimizer.iterations == 4 * 6
    assert resumed.epochs_done == 5


def test_a_different_shuffle_state_would_be_noticed(tmp_path):
    """The exactness test can fail: restarting the shuffle stream from the seed gives other weights."""
    first_part = _build()
    _fit(first_part, epochs=2, initial_epoch=0)
    first_part.save(tmp_path / "at2.tnz")
    resumed = load_model(tmp_path / "at2.tnz")
    resumed._shuffle_generator = np.random.default_rng(0)
    _fit(resumed, epochs=3, initial_epoch=2)
    one_go = _build()
    _fit(one_go, epochs=3, initial_epoch=0)
    assert not all(np.array_equal(a, b) for a, b in zip(one_go.get_weights(), resumed.get_weights(), strict=True))


def test_resume_in_a_new_process_is_bit_identical(tmp_path):
    x, y, x_val, y_val = _data()
    np.savez(tmp_path / "data.npz", x=x, y=y, x_val=x_val, y_val=y_val)
    one_go = _build()
    full = _fit(one_go, epochs=4, initial_epoch=0)

    first_part = _build()
    _fit(first_part, epochs=2, initial_epoch=0)
    first_part.save(tmp_path / "checkpoint")

    script = textwrap.dedent("""
        import json, sys
        import numpy as np
        from tinynet.models import load_model

        model = load_model(sys.argv[1])
        with np.load(sys.argv[2]) as data:
            x, y, x_val, y_val = data["x"], data["y"], data["x_val"], data["y_val"]
        history = model.fit(x, y, batch_size=int(sys.argv[5]), epochs=4, initial_epoch=model.epochs_done, verbose=0,
                            validation_data=(x_val, y_val))
        np.savez(sys.argv[3], *model.get_weights())
        with open(sys.argv[4], "w") as file:
            json.dump({"epoch": history.epoch, "history": history.history,
                       "iterations": model.optimizer.iterations}, file)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "checkpoint"), str(tmp_path / "data.npz"),
         str(tmp_path / "weights.npz"), str(tmp_path / "history.json"), str(BATCH)],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "weights.npz") as archive:
        child_weights = [archive[f"arr_{index}"] for index in range(len(archive.files))]
    child = json.loads((tmp_path / "history.json").read_text())
    assert child["epoch"] == [2, 3]
    assert child["history"] == {key: values[2:] for key, values in full.history.items()}  # floats, bit for bit
    assert child["iterations"] == one_go.optimizer.iterations
    assert_weights_identical(one_go.get_weights(), child_weights)


def test_a_checkpoint_every_epoch_and_a_resumed_csv_log_continue_seamlessly(tmp_path):
    one_go = _build()
    _fit(one_go, epochs=4, initial_epoch=0, callbacks=[CSVLogger(tmp_path / "full.csv")])

    interrupted = _build()
    checkpoint = tmp_path / "checkpoint.tnz"
    log = tmp_path / "resumed.csv"

    class Interrupt(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 3:
                raise KeyboardInterrupt  # the person pressed Ctrl-C during epoch 4

    with pytest.raises(KeyboardInterrupt):
        _fit(interrupted, epochs=4, initial_epoch=0, callbacks=[ModelCheckpoint(checkpoint), CSVLogger(log),
                                                                Interrupt()])
    resumed = load_model(checkpoint)
    assert resumed.epochs_done == 3
    _fit(resumed, epochs=4, initial_epoch=resumed.epochs_done,
         callbacks=[ModelCheckpoint(checkpoint), CSVLogger(log, append=True)])
    assert log.read_text() == (tmp_path / "full.csv").read_text()
    assert_weights_identical(one_go.get_weights(), load_model(checkpoint).get_weights())


# ---------------------------------------------------------------------------------------------------- the CLI
def _dataset(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 40, size=(64, 28, 28), dtype=np.uint8)
    labels = (np.arange(64) % 10).astype(np.uint8)
    for index, label in enumerate(labels):
        images[index, 2 + 2 * label: 4 + 2 * label, 4:24] = 255
    folder.mkdir()
    path = folder / "tiny.npz"
    np.savez(path, x_train=images[:48], y_train=labels[:48], x_test=images[48:], y_test=labels[48:])
    return path


def _train(*flags: str) -> int:
    return cli.main(["train", "--batch-size", "16", "--learning-rate", "0.05", "--momentum", "0.9",
                     "--verbose", "0", "--seed", "3", *flags])


@pytest.fixture
def no_pictures(monkeypatch):
    """The command's pictures are tested elsewhere; skipping them keeps these runs short."""
    from tinynet import plotting

    for name in ("plot_samples", "plot_loss", "plot_accuracy", "plot_confusion_matrix",
                 "plot_images_with_predictions"):
        monkeypatch.setattr(plotting, name, lambda *args, **kwargs: None)


def test_command_resume_continues_exactly(tmp_path, capsys, no_pictures):
    data = str(_dataset(tmp_path / "data"))
    assert _train("--data", data, "--epochs", "4", "--output", str(tmp_path / "one_go"),
                  "--checkpoint", str(tmp_path / "one_go.tnz")) == 0
    assert _train("--data", data, "--epochs", "3", "--output", str(tmp_path / "split"),
                  "--checkpoint", str(tmp_path / "split.tnz")) == 0
    assert load_model(tmp_path / "split.tnz").epochs_done == 3
    assert _train("--data", data, "--epochs", "4", "--output", str(tmp_path / "split"),
                  "--resume", str(tmp_path / "split.tnz"), "--checkpoint", str(tmp_path / "split.tnz")) == 0
    assert "Resuming from" in capsys.readouterr().out

    # history.csv lists every epoch (2..4 here), the resumed run's included, with the same numbers.
    with open(tmp_path / "split" / "history.csv") as file:
        rows = list(csv.DictReader(file))
    assert [row["epoch"] for row in rows] == ["2", "3", "4"]
    assert (tmp_path / "split" / "history.csv").read_text() == (tmp_path / "one_go" / "history.csv").read_text()
    assert_weights_identical(load_model(tmp_path / "one_go.tnz").get_weights(),
                             load_model(tmp_path / "split.tnz").get_weights())


def test_command_resume_refuses_a_finished_or_mismatched_model(tmp_path, capsys, no_pictures):
    data = str(_dataset(tmp_path / "data"))
    checkpoint = tmp_path / "small.tnz"
    _build().save(checkpoint)  # takes 8x8 images
    assert _train("--data", data, "--epochs", "2", "--resume", str(checkpoint),
                  "--output", str(tmp_path / "o")) == 1
    assert "takes inputs of shape (None, 8, 8, 1)" in capsys.readouterr().err

    finished = tmp_path / "finished.tnz"
    assert _train("--data", data, "--epochs", "2", "--limit", "16", "--output", str(tmp_path / "o"),
                  "--checkpoint", str(finished)) == 0
    assert _train("--data", data, "--epochs", "2", "--resume", str(finished), "--output", str(tmp_path / "o")) == 1
    assert "already done 2 epochs" in capsys.readouterr().err


def test_command_reports_divergence_cleanly(tmp_path, capsys, no_pictures):
    data = str(_dataset(tmp_path / "data"))
    code = cli.main(["train", "--data", data, "--epochs", "2", "--learning-rate", "1e35", "--limit", "32",
                     "--verbose", "0", "--output", str(tmp_path / "o"), "--checkpoint", str(tmp_path / "c.tnz")])
    assert code == 1
    error = capsys.readouterr().err
    assert "training diverged at epoch 2/2" in error and "in layer" in error
    assert not (tmp_path / "c.tnz").exists()


# ------------------------------------------------------------------------------------------- numerical faults
def _plant_nan_weight(model: Sequential) -> None:
    model.layers[5].params["kernel"][3, 2] = np.nan


def _plant_huge_learning_rate(model: Sequential) -> None:
    model.optimizer.learning_rate = 1e35


@pytest.mark.parametrize("plant", [_plant_nan_weight, _plant_huge_learning_rate])
def test_a_planted_fault_stops_training_naming_epoch_batch_and_layer(tmp_path, plant):
    model = _build()
    checkpoint = tmp_path / "checkpoint.tnz"
    snapshots = {}

    class Saboteur(Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots[epoch] = self.model.get_weights()

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                plant(self.model)

    with pytest.raises(NumericalFaultError) as fault:
        _fit(model, epochs=4, initial_epoch=0, callbacks=[ModelCheckpoint(checkpoint), Saboteur()])
    error = fault.value
    message = str(error)
    assert isinstance(error, FloatingPointError)
    assert error.epoch == 2 and "epoch 3/4" in message and f"batch {error.batch + 1}/6" in message
    assert error.layer in [layer.name for layer in model.layers] and repr(error.layer) in message
    if plant is _plant_nan_weight:
        assert error.batch == 0 and error.layer == "dense_1" and error.quantity == "loss"
        assert "its weight 'kernel' holds NaN" in message

    survivor = load_model(checkpoint)
    assert survivor.epochs_done == 2
    assert_weights_identical(snapshots[1], survivor.get_weights())
    assert all(np.isfinite(weight).all() for weight in survivor.get_weights())


def test_terminate_on_nan_keeps_the_last_checkpoint_too(tmp_path, capsys):
    model = _build()
    checkpoint = tmp_path / "checkpoint.tnz"

    class Saboteur(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                _plant_nan_weight(self.model)

    with pytest.warns(RuntimeWarning, match="previous checkpoint is kept"):
        history = _fit(model, epochs=4, initial_epoch=0,
                       callbacks=[ModelCheckpoint(checkpoint), Saboteur(), TerminateOnNaN()])
    assert history.epoch == [0, 1] and np.isnan(history.history["loss"][1])
    assert "Invalid loss, terminating training" in capsys.readouterr().out
    assert load_model(checkpoint).epochs_done == 1


def test_the_fault_check_costs_little_and_leaves_training_unchanged(monkeypatch):
    """Training with the check gives exactly the numbers Keras's plain loop would: it only reads."""
    checked = _build()
    _fit(checked, epochs=1, initial_epoch=0)
    plain = _build()
    monkeypatch.setattr(sequential_module, "arrays_are_finite", lambda dicts: True)  # the check switched off
    _fit(plain, epochs=1, initial_epoch=0)
    assert_weights_identical(checked.get_weights(), plain.get_weights())


def test_an_update_that_overflows_is_caught_at_once():
    backend.set_random_seed(0)
    model = Sequential([layers.Dense(3, input_shape=(2,), activation="softmax")])
    model.compile(SGD(learning_rate=3e38), "categorical_crossentropy")
    x, y = np.full((4, 2), 10.0, np.float32), to_categorical([0, 1, 2, 0], 3)
    with pytest.raises(NumericalFaultError) as fault, np.errstate(over="ignore"):
        model.fit(x, y, batch_size=4, verbose=0)
    assert fault.value.quantity == "update" and fault.value.batch == 0 and fault.value.layer == "dense_1"
    assert "the update made a weight NaN or infinite" in str(fault.value)
    with pytest.raises(NumericalFaultError, match="in train_on_batch"):
        model.train_on_batch(x, y)



@pytest.mark.parametrize("weights_only", [False, True])
@pytest.mark.parametrize("terminate_first", [False, True])
def test_an_update_that_overflows_under_terminate_on_nan_keeps_the_last_checkpoint(tmp_path, capsys, weights_only,
                                                                                   terminate_first):
    """No validation data, so the epoch's logs are all finite: only the fault itself and the weights can tell the
    checkpoint that this epoch is not a good one. The file on disk stays byte for byte the last good epoch's."""
    backend.set_random_seed(0)
    model = Sequential([layers.Dense(3, input_shape=(2,), activation="softmax")])
    model.compile(SGD(learning_rate=0.1, momentum=0.5), "categorical_crossentropy")
    x, y = np.full((4, 2), 10.0, np.float32), to_categorical([0, 1, 2, 0], 3)
    checkpoint = tmp_path / "checkpoint"
    callbacks = [ModelCheckpoint(checkpoint, monitor="loss", save_weights_only=weights_only), TerminateOnNaN()]
    if terminate_first:
        callbacks.reverse()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=callbacks)
    good = checkpoint.read_bytes()
    model.optimizer.learning_rate = 3e38  # finite in float32; times a gradient above 1.2 it overflows
    with pytest.warns(RuntimeWarning, match="epoch 2: training stopped on a numerical fault in the update"), \
            np.errstate(over="ignore", invalid="ignore"):
        history = model.fit(x, y, batch_size=4, epochs=3, initial_epoch=1, verbose=0, callbacks=callbacks)
    assert history.epoch == [1] and all(np.isfinite(history.history["loss"]))  # the logs alone look good
    assert not all(np.isfinite(weight).all() for weight in model.get_weights())
    assert checkpoint.read_bytes() == good
    assert model.epochs_done == 1
    assert "the update made a weight NaN or Inf" in capsys.readouterr().out


def test_a_non_finite_validation_loss_is_caught_at_the_end_of_the_epoch():
    model = _build()
    x, y, x_val, y_val = _data()

    class SpoilAfterLastBatch(Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 5:
                self.model.layers[0].params["bias"][1] = np.inf

    with pytest.raises(NumericalFaultError) as fault, np.errstate(invalid="ignore"):
        model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, validation_data=(x_val, y_val),
                  callbacks=[SpoilAfterLastBatch()])
    assert fault.value.quantity == "validation" and fault.value.epoch == 0 and fault.value.batch is None
    assert "epoch 1/2, in the validation pass" in str(fault.value) and fault.value.layer == "conv2d_1"
