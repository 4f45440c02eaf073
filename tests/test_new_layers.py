"""AveragePooling2D, LeakyReLU, BatchNormalization and GlobalAveragePooling2D: values against loop references,
gradients against central differences under hypothesis, Keras weight order and state; and the gradient checker
itself on every built-in layer and on a layer with a planted bug.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet.layers as layers_module
from tinynet.layers import (
    ELU,
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    Layer,
    LeakyReLU,
    MaxPooling2D,
    ReLU,
    Reshape,
    ZeroPadding2D,
)
from tinynet.learn.gradcheck import GradcheckReport, check_layer, check_model
from tinynet.models import Sequential, load_model, saving
from tinynet.optimizers import SGD

GRADIENT_SETTINGS = settings(max_examples=15)
SEEDS = st.integers(0, 2**32 - 1)


def assert_checked(report: GradcheckReport, layer: Layer) -> None:
    """Passed, and covered dx and every parameter (never the non-trainable state)."""
    assert report.passed, str(report)
    assert {entry.name for entry in report.entries} == {"x"} | {f"{layer.name}.{name}" for name in layer.params}


@st.composite
def window_configs(draw, max_window=4):
    padding = draw(st.sampled_from(["valid", "same"]))
    window = (draw(st.integers(1, max_window)), draw(st.integers(1, max_window)))
    strides = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    low = window if padding == "valid" else (1, 1)
    height = draw(st.integers(low[0], low[0] + 5))
    width = draw(st.integers(low[1], low[1] + 5))
    return window, strides, padding, height, width


# ------------------------------------------------------------------------------------------ AveragePooling2D
def average_pool_reference(x, pool, strides, padding):
    """Loop over every window; 'same' windows average only the pixels inside the image (TensorFlow's rule)."""
    batch, height, width, channels = x.shape
    if padding == "valid":
        out_h, out_w, top, left = ((height - pool[0]) // strides[0] + 1, (width - pool[1]) // strides[1] + 1, 0, 0)
    else:
        out_h, out_w = math.ceil(height / strides[0]), math.ceil(width / strides[1])
        top = max((out_h - 1) * strides[0] + pool[0] - height, 0) // 2
        left = max((out_w - 1) * strides[1] + pool[1] - width, 0) // 2
    y = np.zeros((batch, out_h, out_w, channels))
    for i in range(out_h):
        for j in range(out_w):
            rows = range(max(i * strides[0] - top, 0), min(i * strides[0] - top + pool[0], height))
            cols = range(max(j * strides[1] - left, 0), min(j * strides[1] - left + pool[1], width))
            y[:, i, j] = x[:, rows][:, :, cols].mean(axis=(1, 2))
    return y


@GRADIENT_SETTINGS
@given(config=window_configs(), channels=st.integers(1, 3), batch=st.integers(1, 3), seed=SEEDS)
def test_average_pooling_matches_the_loop_reference_and_its_gradient_checks(config, channels, batch, seed):
    pool, strides, padding, height, width = config
    layer = AveragePooling2D(pool, strides=strides, padding=padding, dtype="float64")
    x = np.random.default_rng(seed).standard_normal((batch, height, width, channels))
    y = layer.forward(x)
    np.testing.assert_allclose(y, average_pool_reference(x, pool, strides or pool, padding), rtol=1e-12, atol=1e-12)
    assert y.shape[1:] == layer.output_shape
    layer._cache = None
    assert_checked(check_layer(layer, x=x, seed=seed, max_entries=None), layer)


def test_same_average_pooling_ignores_the_padding_like_tensorflow():
    # 3x3 image, 2x2 pool, stride 2, 'same': output 2x2, padding only at the bottom and right. The corner
    # window holds one real pixel, so its average is that pixel (counting the zeros would give a quarter of it).
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    y = AveragePooling2D(2, padding="same", dtype="float64").forward(x)[0, :, :, 0]
    np.testing.assert_array_equal(y, [[(1 + 2 + 4 + 5) / 4, (3 + 6) / 2], [(7 + 8) / 2, 9.0]])


def test_average_pooling_keeps_float32_and_has_keras_defaults():
    layer = AveragePooling2D()
    y = layer.forward(np.ones((2, 4, 5, 3), dtype=np.float32))
    assert (layer.pool_size, layer.strides, layer.padding) == ((2, 2), (2, 2), "valid")
    assert y.dtype == np.float32 and y.shape == (2, 2, 2, 3)
    np.testing.assert_array_equal(y, 1.0)
    assert layer.backward(np.ones_like(y)).dtype == np.float32


# ------------------------------------------------------------------------------------ GlobalAveragePooling2D
@GRADIENT_SETTINGS
@given(height=st.integers(1, 5), width=st.integers(1, 5), channels=st.integers(1, 4), batch=st.integers(1, 4),
       seed=SEEDS)
def test_global_average_pooling_values_and_gradients(height, width, channels, batch, seed):
    layer = GlobalAveragePooling2D(dtype="float64")
    x = np.random.default_rng(seed).standard_normal((batch, height, width, channels))
    y = layer.forward(x)
    np.testing.assert_allclose(y, x.mean(axis=(1, 2)), rtol=1e-12)
    assert layer.output_shape == (channels,)
    layer._cache = None
    assert_checked(check_layer(layer, x=x, seed=seed, max_entries=None), layer)


def test_global_average_pooling_backward_is_writable_and_shares_equally():
    layer = GlobalAveragePooling2D(dtype="float64")
    layer.forward(np.zeros((1, 2, 2, 1)))
    dx = layer.backward(np.array([[8.0]]))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[2.0, 2.0], [2.0, 2.0]])
    dx += 1  # a later layer may update it in place: it must be its own array, not a broadcast view


