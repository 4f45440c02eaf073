"""Every layer's hand-written backward pass against central differences (float64, tinynet.learn.gradcheck).

Hypothesis draws the shapes, batch sizes, window sizes, strides, paddings and options; the *values* come from a
NumPy Generator seeded by a drawn integer, so they are smooth Gaussian-like numbers, never the ties and exact
zeros raw hypothesis floats love. Inputs are kept away from the places where the function has no derivative:
ReLU's kink (and the threshold / max_value corners of the ReLU layer) and ties inside a max-pooling window.
A kink closer than ``MARGIN`` to an input makes hypothesis discard that example (``assume``): the finite
difference step (1e-6) could cross it.

Each check covers ``dx`` and every parameter (the report's entries are asserted to be exactly those arrays).
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tinynet import activations, backend
from tinynet.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D, ReLU
from tinynet.learn.gradcheck import GradcheckReport, check_layer, check_model
from tinynet.models import Sequential, passes
from tinynet.optimizers import SGD

GRADIENT_SETTINGS = settings(max_examples=20)
MARGIN = 1e-3
SEEDS = st.integers(0, 2**32 - 1)
#: Where each activation with a kink has one (no derivative there): relu and selu (slopes scale * alpha and scale)
#: at 0, hard_sigmoid where it starts and stops being flat (0.2 z + 0.5 = 0 or 1).
KINKS = {"relu": [0.0], "selu": [0.0], "hard_sigmoid": [-2.5, 2.5]}


def assert_checked(report: GradcheckReport, layer, has_input: bool = True) -> None:
    """The check passed, and it covered dx and every parameter of the layer."""
    assert report.passed, str(report)
    expected = ({"x"} if has_input else set()) | {f"{layer.name}.{name}" for name in layer.params}
    assert {entry.name for entry in report.entries} == expected
    assert all(entry.checked > 0 for entry in report.entries)


def tame(activation: str, weight: np.ndarray) -> float:
    """A weight scale keeping exp(z) moderate: the finite differences' rounding grows with the outputs' size
    (``eps * sum|f| / h``), and exp(10) = 22026 would already break the absolute tolerance of small entries."""
    return 1 / np.sqrt(weight.size) if activation == "exponential" else 1.0


def distinct_values(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values spaced at least 0.01 apart in random order, so no max-pooling window holds a near-tie."""
    size = int(np.prod(shape))
    return ((rng.permutation(size) - size / 2) * 0.01 + rng.uniform(0, 0.001)).reshape(shape)


def away_from(x: np.ndarray, kinks: list[float], margin: float = 0.05) -> np.ndarray:
    """Move every value closer than ``margin`` to a kink out to ``kink +/- margin``."""
    x = x.copy()
    for kink in kinks:
        near = np.abs(x - kink) < margin
        x[near] = kink + np.where(x[near] >= kink, margin, -margin)
    return x


def preactivation(layer, x: np.ndarray) -> np.ndarray:
    """``z`` of a Conv2D/Dense (before its activation), from a linear twin sharing the weights."""
    twin = type(layer).from_config(layer.get_config() | {"activation": None, "name": layer.name + "_twin"})
    twin.build(layer.input_shape)
    twin.set_weights(layer.get_weights())
    return twin.forward(x)


@st.composite
def window_configs(draw, max_window=4):
    padding = draw(st.sampled_from(["valid", "same"]))
    window = (draw(st.integers(1, max_window)), draw(st.integers(1, max_window)))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    low = window if padding == "valid" else (1, 1)
    height = draw(st.integers(low[0], low[0] + 5))
    width = draw(st.integers(low[1], low[1] + 5))
    return window, strides, padding, height, width


# ------------------------------------------------------------------------------------------------ Conv2D
@GRADIENT_SETTINGS
@given(config=window_configs(), channels=st.integers(1, 3), filters=st.integers(1, 4), batch=st.integers(1, 3),
       use_bias=st.booleans(), activation=st.sampled_from(activations.names()), seed=SEEDS)
def test_conv2d_gradients(config, channels, filters, batch, use_bias, activation, seed):
    kernel_size, strides, padding, height, width = config
    rng = np.random.default_rng(seed)
    layer = Conv2D(filters, kernel_size, strides=strides, padding=padding, activation=activation,
                   use_bias=use_bias, dtype="float64")
    layer.build((height, width, channels))
    layer.set_weights([rng.uniform(-1, 1, w.shape) * tame(activation, w) for w in layer.get_weights()])
    x = rng.standard_normal((batch, height, width, channels))
    if activation in KINKS:
        assume(all(np.abs(preactivation(layer, x) - kink).min() > MARGIN for kink in KINKS[activation]))
    report = check_layer(layer, x=x, seed=seed)
    assert_checked(report, layer)


