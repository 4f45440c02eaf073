"""Every optimizer against Keras 2.2.4's update equations, written out here in NumPy from ``keras/optimizers.py``
(tag 2.2.4), independently of tinynet's code: 100 steps of a small float64 model, compared after every step.

The reference is fed the gradients the model computed at that step (they depend on the weights, which agree to
rounding), and keeps its own weights and slots from the same start. Keras's ``K.epsilon()`` is 1e-7.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinynet.backend import set_random_seed
from tinynet.layers import Dense
from tinynet.models import Sequential
from tinynet.optimizers import SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, Nadam, RMSprop, get
from tinynet.optimizers.schedules import ExponentialDecay, PiecewiseConstantDecay

STEPS = 100
EPSILON = 1e-7


class KerasReference:
    """Keras 2.2.4's ``get_updates`` for one optimizer, one step per call, on lists of float64 arrays."""

    def __init__(self, name, params, lr=None, decay=0.0, clipnorm=0.0, clipvalue=0.0, schedule=None, **hyper):
        defaults = {"sgd": 0.01, "rmsprop": 0.001, "adagrad": 0.01, "adadelta": 1.0, "adam": 0.001, "adamw": 0.001,
                    "adamax": 0.002, "nadam": 0.002}
        self.name, self.lr, self.decay, self.schedule = name, defaults[name] if lr is None else lr, decay, schedule
        self.clipnorm, self.clipvalue, self.hyper = clipnorm, clipvalue, hyper
        self.params = [p.astype(np.float64).copy() for p in params]
        self.slots = [[np.zeros_like(p) for _ in range(3)] for p in self.params]
        self.iterations = 0
        self.m_schedule = 1.0

    def _gradients(self, grads):
        # Optimizer.get_gradients: one global norm, then clip_norm's g * c / n when n >= c, then K.clip.
        if self.clipnorm > 0:
            norm = math.sqrt(sum(float(np.sum(g ** 2)) for g in grads))
            if norm >= self.clipnorm:
                grads = [g * (self.clipnorm / norm) for g in grads]
        if self.clipvalue > 0:
            grads = [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def step(self, grads):
        grads = self._gradients([np.asarray(g, dtype=np.float64) for g in grads])
        lr = self.lr
        if self.schedule is not None:
            lr = self.schedule(self.iterations)
        if self.decay > 0:
            lr = lr * (1.0 / (1.0 + self.decay * self.iterations))
        t = self.iterations + 1
        h = self.hyper
        if self.name == "nadam":
            beta_1, beta_2, schedule_decay = h.get("beta_1", 0.9), h.get("beta_2", 0.999), h.get("schedule_decay",
                                                                                               0.004)
            momentum_cache_t = beta_1 * (1.0 - 0.5 * 0.96 ** (t * schedule_decay))
            momentum_cache_t_1 = beta_1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * schedule_decay))
            m_schedule_new = self.m_schedule * momentum_cache_t
            m_schedule_next = self.m_schedule * momentum_cache_t * momentum_cache_t_1
            self.m_schedule = m_schedule_new
        for p, g, slots in zip(self.params, grads, self.slots, strict=True):
            if self.name == "sgd":
                momentum = h.get("momentum", 0.0)
                v = momentum * slots[0] - lr * g
                slots[0] = v
                p += momentum * v - lr * g if h.get("nesterov") else v
            elif self.name == "rmsprop":
                rho = h.get("rho", 0.9)
                slots[0] = rho * slots[0] + (1.0 - rho) * g ** 2
                p -= lr * g / (np.sqrt(slots[0]) + EPSILON)
            elif self.name == "adagrad":
                slots[0] = slots[0] + g ** 2
                p -= lr * g / (np.sqrt(slots[0]) + EPSILON)
            elif self.name == "adadelta":
                rho = h.get("rho", 0.95)
                a, d_a = slots[0], slots[1]
                new_a = rho * a + (1.0 - rho) * g ** 2
                update = g * np.sqrt(d_a + EPSILON) / np.sqrt(new_a + EPSILON)
                p -= lr * update
                slots[0], slots[1] = new_a, rho * d_a + (1 - rho) * update ** 2
            elif self.name in ("adam", "adamw"):
                beta_1, beta_2 = h.get("beta_1", 0.9), h.get("beta_2", 0.999)
                if self.name == "adamw":  # Keras 3 / tf.keras AdamW: variable - variable * wd * lr, before the step
                    p -= p * h.get("weight_decay", 0.004) * lr
                lr_t = lr * (math.sqrt(1.0 - beta_2 ** t) / (1.0 - beta_1 ** t))
                m_t = beta_1 * slots[0] + (1.0 - beta_1) * g
                v_t = beta_2 * slots[1] + (1.0 - beta_2) * g ** 2
                if h.get("amsgrad"):
                    slots[2] = np.maximum(slots[2], v_t)
                    p -= lr_t * m_t / (np.sqrt(slots[2]) + EPSILON)
                else:
                    p -= lr_t * m_t / (np.sqrt(v_t) + EPSILON)
                slots[0], slots[1] = m_t, v_t
            elif self.name == "adamax":
                beta_1, beta_2 = h.get("beta_1", 0.9), h.get("beta_2", 0.999)
                lr_t = lr / (1.0 - beta_1 ** t)
                slots[0] = beta_1 * slots[0] + (1.0 - beta_1) * g
                slots[1] = np.maximum(beta_2 * slots[1], np.abs(g))
                p -= lr_t * slots[0] / (slots[1] + EPSILON)
            elif self.name == "nadam":
                g_prime = g / (1.0 - m_schedule_new)
                m_t = beta_1 * slots[0] + (1.0 - beta_1) * g
                m_t_prime = m_t / (1.0 - m_schedule_next)
                v_t = beta_2 * slots[1] + (1.0 - beta_2) * g ** 2
                v_t_prime = v_t / (1.0 - beta_2 ** t)
                m_t_bar = (1.0 - momentum_cache_t) * g_prime + momentum_cache_t_1 * m_t_prime
                slots[0], slots[1] = m_t, v_t
                p -= lr * m_t_bar / (np.sqrt(v_t_prime) + EPSILON)
        self.iterations += 1