# ------------------------------------------------------------------------------------------------- LeakyReLU
@GRADIENT_SETTINGS
@given(alpha=st.sampled_from([0.0, 0.01, 0.3, 1.0, 2.0]), shape=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       batch=st.integers(1, 4), seed=SEEDS)
def test_leaky_relu_values_and_gradients(alpha, shape, batch, seed):
    x = np.random.default_rng(seed).standard_normal((batch, *shape))
    x[np.abs(x) < 0.05] = 0.05  # away from the kink, which the finite-difference step could cross
    layer = LeakyReLU(alpha=alpha, dtype="float64")
    np.testing.assert_array_equal(layer.forward(x), np.where(x > 0, x, alpha * x))
    layer._cache = None
    assert_checked(check_layer(layer, x=x, seed=seed, max_entries=None), layer)


def test_leaky_relu_default_alpha_and_the_slope_at_zero():
    layer = LeakyReLU(dtype="float64")
    assert layer.alpha == 0.3  # Keras 2's default
    y = layer.forward(np.array([[-2.0, 0.0, 3.0]]))
    np.testing.assert_array_equal(y, [[-0.6, 0.0, 3.0]])
    np.testing.assert_array_equal(layer.backward(np.ones((1, 3))), [[0.3, 0.3, 1.0]])


# ---------------------------------------------------------------------------------------- BatchNormalization
@st.composite
def batchnorm_cases(draw):
    per_sample = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    axis = draw(st.sampled_from([-1, *range(1, len(per_sample) + 1)]))
    batch = draw(st.integers(1, 4))
    if batch * math.prod(per_sample) // per_sample[axis % (len(per_sample) + 1) - 1] < 2:
        batch = 2  # a feature seen once has zero variance: x_hat is 0 and the check would compare zeros only
    return per_sample, axis, batch