def test_conv2d_gradients_on_the_tutorial_geometry(float64):
    # The tutorial's second convolution (3x3, 64 -> 32) on a small batch, every entry checked.
    layer = Conv2D(4, (3, 3), activation="tanh")
    report = check_layer(layer, (7, 6, 5), batch_size=2, max_entries=None)
    assert_checked(report, layer)
    assert {entry.name: entry.checked for entry in report.entries} == {
        "x": 2 * 7 * 6 * 5, "conv2d_1.kernel": 3 * 3 * 5 * 4, "conv2d_1.bias": 4}


# ------------------------------------------------------------------------------------------ MaxPooling2D
@GRADIENT_SETTINGS
@given(config=window_configs(), channels=st.integers(1, 3), batch=st.integers(1, 3), seed=SEEDS,
       overlapping=st.booleans())
def test_maxpool_gradients(config, channels, batch, seed, overlapping):
    pool, strides, padding, height, width = config
    if overlapping:  # stride smaller than the pool: windows share pixels and winners
        pool = (max(pool[0], 2), max(pool[1], 2))
        strides = (pool[0] - 1, 1)
        height, width = max(height, pool[0]), max(width, pool[1])
    layer = MaxPooling2D(pool, strides=strides, padding=padding, dtype="float64")
    x = distinct_values(np.random.default_rng(seed), (batch, height, width, channels))
    report = check_layer(layer, x=x, seed=seed, max_entries=None)
    assert_checked(report, layer)


# ------------------------------------------------------------------------------------------------- Dense
@GRADIENT_SETTINGS
@given(features=st.integers(1, 8), units=st.integers(1, 6), batch=st.integers(1, 5),
       extra_axis=st.sampled_from([(), (3,)]), use_bias=st.booleans(),
       activation=st.sampled_from(activations.names()), seed=SEEDS)
def test_dense_gradients(features, units, batch, extra_axis, use_bias, activation, seed):
    rng = np.random.default_rng(seed)
    layer = Dense(units, activation=activation, use_bias=use_bias, dtype="float64")
    layer.build((*extra_axis, features))
    layer.set_weights([rng.uniform(-1, 1, w.shape) * tame(activation, w) for w in layer.get_weights()])
    x = rng.standard_normal((batch, *extra_axis, features))
    if activation in KINKS:
        assume(all(np.abs(preactivation(layer, x) - kink).min() > MARGIN for kink in KINKS[activation]))
    assert_checked(check_layer(layer, x=x, seed=seed), layer)


# ----------------------------------------------------------------------------------- activation layers
@GRADIENT_SETTINGS
@given(name=st.sampled_from(activations.names()), shape=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       batch=st.integers(1, 4), scale=st.sampled_from([0.5, 1.0, 3.0]), seed=SEEDS)
def test_activation_gradients(name, shape, batch, scale, seed):
    x = away_from(scale * np.random.default_rng(seed).standard_normal((batch, *shape)), KINKS.get(name, [0.0]))
    if name == "exponential":
        x = np.minimum(x, 3.0)  # see tame()
    layer = Activation(name, dtype="float64")
    assert_checked(check_layer(layer, x=x, seed=seed), layer)


@GRADIENT_SETTINGS
@given(max_value=st.sampled_from([None, 0.8, 2.5]), negative_slope=st.sampled_from([0.0, 0.1, 0.5]),
       threshold=st.sampled_from([0.0, 0.3, -0.4]), shape=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       batch=st.integers(1, 3), seed=SEEDS)
def test_relu_layer_gradients(max_value, negative_slope, threshold, shape, batch, seed):
    # with max_value, Keras clips at 0 too, a kink when the threshold is negative
    kinks = [threshold] if max_value is None else [threshold, max_value, 0.0]
    x = away_from(2 * np.random.default_rng(seed).standard_normal((batch, *shape)), kinks)
    layer = ReLU(max_value=max_value, negative_slope=negative_slope, threshold=threshold, dtype="float64")
    assert_checked(check_layer(layer, x=x, seed=seed), layer)


# ----------------------------------------------------------------------------------------------- Dropout
@GRADIENT_SETTINGS
@given(rate=st.sampled_from([0.1, 0.25, 0.5, 0.75]), shape=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       batch=st.integers(1, 4), training=st.booleans(), seed=SEEDS)
def test_dropout_gradients_with_the_mask_frozen(rate, shape, batch, training, seed):
    layer = Dropout(rate, seed=seed, dtype="float64")
    x = np.random.default_rng(seed).standard_normal((batch, *shape))
    report = check_layer(layer, x=x, training=training, seed=seed, max_entries=None)
    assert_checked(report, layer)
    # The check really ran through a mask in training, and through the identity at inference.
    y = layer.forward(x, training=training)
    if training:
        assert set(np.unique(np.round(y[y != 0] / x[y != 0], 9))) <= {round(1 / (1 - rate), 9)}
    else:
        np.testing.assert_array_equal(y, x)


