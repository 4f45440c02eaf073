"""LearningRateScheduler, ReduceLROnPlateau and LambdaCallback, as Keras 2.2.4's callbacks behave."""

from __future__ import annotations

import numpy as np
import pytest

from tinynet import backend, layers
from tinynet.callbacks import Callback, LambdaCallback, LearningRateScheduler, ReduceLROnPlateau
from tinynet.models import Sequential
from tinynet.optimizers import SGD, Adam
from tinynet.optimizers.schedules import ExponentialDecay


def _model(optimizer=None):
    backend.set_random_seed(4)
    model = Sequential([layers.Dense(5, input_shape=(3,), activation="relu"), layers.Dense(2, activation="softmax")])
    model.compile(optimizer or SGD(0.1), "categorical_crossentropy", ["accuracy"])
    return model


def _fit(model, epochs, callbacks, **kwargs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 3)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 20)]
    return model.fit(x, y, batch_size=10, epochs=epochs, verbose=0, callbacks=callbacks, **kwargs)


class _RateSeen(Callback):
    """The learning rate each epoch's updates used, seen at the epoch's first batch."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.rates.append(self.model.optimizer.current_learning_rate())


def test_history_has_no_lr_without_a_learning_rate_callback():
    assert "lr" not in _fit(_model(), 2, []).history


@pytest.mark.parametrize(("schedule", "expected"), [
    (lambda epoch, lr: lr * 0.5 if epoch else 0.2, [0.2, 0.1, 0.05]),  # Keras 2.2's schedule(epoch, lr)
    (lambda epoch: 0.2 / (epoch + 1), [0.2, 0.1, 0.2 / 3]),            # the older schedule(epoch)
])
def test_learning_rate_scheduler_sets_the_rate_before_each_epoch_and_logs_it(schedule, expected):
    seen = _RateSeen()
    history = _fit(_model(), 3, [LearningRateScheduler(schedule), seen])
    assert seen.rates == pytest.approx(expected, rel=1e-15)
    assert history.history["lr"] == pytest.approx(expected, rel=1e-15)


def test_learning_rate_scheduler_uses_the_epoch_numbering_of_fit(capsys):
    epochs = []
    _fit(_model(), 3, [LearningRateScheduler(lambda epoch: epochs.append(epoch) or 0.1, verbose=1)],
         initial_epoch=1)
    assert epochs == [1, 2]
    assert "Epoch 00002: LearningRateScheduler setting learning rate to 0.1." in capsys.readouterr().out


def test_learning_rate_scheduler_does_not_hide_a_type_error_inside_the_schedule():
    def broken(epoch, lr):
        return lr + "x"

    with pytest.raises(TypeError, match="unsupported operand"):
        _fit(_model(), 1, [LearningRateScheduler(broken)])


@pytest.mark.parametrize("value", [1, "0.1", None, np.float16(0.1)])
def test_learning_rate_scheduler_wants_a_float(value):
    with pytest.raises(ValueError, match='the output of the "schedule" function should be float'):
        _fit(_model(), 1, [LearningRateScheduler(lambda epoch: value)])


@pytest.mark.parametrize("callback", [LearningRateScheduler(lambda epoch: 0.1), ReduceLROnPlateau()])
def test_learning_rate_callbacks_refuse_an_optimizer_driven_by_a_schedule(callback):
    with pytest.raises(TypeError, match="not a number; a learning-rate schedule already sets the rate"):
        _fit(_model(Adam(ExponentialDecay(0.01, 10, 0.9))), 1, [callback])


def _plateau_run(losses, **kwargs):
    """ReduceLROnPlateau fed a made-up 'loss' per epoch; the rates it sets, epoch by epoch."""
    model = _model(SGD(1.0))
    callback = ReduceLROnPlateau(monitor="val_metric", **kwargs)
    callback.set_model(model)
    callback.on_train_begin()
    logged = []
    for epoch, loss in enumerate(losses):
        logs = {"val_metric": loss}
        callback.on_epoch_end(epoch, logs)
        logged.append(logs["lr"])
    return logged, model.optimizer.lr


def test_reduce_lr_on_plateau_waits_patience_epochs():
    logged, final = _plateau_run([1.0, 0.5, 0.5, 0.5, 0.5, 0.4], factor=0.5, patience=2)
    # epochs 2 and 3 do not improve on 0.5 -> reduce at the end of epoch 3; epoch 4 starts a new count.
    assert logged == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5]
    assert final == 0.5


def test_reduce_lr_on_plateau_min_delta_cooldown_and_min_lr():
    losses = [1.0, 0.99995, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    # 0.99995 is no improvement on 1.0 by min_delta 1e-4: reduce at epoch 1. As in Keras 2.2.4, the cooldown
    # counter is decremented before the epoch is judged, so cooldown=2 skips one epoch's count, not two.
    logged, final = _plateau_run(losses, factor=0.5, patience=1, cooldown=2, min_lr=0.2)
    assert logged == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2]
    assert final == 0.2
    logged, _ = _plateau_run(losses[:3], factor=0.5, patience=1, min_delta=0)
    assert logged == [1.0, 1.0, 1.0]  # without min_delta, 0.99995 improves


def test_reduce_lr_on_plateau_auto_mode_maximizes_accuracies():
    logged, _ = _plateau_run([0.5, 0.6, 0.6], factor=0.5, patience=1)  # monitor 'val_metric': minimized
    assert logged == [1.0, 1.0, 0.5]
    model = _model(SGD(1.0))
    callback = ReduceLROnPlateau(monitor="val_acc", factor=0.5, patience=1)
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, accuracy in enumerate([0.5, 0.6, 0.7]):
        callback.on_epoch_end(epoch, {"val_acc": accuracy})
    assert model.optimizer.lr == 1.0


def test_reduce_lr_on_plateau_warns_when_the_figure_is_missing():
    with pytest.warns(RuntimeWarning, match="conditioned on 'val_loss', which is not available"):
        history = _fit(_model(), 1, [ReduceLROnPlateau()])
    assert history.history["lr"] == [0.1]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"factor": 1.0}, r"factor must be a number in \[0, 1\)"),
    ({"patience": -1}, "patience must be a non-negative int"),
    ({"cooldown": 1.5}, "cooldown must be a non-negative int"),
    ({"min_lr": -1}, "min_lr must be a finite number >= 0"),
    ({"mode": "up"}, "mode must be 'auto', 'min' or 'max'"),
])
def test_reduce_lr_on_plateau_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ReduceLROnPlateau(**kwargs)


def test_lambda_callback_calls_each_hook_with_positional_arguments():
    calls = []
    callback = LambdaCallback(
        on_train_begin=lambda logs: calls.append("train_begin"),
        on_epoch_begin=lambda epoch, logs: calls.append(("epoch_begin", epoch)),
        on_batch_end=lambda batch, logs: calls.append(("batch_end", batch, round(logs["size"]))),
        on_epoch_end=lambda epoch, logs: calls.append(("epoch_end", epoch, "loss" in logs)),
        on_train_end=lambda logs: calls.append("train_end"))
    _fit(_model(), 1, [callback])
    assert calls == ["train_begin", ("epoch_begin", 0), ("batch_end", 0, 10), ("batch_end", 1, 10),
                     ("epoch_end", 0, True), "train_end"]


def test_lambda_callback_refuses_a_hook_that_is_not_a_function():
    with pytest.raises(TypeError, match="LambdaCallback: on_epoch_end must be a function"):
        LambdaCallback(on_epoch_end="print")