@GRADIENT_SETTINGS
@given(case=batchnorm_cases(), center=st.booleans(), scale=st.booleans(), seed=SEEDS)
def test_batchnorm_training_gradients_through_the_batch_statistics(case, center, scale, seed):
    per_sample, axis, batch = case
    rng = np.random.default_rng(seed)
    layer = BatchNormalization(axis=axis, center=center, scale=scale, dtype="float64")
    layer.build(per_sample)
    layer.set_weights([rng.uniform(0.5, 2.0, w.shape) for w in layer.get_weights()])
    x = 3 * rng.standard_normal((batch, *per_sample)) + 1
    state_before = [w.copy() for w in layer.get_weights()]
    report = check_layer(layer, x=x, training=True, seed=seed, max_entries=None)
    assert_checked(report, layer)
    assert {entry.name for entry in report.entries} >= {"x"}
    # The check ran dozens of training forwards, yet left the moving statistics as they were.
    for before, after in zip(state_before, layer.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


@GRADIENT_SETTINGS
@given(case=batchnorm_cases(), center=st.booleans(), scale=st.booleans(), seed=SEEDS)
def test_batchnorm_inference_gradients_through_the_moving_statistics(case, center, scale, seed):
    per_sample, axis, batch = case
    rng = np.random.default_rng(seed)
    layer = BatchNormalization(axis=axis, center=center, scale=scale, dtype="float64")
    layer.build(per_sample)
    layer.set_weights([rng.uniform(0.5, 2.0, w.shape) for w in layer.get_weights()])
    x = rng.standard_normal((batch, *per_sample))
    assert_checked(check_layer(layer, x=x, training=False, seed=seed, max_entries=None), layer)


def test_batchnorm_normalises_with_the_batch_and_updates_the_moving_statistics_like_keras():
    rng = np.random.default_rng(3)
    layer = BatchNormalization(momentum=0.9, dtype="float64")
    x = 5 + 2 * rng.standard_normal((6, 4, 3, 2))  # m = 6 * 4 * 3 = 72 values per channel
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0, atol=1e-12)
    variance = x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(y.var(axis=(0, 1, 2)), variance / (variance + 1e-3), rtol=1e-12)
    # Keras 2: moving = momentum * moving + (1 - momentum) * batch, the variance with Bessel's correction.
    np.testing.assert_allclose(layer.state["moving_mean"], 0.9 * 0 + 0.1 * x.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(layer.state["moving_variance"], 0.9 * 1 + 0.1 * variance * 72 / (72 - 1.001),
                               rtol=1e-12)


def test_batchnorm_moving_variance_is_bessel_corrected_like_keras_2_not_keras_3():
    layer = BatchNormalization(momentum=0.9, dtype="float64")
    x = np.array([[1.0], [3.0]])  # m = 2: batch mean 2, biased batch variance 1
    layer.forward(x, training=True)
    np.testing.assert_allclose(layer.state["moving_mean"], [0.2], rtol=1e-15)
    # Keras 2: 0.9 * 1 + 0.1 * 1 * 2 / (2 - 1.001) = 1.1002002...; Keras 3 (biased variance) would give 1.0
    np.testing.assert_allclose(layer.state["moving_variance"], [0.9 + 0.1 * 2 / 0.999], rtol=1e-15)
    assert layer.state["moving_variance"][0] == pytest.approx(1.1002002002, rel=1e-10)


def _frozen_batchnorm():
    layer = BatchNormalization(trainable=False, dtype="float64")
    layer.build((1,))
    layer.set_weights([np.array([2.0]), np.array([0.5]), np.array([10.0]), np.array([100.0])])
    return layer


def test_a_frozen_batchnorm_still_normalises_with_the_batch_like_keras_2():
    layer = _frozen_batchnorm()
    x = np.array([[1.0], [3.0]])
    y = layer.forward(x, training=True)
    # Keras 2: trainable=False does not change the training forward: batch mean 2, batch variance 1.
    np.testing.assert_allclose(y, [[2 * -1 / math.sqrt(1.001) + 0.5], [2 * 1 / math.sqrt(1.001) + 0.5]],
                               rtol=1e-15)
    # (Keras 3 would use the moving statistics: 2 * (x - 10) / sqrt(100.001) + 0.5.)
    # Its backward is the training one: dx removes the mean and the x_hat component of g = dy * gamma.
    dx = layer.backward(np.array([[1.0], [0.0]]))
    # g = [2, 0], x_hat = [-s, s] with s = 1 / sqrt(1.001): dx = (g - mean g - x_hat mean(g x_hat)) s
    #   = ([1, -1] - [s^2, -s^2]) s = [1, -1] (1 - s^2) s          (an inference backward would give g / 10)
    s = 1 / math.sqrt(1.001)
    np.testing.assert_allclose(dx, [[(1 - s * s) * s], [-(1 - s * s) * s]], rtol=1e-12)
    layer.forward(x, training=True)
    np.testing.assert_allclose(layer.backward(np.array([[1.0], [1.0]])), 0.0, atol=1e-15)
    # ... but its state is frozen: Keras 2 runs no update of a layer that is not trainable.
    assert layer.get_weights() == [2.0, 0.5, 10.0, 100.0]
    # Inference uses the moving statistics, as always.
    np.testing.assert_allclose(layer.forward(x), 2 * (x - 10) / math.sqrt(100.001) + 0.5, rtol=1e-15)
    # The gradient check agrees that the frozen layer's backward is the training one.
    assert_checked(check_layer(layer, x=np.array([[1.0], [3.0], [-0.5]]), training=True, max_entries=None), layer)


def test_a_frozen_batchnorm_in_fit_keeps_every_weight_and_trains_with_batch_statistics(float64):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4))
    y = np.eye(2)[(x[:, 0] > 0).astype(int)]
    model = Sequential([Dense(3, input_shape=(4,)), BatchNormalization(trainable=False),
                        Dense(2, activation="softmax")])
    model.compile(SGD(learning_rate=0.1), "categorical_crossentropy")
    bn = model.layers[1]
    bn.set_weights([np.array([1.5, 0.5, 2.0]), np.array([0.1, -0.2, 0.3]), np.array([3.0, -3.0, 1.0]),
                    np.array([9.0, 0.5, 4.0])])
    before = bn.get_weights()
    (kernel, bias), (kernel2, bias2) = model.layers[0].get_weights(), model.layers[2].get_weights()

    loss = model.train_on_batch(x, y)

    # the reported loss is that of the training forward, normalised with the batch's statistics (Keras 2)
    z = x @ kernel + bias
    normalised = before[0] * (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + 1e-3) + before[1]
    logits = normalised @ kernel2 + bias2
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log((p * y).sum(axis=1))), rel=1e-10)
    # gamma, beta and the moving statistics are all untouched; the layers around it trained
    for after, original in zip(bn.get_weights(), before, strict=True):
        np.testing.assert_array_equal(after, original)
    assert not np.array_equal(model.layers[0].get_weights()[0], kernel)