# ----------------------------------------------------------------------------------------------- Flatten
@GRADIENT_SETTINGS
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), batch=st.integers(1, 4), seed=SEEDS)
def test_flatten_gradients(shape, batch, seed):
    layer = Flatten(dtype="float64")
    x = np.random.default_rng(seed).standard_normal((batch, *shape))
    assert_checked(check_layer(layer, x=x, seed=seed, max_entries=None), layer)


# ---------------------------------------------------------------------------------------- whole models
def _min_window_gap(z: np.ndarray, pool: int) -> float:
    """Smallest gap between the largest and second-largest value of any 'valid' pool x pool window."""
    batch, height, width, channels = z.shape
    gaps = []
    for i in range(height // pool):
        for j in range(width // pool):
            window = z[:, i * pool:(i + 1) * pool, j * pool:(j + 1) * pool, :].reshape(batch, -1, channels)
            top_two = np.sort(window, axis=1)[:, -2:, :]
            gaps.append((top_two[:, 1] - top_two[:, 0]).min())
    return float(min(gaps))


HEADS = ["softmax_categorical", "softmax_sparse", "activation_softmax_categorical", "sigmoid_binary",
         "linear_mse"]


@settings(max_examples=20)
@given(height=st.integers(5, 8), width=st.integers(5, 8), channels=st.integers(1, 2), filters=st.integers(1, 3),
       kernel=st.integers(2, 3), padding=st.sampled_from(["valid", "same"]), classes=st.integers(2, 4),
       batch=st.integers(1, 4), dropout=st.booleans(), head=st.sampled_from(HEADS), seed=SEEDS)
def test_conv_pool_relu_flatten_dense_model_gradients(height, width, channels, filters, kernel, padding, classes,
                                                      batch, dropout, head, seed):
    backend.set_floatx("float64")  # restored to float32 by the autouse fixture
    backend.set_random_seed(seed % 2**31)
    rng = np.random.default_rng(seed)
    model = Sequential()
    model.add(Conv2D(filters, kernel, padding=padding, input_shape=(height, width, channels)))
    model.add(MaxPooling2D(2))
    model.add(Activation("relu"))
    if dropout:
        model.add(Dropout(0.3))
    model.add(Flatten())
    if head == "activation_softmax_categorical":
        model.add(Dense(classes))
        model.add(Activation("softmax"))
    else:
        output_activation = {"softmax_categorical": "softmax", "softmax_sparse": "softmax",
                             "sigmoid_binary": "sigmoid", "linear_mse": None}[head]
        model.add(Dense(classes, activation=output_activation))
    loss = {"softmax_categorical": "categorical_crossentropy", "softmax_sparse": "sparse_categorical_crossentropy",
            "activation_softmax_categorical": "categorical_crossentropy", "sigmoid_binary": "binary_crossentropy",
            "linear_mse": "mse"}[head]
    model.compile(SGD(), loss)
    conv = model.layers[0]
    conv.set_weights([rng.uniform(-1, 1, w.shape) for w in conv.get_weights()])

    x = rng.standard_normal((batch, height, width, channels))
    labels = rng.integers(0, classes, batch)
    y = {"softmax_sparse": labels, "linear_mse": rng.standard_normal((batch, classes)),
         "sigmoid_binary": rng.integers(0, 2, (batch, classes)).astype(float)}.get(head, np.eye(classes)[labels])

    # Keep the kinks out of reach of the finite-difference step: no near-ties in a pooling window, no pooled
    # value near ReLU's 0.
    z = conv.forward(x)
    assume(_min_window_gap(z, 2) > MARGIN)
    assume(np.abs(model.layers[1].forward(z)).min() > MARGIN)
    # ... and no probability near 0 or 1: in the clip range of the cross-entropies the fused gradient deliberately
    # departs from the (flat) clipped loss, and close to it log(1 - p) amplifies rounding enough to spoil the
    # finite differences. Run with the dropout masks check_model will use, then rewind them.
    generators = [layer.generator for layer in model.layers if isinstance(layer, Dropout)]
    states = [generator.bit_generator.state for generator in generators]
    outputs = passes.forward(model, x, training=True)
    for generator, state in zip(generators, states, strict=True):
        generator.bit_generator.state = state
    passes.clear_caches(model)
    if head != "linear_mse":
        assume(outputs.min() > 1e-3 and outputs.max() < 1 - 1e-3)

    report = check_model(model, x, y, seed=seed, step=1e-5)
    assert report.passed, str(report)
    assert {entry.name for entry in report.entries} == {
        f"{layer.name}.{name}" for layer in model.layers for name in layer.params}
    # The model's own training step used the fused gradient where it applies.
    assert passes.uses_fused_softmax(model) == (head in ("softmax_categorical", "softmax_sparse",
                                             "activation_softmax_categorical"))
