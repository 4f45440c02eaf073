"""Resume is bit-identical with every optimizer: 2 epochs straight == 1 epoch, save, load, 1 more epoch.

The model file carries each optimizer's config (a schedule as its class name and config), ``iterations``, every
slot and Nadam's ``m_schedule``; ReduceLROnPlateau's reduced rate is in the config too.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinynet import backend, layers
from tinynet.callbacks import ModelCheckpoint, ReduceLROnPlateau
from tinynet.models import Sequential, load_model
from tinynet.models.saving.compile_state import rebuild_optimizer
from tinynet.models.saving.file_format import FormatError
from tinynet.optimizers import SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, Nadam, RMSprop
from tinynet.optimizers.schedules import CosineDecay, ExponentialDecay

OPTIMIZERS = {
    "sgd": lambda: SGD(0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda: RMSprop(decay=1e-3),
    "adagrad": lambda: Adagrad(clipnorm=0.5),
    "adadelta": lambda: Adadelta(clipvalue=0.05),
    "adam": lambda: Adam(),
    "amsgrad": lambda: Adam(amsgrad=True, lr=ExponentialDecay(0.003, decay_steps=3, decay_rate=0.8)),
    "adamw": lambda: AdamW(weight_decay=0.05, learning_rate=CosineDecay(0.005, 10, alpha=0.1)),
    "adamax": lambda: Adamax(),
    "nadam": lambda: Nadam(schedule_decay=0.05),
}


def _build(optimizer) -> Sequential:
    backend.clear_session()
    backend.set_random_seed(9)
    model = Sequential([layers.Dense(12, input_shape=(6,), activation="relu"), layers.Dropout(0.3),
                        layers.Dense(3, activation="softmax")])
    model.compile(optimizer, "categorical_crossentropy", ["accuracy"])
    return model


def _data():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((40, 6)).astype(np.float32)
    return x, np.eye(3, dtype=np.float32)[rng.integers(0, 3, 40)]


def _fit(model, epochs, initial_epoch=0, callbacks=None):
    x, y = _data()
    return model.fit(x, y, batch_size=8, epochs=epochs, initial_epoch=initial_epoch, verbose=0,
                     validation_split=0.25, callbacks=callbacks)


def _state(model):
    slots = model.optimizer.get_slots(model.layers)
    return model.get_weights(), {kind: dict(named) for kind, named in slots.items()}, model.optimizer.get_state()


def _assert_same_state(first, second):
    for a, b in zip(first[0], second[0], strict=True):
        np.testing.assert_array_equal(a, b, strict=True)
    assert first[1].keys() == second[1].keys()
    for kind in first[1]:
        assert first[1][kind].keys() == second[1][kind].keys()
        for name in first[1][kind]:
            np.testing.assert_array_equal(first[1][kind][name], second[1][kind][name], strict=True)
    assert first[2] == second[2]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_resume_after_save_and_load_is_bit_identical(tmp_path, name):
    straight = _build(OPTIMIZERS[name]())
    history = _fit(straight, epochs=2)

    first = _build(OPTIMIZERS[name]())
    _fit(first, epochs=1)
    first.save(tmp_path / "one.tnz")
    resumed = load_model(tmp_path / "one.tnz")
    assert type(resumed.optimizer) is type(straight.optimizer)
    assert resumed.optimizer.get_config() == first.optimizer.get_config()
    resumed_history = _fit(resumed, epochs=2, initial_epoch=resumed.epochs_done)

    _assert_same_state(_state(straight), _state(resumed))
    assert resumed.optimizer.iterations == straight.optimizer.iterations == 8
    assert history.history["loss"][1] == resumed_history.history["loss"][0]
    assert any(kind for kind, named in _state(straight)[1].items() if named) or name == "sgd"


def test_nadam_m_schedule_is_saved_and_needed(tmp_path):
    model = _build(Nadam(schedule_decay=0.5))
    _fit(model, epochs=1)
    assert model.optimizer.m_schedule < 0.5  # the product of five momentum caches, far from its start at 1
    model.save(tmp_path / "nadam.tnz")
    assert load_model(tmp_path / "nadam.tnz").optimizer.m_schedule == model.optimizer.m_schedule


@pytest.mark.parametrize(("state", "message"), [
    ({"m_schedule": 5.0}, r"m_schedule must be in \[0, 1\]"),
    ({"m_schedule": "1"}, "m_schedule must be a finite number"),
    ({"m_schedule": 0.5, "apply_gradients": 1}, "unknown state 'apply_gradients'"),
    ([0.5], "the optimizer field 'state' must be a JSON object"),
])
def test_bad_optimizer_state_in_a_file_is_refused(state, message):
    model = _build(Nadam())
    document = {"class_name": "Nadam", "config": Nadam().get_config(), "iterations": 3, "slots": {}, "state": state}
    with pytest.raises(FormatError, match=message):
        rebuild_optimizer(document, {}, {}, model)


def test_sgd_refuses_state_it_does_not_keep():
    model = _build(SGD())
    document = {"class_name": "SGD", "config": SGD().get_config(), "iterations": 0, "slots": {},
                "state": {"m_schedule": 0.5}}
    with pytest.raises(FormatError, match="unknown state 'm_schedule'; it keeps none"):
        rebuild_optimizer(document, {}, {}, model)


def test_an_unknown_schedule_class_in_a_file_is_refused():
    model = _build(SGD())
    config = {"learning_rate": {"class_name": "Evil", "config": {}}, "decay": 0.0}
    document = {"class_name": "SGD", "config": config, "iterations": 0, "slots": {}}
    with pytest.raises(FormatError, match="unknown learning-rate schedule class 'Evil'"):
        rebuild_optimizer(document, {}, {}, model)


def test_resume_with_reduce_lr_on_plateau_mid_run_is_bit_identical(tmp_path):
    def plateau():  # every epoch after the first counts as no improvement, so patience 1 reduces at its end
        return ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=1e9)

    straight = _build(Adam(lr=0.01))
    history = _fit(straight, epochs=3, callbacks=[plateau()])
    assert history.history["lr"] == [0.01, 0.01, 0.005]  # logged before the epoch's reduction, as Keras does

    first = _build(Adam(lr=0.01))
    # ModelCheckpoint listed first still saves the reduced rate: ReduceLROnPlateau runs before History and the rest.
    _fit(first, epochs=2, callbacks=[ModelCheckpoint(str(tmp_path / "at-{epoch}.tnz")), plateau()])
    resumed = load_model(tmp_path / "at-2.tnz")
    assert resumed.optimizer.lr == 0.005
    assert resumed.history.history["lr"] == [0.01, 0.01]  # the checkpoint holds the epoch it was saved at
    # The callback's counters restart (as in Keras): the resumed first epoch improves on best = inf.
    _fit(resumed, epochs=3, initial_epoch=2, callbacks=[plateau()])
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b, strict=True)
    assert straight.optimizer.lr == 0.0025 and resumed.optimizer.lr == 0.005