def test_batchnorm_inference_uses_the_moving_statistics_and_updates_nothing():
    layer = BatchNormalization(epsilon=0.01, dtype="float64")
    layer.build((3,))
    gamma, beta = np.array([1.0, 2.0, 0.5]), np.array([0.0, -1.0, 3.0])
    moving_mean, moving_variance = np.array([1.0, -2.0, 0.5]), np.array([4.0, 0.25, 1.0])
    layer.set_weights([gamma, beta, moving_mean, moving_variance])
    x = np.array([[3.0, -2.0, 0.0], [1.0, 0.0, 1.0]])
    expected = gamma * (x - moving_mean) / np.sqrt(moving_variance + 0.01) + beta
    np.testing.assert_allclose(layer.forward(x, training=False), expected, rtol=1e-12)
    np.testing.assert_array_equal(layer.state["moving_mean"], moving_mean)
    np.testing.assert_array_equal(layer.state["moving_variance"], moving_variance)
    # A single-sample batch at inference is fine (training would normalise every value to 0).
    assert np.isfinite(layer.forward(x[:1], training=False)).all()


def test_batchnorm_weights_in_keras_order_round_trip_through_set_weights_and_a_weights_file(tmp_path):
    layer = BatchNormalization(dtype="float64")
    layer.build((5, 5, 4))
    assert layer.weight_names == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert list(layer.params) == ["gamma", "beta"] and list(layer.state) == ["moving_mean", "moving_variance"]
    initial = layer.get_weights()
    for value, expected in zip(initial, (1.0, 0.0, 0.0, 1.0), strict=True):
        np.testing.assert_array_equal(value, np.full(4, expected))
    values = [np.arange(4.0) + k for k in range(4)]
    layer.set_weights(values)
    for got, expected in zip(layer.get_weights(), values, strict=True):
        np.testing.assert_array_equal(got, expected)
    assert [w.shape for w in BatchNormalization(center=False, scale=False, axis=1).get_weights()] == []

    model = Sequential([Conv2D(4, 3, input_shape=(6, 6, 1)), BatchNormalization(), Flatten(), Dense(2)])
    model.layers[1].set_weights([np.arange(4.0) + k for k in range(4)])
    saving.save_weights(model, tmp_path / "weights.npz")
    twin = Sequential([Conv2D(4, 3, input_shape=(6, 6, 1)), BatchNormalization(), Flatten(), Dense(2)])
    saving.load_weights(twin, tmp_path / "weights.npz")
    for got, expected in zip(twin.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_a_model_of_the_new_layers_round_trips_through_save_and_load_model(tmp_path):
    model = Sequential([Conv2D(4, 3, input_shape=(6, 6, 1)), BatchNormalization(momentum=0.8, epsilon=0.01),
                        LeakyReLU(0.1), AveragePooling2D(2, strides=1, padding="same"), GlobalAveragePooling2D(),
                        Dense(2, activation="softmax")])
    model.compile(SGD(learning_rate=0.1, momentum=0.9), "categorical_crossentropy")
    rng = np.random.default_rng(2)
    x = rng.random((8, 6, 6, 1), dtype=np.float32)
    y = np.eye(2, dtype=np.float32)[[0, 1] * 4]
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # moving statistics away from their initial 0 and 1
    model.save(tmp_path / "model.tnz")
    loaded = load_model(tmp_path / "model.tnz")
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]
    bn, leaky, pool = loaded.layers[1], loaded.layers[2], loaded.layers[3]
    assert (bn.momentum, bn.epsilon, leaky.alpha, pool.strides, pool.padding) == (0.8, 0.01, 0.1, (1, 1), "same")
    for got, expected in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)
    assert not np.allclose(bn.state["moving_variance"], 1)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_batchnorm_in_a_model_trains_its_weights_and_predicts_with_its_moving_statistics():
    rng = np.random.default_rng(0)
    model = Sequential([Dense(6, input_shape=(4,)), BatchNormalization(momentum=0.5), Activation("relu"),
                        Dense(3, activation="softmax")])
    model.compile(SGD(learning_rate=0.1), "categorical_crossentropy")
    bn = model.layers[1]
    x = rng.standard_normal((32, 4)).astype(np.float32) * 3 + 2
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 32)]
    gamma_before = bn.params["gamma"].copy()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert not np.array_equal(bn.params["gamma"], gamma_before)  # trainable: the optimizer moved it
    assert not np.allclose(bn.state["moving_mean"], 0)  # the moving statistics followed the batches
    moving = [w.copy() for w in bn.state.values()]
    predicted = model.predict(x)
    for before, after in zip(moving, bn.state.values(), strict=True):
        np.testing.assert_array_equal(before, after)  # inference updates nothing
    # predict normalises with the moving statistics, not with the statistics of the batch it sees.
    z = x @ model.layers[0].params["kernel"] + model.layers[0].params["bias"]
    normalised = (z - bn.state["moving_mean"]) / np.sqrt(bn.state["moving_variance"] + bn.epsilon)
    hidden = np.maximum(bn.params["gamma"] * normalised + bn.params["beta"], 0)
    logits = hidden @ model.layers[3].params["kernel"] + model.layers[3].params["bias"]
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(predicted, expected / expected.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-6)
    # Keras's summary counts the moving statistics as non-trainable parameters.
    lines = []
    model.summary(print_fn=lines.append)
    assert "Non-trainable params: 12" in lines