def _model(optimizer):
    set_random_seed(3)
    model = Sequential([Dense(6, activation="tanh", input_shape=(4,)), Dense(3, activation="softmax")])
    model.compile(optimizer, "categorical_crossentropy")
    return model


def _params(model):
    return [layer.params[name] for layer in model.layers for name in layer.weight_names]


def _grads(model):
    return [layer.grads[name] for layer in model.layers for name in layer.weight_names]


CASES = [
    ("sgd", SGD(momentum=0.9, nesterov=True, clipnorm=0.05), {"momentum": 0.9, "nesterov": True, "clipnorm": 0.05}),
    ("rmsprop", RMSprop(), {}),
    ("rmsprop", RMSprop(lr=0.01, rho=0.8, decay=0.05), {"lr": 0.01, "rho": 0.8, "decay": 0.05}),
    ("adagrad", Adagrad(), {}),
    ("adagrad", Adagrad(learning_rate=0.05, clipvalue=0.01), {"lr": 0.05, "clipvalue": 0.01}),
    ("adadelta", Adadelta(), {}),
    ("adadelta", Adadelta(rho=0.5, decay=0.01), {"rho": 0.5, "decay": 0.01}),
    ("adam", Adam(), {}),
    ("adam", Adam(lr=0.01, beta_1=0.5, amsgrad=True, decay=0.02), {"lr": 0.01, "beta_1": 0.5, "amsgrad": True,
                                                                   "decay": 0.02}),
    ("adam", Adam(clipnorm=0.02, clipvalue=0.005), {"clipnorm": 0.02, "clipvalue": 0.005}),
    ("adamw", AdamW(learning_rate=0.01, weight_decay=0.1), {"lr": 0.01, "weight_decay": 0.1}),
    ("adamw", AdamW(amsgrad=True), {"amsgrad": True}),
    ("adamax", Adamax(), {}),
    ("adamax", Adamax(lr=0.02, beta_2=0.9, decay=0.01), {"lr": 0.02, "beta_2": 0.9, "decay": 0.01}),
    ("nadam", Nadam(), {}),
    ("nadam", Nadam(lr=0.01, schedule_decay=0.1, beta_1=0.8), {"lr": 0.01, "schedule_decay": 0.1, "beta_1": 0.8}),
]


