"""Learning-rate schedules against known answers from tf.keras's formulas, their configs, and their use."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinynet.layers import Dense
from tinynet.optimizers import SGD, Adam, Nadam
from tinynet.optimizers.schedules import (
    CosineDecay,
    ExponentialDecay,
    InverseTimeDecay,
    LearningRateSchedule,
    PiecewiseConstantDecay,
    deserialize,
    serialize,
)


@pytest.mark.parametrize(("schedule", "step", "expected"), [
    (ExponentialDecay(0.1, decay_steps=100, decay_rate=0.96), 0, 0.1),
    (ExponentialDecay(0.1, decay_steps=100, decay_rate=0.96), 100, 0.096),
    (ExponentialDecay(0.1, decay_steps=100, decay_rate=0.96), 250, 0.1 * 0.96 ** 2.5),
    (ExponentialDecay(0.1, decay_steps=100, decay_rate=0.96, staircase=True), 250, 0.09216),
    (ExponentialDecay(0.1, decay_steps=100, decay_rate=0.96, staircase=True), 99, 0.1),
    (InverseTimeDecay(0.1, decay_steps=1, decay_rate=0.5), 2, 0.05),
    (InverseTimeDecay(0.1, decay_steps=10, decay_rate=0.5), 15, 0.1 / 1.75),
    (InverseTimeDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True), 15, 0.1 / 1.5),
    # tf.keras's documented example: a boundary step still belongs to the interval it closes.
    (PiecewiseConstantDecay([100000, 110000], [1.0, 0.5, 0.1]), 0, 1.0),
    (PiecewiseConstantDecay([100000, 110000], [1.0, 0.5, 0.1]), 100000, 1.0),
    (PiecewiseConstantDecay([100000, 110000], [1.0, 0.5, 0.1]), 100001, 0.5),
    (PiecewiseConstantDecay([100000, 110000], [1.0, 0.5, 0.1]), 110000, 0.5),
    (PiecewiseConstantDecay([100000, 110000], [1.0, 0.5, 0.1]), 110001, 0.1),
    (CosineDecay(0.1, decay_steps=1000), 0, 0.1),
    (CosineDecay(0.1, decay_steps=1000), 500, 0.05),
    (CosineDecay(0.1, decay_steps=1000), 250, 0.05 * (1 + math.sqrt(0.5))),
    (CosineDecay(0.1, decay_steps=1000), 5000, 0.0),
    (CosineDecay(0.1, decay_steps=1000, alpha=0.1), 1000, 0.01),
    (CosineDecay(0.1, decay_steps=1000, alpha=0.1), 500, 0.1 * (0.9 * 0.5 + 0.1)),
    (CosineDecay(0.0, decay_steps=100, warmup_target=0.1, warmup_steps=10), 5, 0.05),
    (CosineDecay(0.0, decay_steps=100, warmup_target=0.1, warmup_steps=10), 10, 0.1),
    (CosineDecay(0.0, decay_steps=100, warmup_target=0.1, warmup_steps=10), 60, 0.05),
    (CosineDecay(0.0, decay_steps=100, warmup_target=0.1, warmup_steps=10), 500, 0.0),
])
def test_schedule_known_answers(schedule, step, expected):
    assert schedule(step) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("schedule", [
    ExponentialDecay(0.1, 100, 0.96, staircase=True), InverseTimeDecay(0.2, 10, 0.5),
    PiecewiseConstantDecay([10, 20], [0.1, 0.01, 0.001]), CosineDecay(0.1, 1000, alpha=0.1),
    CosineDecay(0.0, 100, warmup_target=0.1, warmup_steps=10, name="warm"),
])
def test_config_round_trip_gives_the_same_rates(schedule):
    rebuilt = deserialize(serialize(schedule))
    assert type(rebuilt) is type(schedule)
    assert rebuilt.get_config() == schedule.get_config()
    assert [rebuilt(step) for step in range(0, 2000, 7)] == [schedule(step) for step in range(0, 2000, 7)]


@pytest.mark.parametrize(("document", "message"), [
    ({"class_name": "os.system", "config": {}}, "unknown learning-rate schedule class 'os.system'"),
    ({"class_name": "LearningRateSchedule", "config": {}}, "unknown learning-rate schedule class"),
    ({"class_name": "ExponentialDecay"}, "expected {'class_name'"),
    ({"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 0,
                                                   "decay_rate": 0.5}}, "decay_steps must be > 0"),
])
def test_deserialize_refuses_bad_documents(document, message):
    with pytest.raises((TypeError, ValueError), match=message):
        deserialize(document)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: PiecewiseConstantDecay([10, 5], [1.0, 0.5, 0.1]), "boundaries must increase"),
    (lambda: PiecewiseConstantDecay([10], [1.0]), "one more entry than boundaries"),
    (lambda: ExponentialDecay(float("inf"), 10, 0.5), "initial_learning_rate must be a finite number"),
    (lambda: InverseTimeDecay(0.1, 10, -1.0), "decay_rate must be >= 0"),
    (lambda: CosineDecay(0.1, 10, staircase=True), "unexpected keyword argument"),
])
def test_bad_arguments_are_refused(make, message):
    with pytest.raises((TypeError, ValueError), match=message):
        make()


def test_the_optimizer_evaluates_its_schedule_at_the_step_counter_and_saves_it_in_its_config():
    schedule = PiecewiseConstantDecay([1], [0.5, 0.25])
    optimizer = SGD(learning_rate=schedule)
    layer = Dense(1, dtype="float64", use_bias=False)
    layer.build((1,))
    layer.set_weights([np.array([[1.0]])])
    layer.grads = {"kernel": np.array([[1.0]])}
    for expected in (0.5, 0.5, 0.25):
        before = layer.params["kernel"][0, 0]
        optimizer.apply_gradients([layer])
        assert before - layer.params["kernel"][0, 0] == expected
    config = optimizer.get_config()
    assert config["learning_rate"] == {"class_name": "PiecewiseConstantDecay",
                                       "config": {"boundaries": [1.0], "values": [0.5, 0.25], "name": None}}
    rebuilt = SGD.from_config(config)
    assert isinstance(rebuilt.learning_rate, PiecewiseConstantDecay)
    assert rebuilt.learning_rate.get_config() == schedule.get_config()


def test_a_schedule_and_keras_2_decay_are_refused_together_whatever_the_order():
    with pytest.raises(ValueError, match="a learning-rate schedule and decay=0.1 cannot be combined"):
        Adam(decay=0.1).learning_rate = ExponentialDecay(0.1, 10, 0.5)
    with pytest.raises(ValueError, match="cannot be combined with the learning-rate schedule"):
        Adam(learning_rate=ExponentialDecay(0.1, 10, 0.5)).decay = 0.1


def test_a_schedule_works_in_nadam_and_lr_alias():
    optimizer = Nadam(lr=InverseTimeDecay(0.002, 1, 1.0))
    optimizer.iterations = 3
    assert optimizer.current_learning_rate() == 0.002 / 4


def test_a_user_schedule_subclass_is_used_but_a_negative_rate_is_refused():
    class Negative(LearningRateSchedule):
        def __call__(self, step):
            return -0.1

        def get_config(self):
            return {}

    optimizer = SGD(learning_rate=Negative())
    with pytest.raises(ValueError, match="at step 0, which must be >= 0"):
        optimizer.current_learning_rate()