def test_model_with_the_new_layers_passes_check_model(float64):
    rng = np.random.default_rng(5)
    model = Sequential([Conv2D(3, 3, padding="same", input_shape=(6, 6, 2)), BatchNormalization(),
                        LeakyReLU(0.1), AveragePooling2D(2, padding="same"), GlobalAveragePooling2D(),
                        Dense(3, activation="softmax")])
    model.compile(SGD(), "categorical_crossentropy")
    x = rng.standard_normal((4, 6, 6, 2))
    y = np.eye(3)[[0, 1, 2, 1]]
    report = check_model(model, x, y, seed=1)
    assert report.passed, str(report)
    assert len(report.entries) == 6  # conv kernel/bias, gamma, beta, dense kernel/bias


@pytest.mark.parametrize("make, message", [
    (lambda: AveragePooling2D(0), "pool_size must be positive"),
    (lambda: AveragePooling2D(2, padding="full"), "padding must be 'valid' or 'same'"),
    (lambda: AveragePooling2D(2, data_format="channels_first"), "channels_last"),
    (lambda: LeakyReLU(alpha=-0.1), "alpha must be a finite number >= 0"),
    (lambda: BatchNormalization(momentum=1.5), "momentum must be in [0, 1]"),
    (lambda: BatchNormalization(epsilon=0), "epsilon must be > 0"),
])
def test_bad_arguments_are_refused_with_the_argument_named(make, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        make()


def test_bad_shapes_are_refused_with_the_layer_named():
    with pytest.raises(ValueError, match="axis 0 is not a feature axis"):
        BatchNormalization(axis=0).build((3,))
    with pytest.raises(ValueError, match="axis 3 is not a feature axis"):
        BatchNormalization(axis=3).build((3, 4))
    with pytest.raises(ValueError, match="global_average_pooling2d_1: expects inputs of shape"):
        GlobalAveragePooling2D().build((3, 4))
    with pytest.raises(ValueError, match="larger than the input"):
        AveragePooling2D(3).build((2, 2, 1))
    with pytest.raises(RuntimeError, match="backward called without a forward"):
        LeakyReLU().backward(np.ones((1, 2)))


# --------------------------------------------------------------------- the checker on every built-in layer
# One small instance per layer class exported by tinynet.layers, with an input that keeps clear of its kinks.
def _spread(shape, seed=0):
    """Distinct values at least 0.01 apart and at least 0.005 from 0: no max-pool ties, no ReLU kink in reach."""
    size = math.prod(shape)
    values = (np.random.default_rng(seed).permutation(size) - size / 2 + 0.5) * 0.01
    return values.reshape(shape)


BUILTIN_CASES = {
    "Activation": (lambda: Activation("tanh"), (3, 4)),
    "AveragePooling2D": (lambda: AveragePooling2D(2, strides=1, padding="same"), (4, 5, 2)),
    "BatchNormalization": (lambda: BatchNormalization(), (3, 3, 2)),
    "Conv2D": (lambda: Conv2D(3, 2, strides=2, padding="same", activation="sigmoid"), (5, 4, 2)),
    "Dense": (lambda: Dense(3, activation="softmax"), (4,)),
    "Dropout": (lambda: Dropout(0.4, seed=3), (3, 4)),
    "ELU": (lambda: ELU(0.7), (3, 4)),
    "Flatten": (lambda: Flatten(), (2, 3, 2)),
    "GlobalAveragePooling2D": (lambda: GlobalAveragePooling2D(), (3, 2, 2)),
    "LeakyReLU": (lambda: LeakyReLU(), (3, 4)),
    "MaxPooling2D": (lambda: MaxPooling2D(2, padding="same"), (5, 5, 2)),
    "ReLU": (lambda: ReLU(max_value=1.0, negative_slope=0.1), (3, 4)),
    "Reshape": (lambda: Reshape((-1, 2)), (3, 2, 2)),
    "ZeroPadding2D": (lambda: ZeroPadding2D(((1, 0), (2, 1))), (3, 2, 2)),
}


def test_every_builtin_layer_has_a_checker_case():
    exported = {name for name in layers_module.__all__
                if isinstance(getattr(layers_module, name), type) and getattr(layers_module, name) is not Layer}
    classes = {getattr(layers_module, name).__name__ for name in exported}
    assert classes == set(BUILTIN_CASES), "a built-in layer without a check_layer case (or a stale case)"


@pytest.mark.parametrize("class_name", sorted(BUILTIN_CASES))
@pytest.mark.parametrize("precision", ["float32 layer", "float64 layer"])
def test_check_layer_passes_on_every_builtin_layer(class_name, precision, float64):
    make, shape = BUILTIN_CASES[class_name]
    if precision == "float32 layer":
        from tinynet import backend

        backend.set_floatx("float32")  # checked itself, run in float64 on copies of its arrays
    layer = make()
    assert type(layer).__name__ == class_name
    report = check_layer(layer, x=_spread((3, *shape)), max_entries=None)
    assert report.passed, str(report)
    assert all(entry.checked > 0 for entry in report.entries)


class _DenseWithAPlantedBug(Dense):
    """Dense whose kernel gradient is wrong in one entry and whose dx forgets the last sample."""

    def _backward_from_z(self, dz, x):
        dx = super()._backward_from_z(dz, x)
        self.grads["kernel"][1, 0] *= 2.0
        dx[-1] = 0.0
        return dx


def test_check_layer_points_at_the_wrong_entries_of_a_planted_bug(float64):
    layer = _DenseWithAPlantedBug(2, name="buggy")
    layer.build((3,))
    report = check_layer(layer, x=_spread((4, 3)) * 10, max_entries=None)
    assert not report.passed and not bool(report)
    by_name = {entry.name: entry for entry in report.entries}
    assert [index for index, _, _ in by_name["buggy.kernel"].failures] == [(1, 0)]
    assert [index for index, _, _ in by_name["x"].failures] == [(3, 0), (3, 1), (3, 2)]
    assert by_name["buggy.bias"].passed
    text = str(report)
    assert "FAILED" in text and "wrong at (1, 0)" in text and "wrong at (3, 2)" in text
    # Wrong arrays are listed first and marked with an X, the correct one after them.
    lines = text.splitlines()
    assert lines[2].startswith("X ") and lines[-1].lstrip().startswith("buggy.bias")
    analytic, numeric = by_name["buggy.kernel"].failures[0][1:]
    assert analytic == pytest.approx(2 * numeric, rel=1e-6)