@pytest.mark.parametrize(("name", "optimizer", "settings"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_a_hundred_steps_follow_the_keras_2_2_4_equations(float64, name, optimizer, settings):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 4)), np.eye(3)[rng.integers(0, 3, 16)]
    model = _model(optimizer)
    reference = KerasReference(name, _params(model), **settings)
    for step in range(STEPS):
        model.train_on_batch(x, y)
        reference.step(_grads(model))
        for actual, expected in zip(_params(model), reference.params, strict=True):
            np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-13, err_msg=f"{name} step {step}")
    assert model.optimizer.iterations == STEPS
    moved = sum(float(np.abs(p - q).sum()) for p, q in zip(_params(model), _params(_model(get("sgd"))), strict=True))
    assert moved > 1e-3  # the comparison is not between two models that never moved


@pytest.mark.parametrize("schedule", [ExponentialDecay(0.01, decay_steps=10, decay_rate=0.5),
                                      PiecewiseConstantDecay([20, 50], [0.01, 0.003, 0.0005])])
def test_a_schedule_gives_the_rate_of_every_step(float64, schedule):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((16, 4)), np.eye(3)[rng.integers(0, 3, 16)]
    model = _model(Adam(learning_rate=schedule))
    reference = KerasReference("adam", _params(model), schedule=schedule)
    for step in range(STEPS):
        assert model.optimizer.current_learning_rate() == schedule(step)
        model.train_on_batch(x, y)
        reference.step(_grads(model))
        for actual, expected in zip(_params(model), reference.params, strict=True):
            np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-13)


def test_compile_by_name_gives_keras_2_2_4_defaults():
    expected = {
        "sgd": (SGD, {"learning_rate": 0.01, "momentum": 0.0, "decay": 0.0, "nesterov": False}),
        "rmsprop": (RMSprop, {"learning_rate": 0.001, "rho": 0.9, "epsilon": 1e-7, "decay": 0.0}),
        "adagrad": (Adagrad, {"learning_rate": 0.01, "epsilon": 1e-7, "decay": 0.0}),
        # Keras 3 moved Adadelta's default rate to 0.001; 2.2.4's is 1.0.
        "adadelta": (Adadelta, {"learning_rate": 1.0, "rho": 0.95, "epsilon": 1e-7, "decay": 0.0}),
        "adam": (Adam, {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "decay": 0.0,
                        "amsgrad": False}),
        "adamw": (AdamW, {"learning_rate": 0.001, "weight_decay": 0.004, "beta_1": 0.9, "beta_2": 0.999,
                          "epsilon": 1e-7, "decay": 0.0, "amsgrad": False}),
        "adamax": (Adamax, {"learning_rate": 0.002, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "decay": 0.0}),
        "nadam": (Nadam, {"learning_rate": 0.002, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7,
                          "schedule_decay": 0.004}),
    }
    for name, (cls, config) in expected.items():
        for spelling in (name, name.upper()):
            model = _model(spelling)
            assert type(model.optimizer) is cls
            assert model.optimizer.get_config() == config


def test_adagrad_starts_its_accumulator_at_zero_and_keeps_epsilon_outside_the_root(float64):
    """The two Keras 3 traps: with a = 0.1 at the start, or sqrt(a + eps), the first step would differ."""
    model = _model(Adagrad(learning_rate=0.1, epsilon=0.5))
    before = [p.copy() for p in _params(model)]
    rng = np.random.default_rng(2)
    model.train_on_batch(rng.standard_normal((8, 4)), np.eye(3)[rng.integers(0, 3, 8)])
    for p0, p1, g in zip(before, _params(model), _grads(model), strict=True):
        np.testing.assert_allclose(p1, p0 - 0.1 * g / (np.abs(g) + 0.5), rtol=1e-13, atol=1e-16)


def test_clipping_leaves_the_layers_gradients_as_backward_left_them(float64):
    model = _model(SGD(clipnorm=1e-6, clipvalue=1e-9))
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((8, 4)), np.eye(3)[rng.integers(0, 3, 8)]
    before = [p.copy() for p in _params(model)]
    model.train_on_batch(x, y)
    grads = [g.copy() for g in _grads(model)]
    assert max(float(np.abs(g).max()) for g in grads) > 1e-3  # not clipped in place
    for p0, p1 in zip(before, _params(model), strict=True):
        # |step| <= lr * clipvalue (the difference of two values near 0.5 is exact to ~1e-16)
        assert float(np.abs(p1 - p0).max()) <= 0.01 * 1e-9 * 1.001


