"""The optimizer base: a new optimizer is its update equations; the base gives it slots, saving and threads."""

from __future__ import annotations

import numpy as np
import pytest

from tinynet import parallel
from tinynet.backend import set_random_seed
from tinynet.layers import Dense
from tinynet.models import Sequential, load_model
from tinynet.optimizers import SGD, Optimizer


class SquaredGradientDescent(Optimizer):
    """A learner's optimizer in a few lines: Adagrad without epsilon tricks (``a += g^2; p -= lr g / sqrt(a + 1)``)."""

    slot_names = ("accumulators",)

    def __init__(self, learning_rate: float = 0.1, decay: float = 0.0, lr: float | None = None) -> None:
        super().__init__(learning_rate, decay, lr)

    def update_step(self, param, grad, slots, learning_rate):
        (accumulator,) = slots
        accumulator += grad * grad
        param -= param.dtype.type(learning_rate) * grad / np.sqrt(accumulator + 1)
        return int(np.count_nonzero(~np.isfinite(param)))


def _model(optimizer, seed=5):
    set_random_seed(seed)
    model = Sequential([Dense(7, activation="relu", input_shape=(4,)), Dense(3, activation="softmax")])
    model.compile(optimizer, "categorical_crossentropy")
    return model


def _data():
    rng = np.random.default_rng(1)
    return rng.normal(size=(40, 4)).astype(np.float32), np.eye(3, dtype=np.float32)[rng.integers(0, 3, 40)]


def test_a_subclass_gets_slots_per_parameter_and_its_equations_applied():
    x, y = _data()
    model = _model(SquaredGradientDescent())
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(x, y)
    grads = [layer.grads[name].copy() for layer in model.layers for name in layer.weight_names]
    slots = model.optimizer.get_slots(model.layers)["accumulators"]
    assert list(slots) == [(layer.name, name) for layer in model.layers for name in layer.weight_names]
    for w0, g, w1, accumulator in zip(before, grads, model.get_weights(), slots.values(), strict=True):
        np.testing.assert_array_equal(accumulator, g * g)
        np.testing.assert_allclose(w1, w0 - np.float32(0.1) * g / np.sqrt(g * g + 1), rtol=1e-6, atol=1e-7)
    assert model.optimizer.iterations == 1
    for (layer_name, name), accumulator in slots.items():
        layer = next(layer for layer in model.layers if layer.name == layer_name)
        assert accumulator.shape == layer.params[name].shape


@pytest.mark.parametrize("threads", [1, 2])
def test_the_update_loop_gives_the_same_bits_with_any_thread_count(threads):
    x, y = _data()
    reference = _model(SGD(learning_rate=0.05, momentum=0.9, nesterov=True))
    previous = parallel.num_threads()
    try:
        parallel.set_num_threads(1)
        reference.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
        parallel.set_num_threads(threads)
        other = _model(SGD(learning_rate=0.05, momentum=0.9, nesterov=True))
        other.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    finally:
        parallel.set_num_threads(previous)
    for a, b in zip(reference.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_subclass_saves_and_resumes_bit_identically(tmp_path):
    x, y = _data()
    straight = _model(SquaredGradientDescent())
    straight.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    first = _model(SquaredGradientDescent())
    first.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    first.save(tmp_path / "half.tinynet")
    resumed = load_model(tmp_path / "half.tinynet", custom_objects={"SquaredGradientDescent": SquaredGradientDescent})
    assert resumed.optimizer.iterations == 5
    resumed.fit(x, y, batch_size=8, epochs=2, initial_epoch=1, verbose=0, shuffle=False)
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_base_alone_is_not_an_optimizer():
    x, y = _data()
    model = _model(Optimizer(learning_rate=0.1))
    with pytest.raises(NotImplementedError, match="must implement update_step"):
        model.train_on_batch(x, y)