def test_clipnorm_is_one_norm_over_all_gradients_and_spares_a_smaller_norm(float64):
    layers = [Dense(2, dtype="float64"), Dense(2, dtype="float64")]
    for layer in layers:
        layer.build((2,))
        layer.set_weights([np.zeros((2, 2)), np.zeros(2)])
    layers[0].grads = {"kernel": np.full((2, 2), 3.0), "bias": np.zeros(2)}
    layers[1].grads = {"kernel": np.zeros((2, 2)), "bias": np.array([4.0, 0.0])}
    # Global norm sqrt(4 * 9 + 16) = sqrt(52): each gradient is scaled by 1 / sqrt(52), not to norm 1 each.
    SGD(learning_rate=1.0, clipnorm=1.0).apply_gradients(layers)
    np.testing.assert_allclose(layers[0].params["kernel"], np.full((2, 2), -3.0 / math.sqrt(52)), rtol=1e-15)
    np.testing.assert_allclose(layers[1].params["bias"], [-4.0 / math.sqrt(52), 0.0], rtol=1e-15)
    # A norm below clipnorm leaves the gradients alone.
    SGD(learning_rate=1.0, clipnorm=100.0).apply_gradients(layers)
    np.testing.assert_allclose(layers[1].params["bias"], [-4.0 / math.sqrt(52) - 4.0, 0.0], rtol=1e-15)


def test_clipnorm_of_large_float32_gradients_does_not_overflow():
    layer = Dense(2)
    layer.build((2,))
    layer.set_weights([np.zeros((2, 2), np.float32), np.zeros(2, np.float32)])
    layer.grads = {"kernel": np.full((2, 2), 1e30, np.float32), "bias": np.zeros(2, np.float32)}
    SGD(learning_rate=1.0, clipnorm=1.0).apply_gradients([layer])  # the norm 2e30 squared overflows float32
    np.testing.assert_allclose(layer.params["kernel"], np.full((2, 2), -0.5, np.float32), rtol=1e-6)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Adam(beta_1=1.0), r"Adam: beta_1 must be in \[0, 1\)"),
    (lambda: RMSprop(rho=-0.1), r"RMSprop: rho must be in \[0, 1\]"),
    (lambda: Adagrad(epsilon=float("nan")), r"Adagrad: epsilon must be a finite number"),
    (lambda: Nadam(decay=0.1), r"unexpected keyword argument 'decay'"),
    (lambda: SGD(clipnorm=-1.0), r"SGD: clipnorm must be >= 0"),
    (lambda: Adam(amsgrad="yes"), r"Adam: amsgrad must be True or False"),
    (lambda: AdamW(weight_decay=-1), r"AdamW: weight_decay must be >= 0"),
    (lambda: Adam(learning_rate=ExponentialDecay(0.1, 10, 0.5), decay=0.01),
     r"cannot be combined with the learning-rate schedule"),
])
def test_bad_hyperparameters_are_refused(make, message):
    with pytest.raises((TypeError, ValueError), match=message):
        make()


def test_nadam_cannot_be_given_a_decay_later():
    optimizer = Nadam()
    with pytest.raises(ValueError, match="Nadam: has no decay argument in Keras 2.2.4"):
        optimizer.decay = 0.1


@pytest.mark.parametrize("make", [lambda: Nadam(), lambda: Adam(amsgrad=True, clipnorm=0.1), lambda: AdamW(),
                                  lambda: Adadelta(), lambda: Adamax(), lambda: RMSprop(), lambda: Adagrad()])
def test_every_optimizer_gives_the_same_bits_with_any_thread_count(make):
    """The step's scalars (Nadam's m_schedule, Adam's lr_t) are computed once per update, not once per slice."""
    from tinynet import parallel

    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((24, 4)).astype(np.float32), np.eye(3, dtype=np.float32)[rng.integers(0, 3, 24)]
    previous = parallel.num_threads()
    try:
        runs = []
        for threads in (1, 2):
            parallel.set_num_threads(threads)
            model = _model(make())
            model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
            runs.append((model.get_weights(), model.optimizer.get_state()))
    finally:
        parallel.set_num_threads(previous)
    for a, b in zip(runs[0][0], runs[1][0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert runs[0][1] == runs[1][1]
