"""Layer forward passes against plain-loop references, shapes, names, weights, dropout statistics and errors.

Gradient checks pass for a layer whose forward computes the wrong function consistently (a transposed or
flipped kernel, the 'same' padding on the wrong side), so the forward values are checked here, against slow
loops written from the Keras definitions and against small examples worked by hand.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet import activations
from tinynet.layers import (
    Activation,
    Conv2D,
    Convolution2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPool2D,
    MaxPooling2D,
    ReLU,
)

LAYER_SETTINGS = settings(max_examples=20)


# ------------------------------------------------------------------------------------------- references
def _same_padding(size: int, window: int, stride: int) -> tuple[int, int, int]:
    """``(out, pad_before, pad_after)`` of TensorFlow's 'same': smaller half before, extra pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return out, total // 2, total - total // 2


def _padded(x: np.ndarray, window: tuple[int, int], strides: tuple[int, int], padding: str, fill: float):
    _, height, width, _ = x.shape
    if padding == "valid":
        out_h = (height - window[0]) // strides[0] + 1
        out_w = (width - window[1]) // strides[1] + 1
        return x, out_h, out_w
    out_h, top, bottom = _same_padding(height, window[0], strides[0])
    out_w, left, right = _same_padding(width, window[1], strides[1])
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill), out_h, out_w


def conv2d_reference(x, kernel, bias, strides, padding):
    """``y[n,i,j,f] = b[f] + sum_{di,dj,c} xpad[n, i*sh+di, j*sw+dj, c] * K[di,dj,c,f]``, one window at a time."""
    kh, kw, _, filters = kernel.shape
    xp, out_h, out_w = _padded(x, (kh, kw), strides, padding, 0.0)
    y = np.zeros((x.shape[0], out_h, out_w, filters))
    for i in range(out_h):
        for j in range(out_w):
            window = xp[:, i * strides[0]:i * strides[0] + kh, j * strides[1]:j * strides[1] + kw, :]
            for f in range(filters):
                y[:, i, j, f] = np.sum(window * kernel[:, :, :, f], axis=(1, 2, 3))
    return y if bias is None else y + bias


def maxpool_reference(x, pool, strides, padding):
    xp, out_h, out_w = _padded(x, pool, strides, padding, -np.inf)
    y = np.empty((x.shape[0], out_h, out_w, x.shape[3]))
    for i in range(out_h):
        for j in range(out_w):
            window = xp[:, i * strides[0]:i * strides[0] + pool[0], j * strides[1]:j * strides[1] + pool[1], :]
            y[:, i, j, :] = window.max(axis=(1, 2))
    return y


@st.composite
def window_configs(draw, max_window=4):
    """A window size, strides, padding and an input size the window fits in ('valid') or any ('same')."""
    padding = draw(st.sampled_from(["valid", "same"]))
    window = (draw(st.integers(1, max_window)), draw(st.integers(1, max_window)))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    low = (window[0], window[1]) if padding == "valid" else (1, 1)
    height = draw(st.integers(low[0], low[0] + 6))
    width = draw(st.integers(low[1], low[1] + 6))
    return window, strides, padding, height, width


# ------------------------------------------------------------------------------------------------ Conv2D
@LAYER_SETTINGS
@given(config=window_configs(), channels=st.integers(1, 3), filters=st.integers(1, 4), batch=st.integers(1, 3),
       use_bias=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_conv2d_forward_matches_loop_reference(config, channels, filters, batch, use_bias, seed):
    window, strides, padding, height, width = config
    rng = np.random.default_rng(seed)
    layer = Conv2D(filters, window, strides=strides, padding=padding, use_bias=use_bias, dtype="float64")
    layer.build((height, width, channels))
    if use_bias:
        layer.params["bias"][...] = rng.standard_normal(filters)
    x = rng.standard_normal((batch, height, width, channels))
    y = layer.forward(x)
    expected = conv2d_reference(x, layer.params["kernel"], layer.params["bias"] if use_bias else None,
                                strides, padding)
    assert y.shape == (batch, *layer.output_shape) == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_conv2d_hand_computed_example_catches_transposed_or_flipped_kernel():
    # 3x3 single-channel image, 2x2 kernel with four distinct taps: cross-correlation, no flip, no transpose.
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)          # [[1,2,3],[4,5,6],[7,8,9]]
    layer = Conv2D(1, (2, 2), dtype="float64")
    layer.build((3, 3, 1))
    layer.set_weights([np.array([[1.0, 10.0], [100.0, 1000.0]]).reshape(2, 2, 1, 1), np.array([0.5])])
    y = layer.forward(x)[0, :, :, 0]
    # top-left window [[1,2],[4,5]] -> 1 + 20 + 400 + 5000 + 0.5
    np.testing.assert_array_equal(y, [[5421.5, 6532.5], [8754.5, 9865.5]])


def test_conv2d_same_padding_puts_the_extra_pixel_bottom_right():
    # Kernel 2 over 3 pixels, stride 1: total padding 1, all of it after (bottom/right), as TensorFlow does.
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    layer = Conv2D(1, (2, 2), padding="same", use_bias=False, dtype="float64")
    layer.build((3, 3, 1))
    layer.set_weights([np.array([[1.0, 10.0], [100.0, 1000.0]]).reshape(2, 2, 1, 1)])
    y = layer.forward(x)[0, :, :, 0]
    assert layer.output_shape == (3, 3, 1)
    # bottom-right window holds [[9, 0], [0, 0]]; bottom-left [[7, 8], [0, 0]]
    assert y[2, 2] == 9.0
    assert y[2, 0] == 7.0 + 80.0
    assert y[0, 0] == 1.0 + 20.0 + 400.0 + 5000.0


def test_conv2d_channels_map_to_kernel_third_axis():
    # Two input channels, one filter reading only channel 1: the kernel layout is (kh, kw, in, out).
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 4, 2))
    layer = Conv2D(3, 1, use_bias=False, dtype="float64")
    layer.build((4, 4, 2))
    kernel = np.zeros((1, 1, 2, 3))
    kernel[0, 0, 1, 2] = 1.0
    layer.set_weights([kernel])
    y = layer.forward(x)
    np.testing.assert_array_equal(y[..., 2], x[..., 1])
    np.testing.assert_array_equal(y[..., :2], 0.0)


@pytest.mark.parametrize("name", activations.names())
def test_conv2d_and_dense_apply_their_activation(name):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 5, 5, 2))
    linear = Conv2D(4, 3, dtype="float64")
    activated = Conv2D(4, 3, activation=name, dtype="float64")
    linear.build((5, 5, 2))
    activated.build((5, 5, 2))
    activated.set_weights(linear.get_weights())
    np.testing.assert_allclose(activated.forward(x), activations.get(name).forward(linear.forward(x)), rtol=1e-12)

    features = rng.standard_normal((4, 6))
    dense_linear, dense_activated = Dense(3, dtype="float64"), Dense(3, activation=name, dtype="float64")
    dense_linear.build((6,))
    dense_activated.build((6,))
    dense_activated.set_weights(dense_linear.get_weights())
    np.testing.assert_allclose(dense_activated.forward(features),
                               activations.get(name).forward(dense_linear.forward(features)), rtol=1e-12)


def test_conv2d_output_shapes_follow_keras():
    cases = [
        ((28, 28, 1), dict(kernel_size=3), (26, 26, 8)),
        ((28, 28, 1), dict(kernel_size=3, padding="same"), (28, 28, 8)),
        ((28, 28, 1), dict(kernel_size=3, strides=2), (13, 13, 8)),
        ((28, 28, 1), dict(kernel_size=3, strides=2, padding="same"), (14, 14, 8)),
        ((7, 5, 3), dict(kernel_size=(3, 2), strides=(2, 3)), (3, 2, 8)),
        ((7, 5, 3), dict(kernel_size=(3, 2), strides=(2, 3), padding="same"), (4, 2, 8)),
    ]
    for input_shape, kwargs, expected in cases:
        layer = Conv2D(8, **kwargs)
        layer.build(input_shape)
        assert layer.output_shape == expected, (input_shape, kwargs)
        assert layer.params["kernel"].shape == (*layer.kernel_size, input_shape[-1], 8)


# ------------------------------------------------------------------------------------------ MaxPooling2D
@LAYER_SETTINGS
@given(config=window_configs(), channels=st.integers(1, 3), batch=st.integers(1, 3),
       seed=st.integers(0, 2**32 - 1))
def test_maxpool_forward_matches_loop_reference(config, channels, batch, seed):
    pool, strides, padding, height, width = config
    rng = np.random.default_rng(seed)
    layer = MaxPooling2D(pool, strides=strides, padding=padding, dtype="float64")
    x = rng.standard_normal((batch, height, width, channels)) - 5.0  # all negative: padding must not win
    y = layer.forward(x)
    expected = maxpool_reference(x, pool, strides, padding)
    assert y.shape == (batch, *layer.output_shape) == expected.shape
    np.testing.assert_array_equal(y, expected)


def test_maxpool_defaults_and_hand_example():
    layer = MaxPooling2D()
    assert layer.pool_size == (2, 2) and layer.strides == (2, 2) and layer.padding == "valid"
    assert MaxPooling2D(3).strides == (3, 3)
    x = np.array([[1, 5, 2, 0, 9], [3, 4, 8, 7, 9], [0, 0, 1, 1, 9]], dtype=np.float32).reshape(1, 3, 5, 1)
    y = layer.forward(x)
    assert y.shape == (1, 1, 2, 1)  # the odd row and column are dropped ('valid')
    np.testing.assert_array_equal(y[0, :, :, 0], [[5, 8]])
    same = MaxPooling2D(padding="same").forward(x)
    np.testing.assert_array_equal(same[0, :, :, 0], [[5, 8, 9], [0, 1, 9]])
    # The gradient flows to the winner only, and sums where overlapping windows share it.
    overlapping = MaxPooling2D(pool_size=2, strides=1)
    z = np.array([[0, 1, 0], [0, 9, 0], [0, 0, 0]], dtype=np.float32).reshape(1, 3, 3, 1)
    assert np.all(overlapping.forward(z) == 9)
    dx = overlapping.backward(np.ones((1, 2, 2, 1), dtype=np.float32))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 0, 0], [0, 4, 0], [0, 0, 0]])


# ------------------------------------------------------------------------------------------------- Dense
def test_dense_forward_and_layout():
    rng = np.random.default_rng(2)
    layer = Dense(3, dtype="float64")
    layer.build((5,))
    kernel, bias = rng.standard_normal((5, 3)), rng.standard_normal(3)
    layer.set_weights([kernel, bias])
    x = rng.standard_normal((4, 5))
    np.testing.assert_allclose(layer.forward(x), x @ kernel + bias, rtol=1e-12)
    assert [w.shape for w in layer.get_weights()] == [(5, 3), (3,)]
    assert layer.output_shape == (3,) and layer.count_params() == 18
    assert Dense(2, use_bias=False, input_dim=4)._declared_input_shape == (4,)


# ----------------------------------------------------------------------------------- activation layers
def test_activation_values():
    z = np.array([[-3.0, -0.5, 0.0, 0.5, 3.0]])
    expected = {
        "linear": z,
        "relu": np.array([[0, 0, 0, 0.5, 3.0]]),
        "sigmoid": 1 / (1 + np.exp(-z)),
        "tanh": np.tanh(z),
        "softmax": np.exp(z) / np.exp(z).sum(),
        # Keras 2.2.4's keras/activations.py, written out element by element with the math module.
        "elu": np.array([[v if v > 0 else math.exp(v) - 1 for v in z[0]]]),
        "selu": np.array([[1.0507009873554804934193349852946
                           * (v if v > 0 else 1.6732632423543772848170429916717 * (math.exp(v) - 1)) for v in z[0]]]),
        "softplus": np.array([[math.log(math.exp(v) + 1) for v in z[0]]]),
        "softsign": np.array([[v / (abs(v) + 1) for v in z[0]]]),
        "hard_sigmoid": np.array([[min(max(0.2 * v + 0.5, 0.0), 1.0) for v in z[0]]]),
        "exponential": np.array([[math.exp(v) for v in z[0]]]),
    }
    assert sorted(expected) == activations.names()
    for name, values in expected.items():
        np.testing.assert_allclose(Activation(name, dtype="float64").forward(z), values, rtol=1e-12, err_msg=name)


def test_softmax_is_stable_for_large_logits_and_sums_to_one():
    z = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0]])
    p = Activation("softmax", dtype="float64").forward(z)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[0], np.exp([-1.0, 0.0, -2.0]) / np.exp([-1.0, 0.0, -2.0]).sum())
    np.testing.assert_allclose(p[1], 1 / 3)
    sig = Activation("sigmoid", dtype="float64").forward(np.array([[-800.0, 800.0]]))
    np.testing.assert_array_equal(sig, [[0.0, 1.0]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_keeps_relative_precision_for_small_outputs(dtype):
    z = np.array([[-30.0, -20.0, -15.0, -10.0, -1.0, 0.0, 2.0, 30.0]], dtype=dtype)
    exact = 1 / (1 + np.exp(-z.astype(np.float64)))  # exp(30) is exact enough in float64 for this
    got = Activation("sigmoid", dtype=dtype).forward(z)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, exact, rtol=1e-6 if dtype == "float32" else 1e-14)


@pytest.mark.parametrize(("options", "expected"), [
    ({}, [0, 0, 0, 0.5, 2, 7]),
    ({"max_value": 1.0}, [0, 0, 0, 0.5, 1, 1]),
    ({"negative_slope": 0.1}, [-0.3, -0.05, 0, 0.5, 2, 7]),
    ({"threshold": 1.0}, [0, 0, 0, 0, 2, 7]),
    ({"threshold": 1.0, "negative_slope": 0.5}, [-2, -0.75, -0.5, -0.25, 2, 7]),
    ({"max_value": 6.0, "negative_slope": 0.1}, [-0.3, -0.05, 0, 0.5, 2, 6]),
])
def test_relu_options_match_keras_formula(options, expected):
    x = np.array([[-3.0, -0.5, 0.0, 0.5, 2.0, 7.0]])
    np.testing.assert_allclose(ReLU(**options, dtype="float64").forward(x)[0], expected, rtol=1e-12)


def keras_relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras 2.2.4's ``K.relu`` (tensorflow_backend.py), which its ``ReLU`` layer calls, transcribed to NumPy
    (Keras 3's ``activations.relu`` is the same composition)."""
    if negative_slope != 0:
        negative_part = np.maximum(-x + threshold, 0)
    y = x * (x > threshold) if threshold != 0 else np.maximum(x, 0)
    if max_value is not None:
        y = np.clip(y, 0, max_value)
    if negative_slope != 0:
        y = y - negative_slope * negative_part
    return y


def keras_relu_pieces(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """The piecewise form of Keras 2's ReLU docstring, valid for 0 <= threshold < max_value (at
    threshold == max_value, x == threshold gives 0 in Keras, not max_value)."""
    top = np.inf if max_value is None else max_value
    return np.where(x >= top, top, np.where(x > threshold, x, negative_slope * (x - threshold)))


RELU_OPTIONS = [
    {"threshold": 0.5},
    {"threshold": 0.5, "max_value": 2.0},
    {"threshold": 0.5, "negative_slope": 0.25},
    {"threshold": 0.5, "max_value": 2.0, "negative_slope": 0.25},
    {"threshold": 2.0, "max_value": 2.0, "negative_slope": 0.25},
    {"max_value": 2.0, "negative_slope": 0.25},
    {"negative_slope": 0.25},
    {"max_value": 6.0},
    {},
    {"threshold": -1.0},
    {"threshold": -1.0, "max_value": 2.0, "negative_slope": 0.25},
]


@pytest.mark.parametrize("options", RELU_OPTIONS, ids=lambda options: ",".join(f"{k}={v}" for k, v in options.items()))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_matches_keras_at_the_threshold_and_the_cap(options, dtype):
    # every edge exactly: the threshold, the cap, 0, and a point on each side of each
    x = np.array([[-3.0, -1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 2.0, 2.5, 6.0, 7.0]], dtype=dtype)
    got = ReLU(**options, dtype=dtype).forward(x)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, keras_relu(x, **options).astype(dtype))
    threshold, max_value = options.get("threshold", 0.0), options.get("max_value")
    if threshold >= 0 and (max_value is None or threshold < max_value):
        np.testing.assert_array_equal(got, keras_relu_pieces(x, **options).astype(dtype))
    if threshold in x:  # Keras: y(threshold) = 0, not threshold
        assert got[x == threshold].tolist() == [0.0]


@pytest.mark.parametrize("options", RELU_OPTIONS, ids=lambda options: ",".join(f"{k}={v}" for k, v in options.items()))
def test_relu_backward_is_the_slope_of_the_piece_the_forward_chose(options):
    x = np.array([[-3.0, -1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 2.0, 2.5, 6.0, 7.0]])
    layer = ReLU(**options, dtype="float64")
    layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(x))[0]
    threshold, max_value = options.get("threshold", 0.0), options.get("max_value")
    negative_slope = options.get("negative_slope", 0.0)
    for value, slope in zip(x[0], dx, strict=True):
        if value <= threshold:  # x == threshold belongs to the lower piece: y = 0 there, as y = slope * (x - t)
            expected = negative_slope
        elif max_value is not None and not 0 < value < max_value:
            expected = 0.0  # the clip is flat
        else:
            expected = 1.0
        assert slope == expected, (value, slope, expected)
        # and away from the kinks it is the derivative of Keras's function
        h = 1e-4
        if all(abs(value - kink) > 2 * h for kink in (threshold, 0.0, max_value or np.inf)):
            numeric = (keras_relu(value + h, **options) - keras_relu(value - h, **options)) / (2 * h)
            assert slope == pytest.approx(numeric, abs=1e-9), value


def test_only_the_default_relu_is_fused():
    # the fused pooling kernels implement max(x, 0) only: every other option must run the layer's own code
    from tinynet.engine import planner
    from tinynet.layers import MaxPooling2D

    def planned(relu):
        pool = MaxPooling2D()
        pool.build((4, 4, 1))
        relu.build(pool.output_shape)
        return [type(stage).__name__ for stage in planner.plan([pool, relu])]

    assert planned(ReLU()) == ["PoolReluDropout"]
    for options in [options for options in RELU_OPTIONS if options]:
        assert planned(ReLU(**options)) == ["MaxPooling2D", "ReLU"], options


def test_relu_layer_is_named_like_keras():
    assert ReLU().name == "re_lu_1"


# ----------------------------------------------------------------------------------------------- Dropout
def test_dropout_is_identity_at_inference():
    x = np.random.default_rng(3).standard_normal((8, 5)).astype(np.float32)
    layer = Dropout(0.5)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    np.testing.assert_array_equal(layer.backward(np.full_like(x, 2.0)), 2.0)
    np.testing.assert_array_equal(Dropout(0.0).forward(x, training=True), x)


@pytest.mark.parametrize("rate", [0.1, 0.25, 0.5, 0.8])
def test_dropout_training_scales_survivors_and_keeps_the_right_fraction(rate):
    x = np.random.default_rng(4).uniform(1.0, 2.0, size=(200, 250))
    layer = Dropout(rate, seed=7, dtype="float64")
    y = layer.forward(x, training=True)
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / (1 - rate), rtol=1e-12)
    n = x.size
    fraction = kept.mean()
    # 5 standard deviations of a binomial proportion: fails for a mask kept with probability `rate` instead.
    assert abs(fraction - (1 - rate)) < 5 * math.sqrt(rate * (1 - rate) / n)
    # The expectation is preserved: mean of y close to mean of x.
    assert abs(y.mean() / x.mean() - 1) < 0.02
    # Backward uses the very same mask and scale.
    dy = np.ones_like(x)
    np.testing.assert_array_equal(layer.backward(dy), np.where(kept, 1 / (1 - rate), 0.0))


def test_dropout_masks_differ_between_calls_but_repeat_with_a_seed():
    x = np.ones((10, 10))
    first = Dropout(0.5, seed=1, dtype="float64")
    second = Dropout(0.5, seed=1, dtype="float64")
    a, b = first.forward(x, training=True), first.forward(x, training=True)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(second.forward(x, training=True), a)


def test_dropout_noise_shape_shares_the_mask_along_size_one_axes():
    x = np.ones((4, 6, 6, 3))
    y = Dropout(0.5, noise_shape=(None, 1, 1, 3), seed=0, dtype="float64").forward(x, training=True)
    assert np.all(y == y[:, :1, :1, :])
    assert set(np.unique(y)) <= {0.0, 2.0}


# ----------------------------------------------------------------------------------------------- Flatten
def test_flatten_keeps_channels_last_order_and_backward_inverts_it():
    x = np.random.default_rng(5).standard_normal((2, 3, 4, 5))
    layer = Flatten(dtype="float64")
    y = layer.forward(x)
    assert y.shape == (2, 60) and layer.output_shape == (60,)
    for h, w, c in [(0, 0, 1), (1, 2, 3), (2, 3, 4)]:
        assert y[1, (h * 4 + w) * 5 + c] == x[1, h, w, c]
    dy = np.random.default_rng(6).standard_normal((2, 60))
    np.testing.assert_array_equal(layer.backward(dy), dy.reshape(2, 3, 4, 5))


# ------------------------------------------------------------------------------------ names and weights
def test_automatic_names_follow_keras():
    layers = [Conv2D(2, 3), MaxPooling2D(), Conv2D(2, 3), Activation("relu"), Dropout(0.5), Flatten(), Dense(2),
              Dense(2), MaxPool2D(), Convolution2D(1, 1)]
    assert [layer.name for layer in layers] == [
        "conv2d_1", "max_pooling2d_1", "conv2d_2", "activation_1", "dropout_1", "flatten_1", "dense_1", "dense_2",
        "max_pooling2d_2", "conv2d_3",
    ]
    assert Dense(2, name="logits").name == "logits"


def test_layer_set_weights_round_trip_and_errors():
    layer = Conv2D(4, 3)
    layer.build((6, 6, 2))
    kernel, bias = layer.get_weights()
    assert kernel.shape == (3, 3, 2, 4) and bias.shape == (4,)
    assert np.all(bias == 0)
    new = [np.full_like(kernel, 0.5), np.arange(4, dtype=np.float32)]
    layer.set_weights(new)
    for got, want in zip(layer.get_weights(), new, strict=True):
        np.testing.assert_array_equal(got, want)
    # get_weights returns copies
    layer.get_weights()[0][...] = 9
    assert np.all(layer.params["kernel"] == 0.5)

    with pytest.raises(ValueError, match=r"conv2d_1: expected 2 weight arrays \(kernel, bias\), got 1"):
        layer.set_weights([kernel])
    with pytest.raises(ValueError, match=r"conv2d_1: weight 'bias' expects shape \(4,\), got \(5,\)"):
        layer.set_weights([kernel, np.zeros(5)])
    np.testing.assert_array_equal(layer.params["kernel"], 0.5)  # the kernel was not half-written
    with pytest.raises(RuntimeError, match="dense_1: set_weights called before the layer was built"):
        Dense(3).set_weights([np.zeros((2, 3)), np.zeros(3)])


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("make", "error", "message"), [
    (lambda: Conv2D(0, 3), ValueError, r"conv2d_1: filters must be a positive int, got 0"),
    (lambda: Conv2D(2.5, 3), ValueError, r"conv2d_1: filters must be a positive int, got 2.5"),
    (lambda: Conv2D(2, 0), ValueError, r"conv2d_1: kernel_size must be positive, got 0"),
    (lambda: Conv2D(2, (3,)), TypeError, r"conv2d_1: kernel_size must be an int or a tuple of 2 ints"),
    (lambda: Conv2D(2, 3, strides=(1, 0)), ValueError, r"conv2d_1: strides must be positive"),
    (lambda: Conv2D(2, 3, padding="full"), ValueError, r"conv2d_1: padding must be 'valid' or 'same', got 'full'"),
    (lambda: Conv2D(2, 3, data_format="channels_first"), ValueError, r"conv2d_1: only data_format='channels_last'"),
    (lambda: Conv2D(2, 3, activation="relu6"), ValueError, r"conv2d_1 activation: unknown activation 'relu6'"),
    (lambda: Conv2D(2, 3, kernel_initializer="glorot"), ValueError,
     r"conv2d_1 kernel_initializer: unknown initializer 'glorot'"),
    (lambda: Conv2D(2, 3, bogus=1), TypeError, r"Conv2D: unexpected keyword argument\(s\) bogus"),
    (lambda: MaxPooling2D(0), ValueError, r"max_pooling2d_1: pool_size must be positive, got 0"),
    (lambda: MaxPooling2D((2, 2, 2)), TypeError, r"max_pooling2d_1: pool_size must be an int or a tuple of 2"),
    (lambda: MaxPooling2D(2, strides=-1), ValueError, r"max_pooling2d_1: strides must be positive"),
    (lambda: Dense(0), ValueError, r"dense_1: units must be a positive int, got 0"),
    (lambda: Dense(True), ValueError, r"dense_1: units must be a positive int, got True"),
    (lambda: Dense(3, activation="swish"), ValueError, r"dense_1 activation: unknown activation 'swish'"),
    (lambda: Dense(3, activation=4), TypeError, r"dense_1 activation: expected an activation name"),
    (lambda: Dense(3, bias_initializer="nope"), ValueError, r"dense_1 bias_initializer: unknown initializer"),
    (lambda: Dropout(1.0), ValueError, r"dropout_1: rate must be a float in \[0, 1\), got 1.0"),
    (lambda: Dropout(-0.1), ValueError, r"dropout_1: rate must be a float in \[0, 1\), got -0.1"),
    (lambda: Dropout("half"), ValueError, r"dropout_1: rate must be a float in \[0, 1\), got 'half'"),
    (lambda: Activation("gelu"), ValueError, r"activation_1 activation: unknown activation 'gelu'; expected one of"),
    (lambda: ReLU(max_value=-1), ValueError, r"re_lu_1: max_value must be >= 0 or None, got -1"),
    (lambda: ReLU(negative_slope=-0.5), ValueError, r"re_lu_1: negative_slope must be >= 0, got -0.5"),
    (lambda: Dense(3, input_shape=(0,)), ValueError, r"dense_1: input_shape must hold positive ints"),
    (lambda: Dense(3, dtype="int32"), TypeError, r"dtype: expected 'float32' or 'float64'"),
])
def test_bad_constructor_arguments_name_the_layer_and_argument(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize(("layer", "input_shape", "message"), [
    (lambda: Conv2D(2, 5), (3, 3, 1), r"conv2d_1: window \(5, 5\) is larger than the input 3x3 with padding 'valid'"),
    (lambda: Conv2D(2, (2, 4)), (6, 3, 1), r"conv2d_1: window \(2, 4\) is larger than the input 6x3"),
    (lambda: MaxPooling2D(4), (3, 8, 2), r"max_pooling2d_1: window \(4, 4\) is larger than the input 3x8"),
    (lambda: Conv2D(2, 3), (28, 28), r"conv2d_1: expects inputs of shape \(batch, height, width, channels\), "
                                     r"got per-sample shape \(28, 28\)"),
    (lambda: MaxPooling2D(), (8,), r"max_pooling2d_1: expects inputs of shape \(batch, height, width, channels\)"),
])
def test_impossible_geometry_raises_at_build(layer, input_shape, message):
    with pytest.raises(ValueError, match=message):
        layer().build(input_shape)


def test_kernel_larger_than_input_is_fine_with_same_padding():
    layer = Conv2D(2, 5, padding="same")
    layer.build((3, 3, 1))
    assert layer.output_shape == (3, 3, 2)


def test_wrong_input_shapes_at_forward_name_the_layer_and_expected_shape():
    conv = Conv2D(2, 3, input_shape=(5, 5, 2))
    with pytest.raises(ValueError, match=r"conv2d_1: expected input of shape \(batch, 5, 5, 2\), got \(4, 5, 5, 3\)"):
        conv.forward(np.zeros((4, 5, 5, 3)))
    with pytest.raises(ValueError, match=r"conv2d_1: expected input of shape \(batch, 5, 5, 2\), got \(5, 5, 2\)"):
        conv.forward(np.zeros((5, 5, 2)))
    dense = Dense(3)
    dense.forward(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"dense_1: expected input of shape \(batch, 4\), got \(2, 5\)"):
        dense.forward(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"dense_2: expected a batch of shape \(batch, ...\), got shape \(4,\)"):
        Dense(3).forward(np.zeros(4))
    with pytest.raises(ValueError, match=r"dense_1: got an empty batch"):
        dense.forward(np.zeros((0, 4)))
    with pytest.raises(TypeError, match=r"dense_1: expected a numeric array, got dtype <U1"):
        dense.forward(np.array([["a", "b", "c", "d"]]))


ALL_LAYERS = [
    pytest.param(lambda: Conv2D(2, 3), (5, 5, 1), id="Conv2D"),
    pytest.param(lambda: MaxPooling2D(), (4, 4, 2), id="MaxPooling2D"),
    pytest.param(lambda: Dense(3), (4,), id="Dense"),
    pytest.param(lambda: Activation("softmax"), (4,), id="Activation"),
    pytest.param(lambda: ReLU(), (4,), id="ReLU"),
    pytest.param(lambda: Dropout(0.5), (4,), id="Dropout"),
    pytest.param(lambda: Flatten(), (2, 3), id="Flatten"),
]


@pytest.mark.parametrize(("make", "input_shape"), ALL_LAYERS)
def test_backward_before_forward_raises_runtime_error_naming_the_layer(make, input_shape):
    layer = make()
    layer.build(input_shape)
    dy = np.zeros((2, *layer.output_shape), dtype=np.float32)
    with pytest.raises(RuntimeError, match=rf"{layer.name}: backward called without a forward pass"):
        layer.backward(dy)
    # ... and after one forward, only one backward: the cache is consumed.
    layer.forward(np.ones((2, *input_shape), dtype=np.float32), training=True)
    layer.backward(dy)
    with pytest.raises(RuntimeError, match=rf"{layer.name}: backward called without a forward pass"):
        layer.backward(dy)


@pytest.mark.parametrize(("make", "input_shape"), ALL_LAYERS)
def test_backward_with_wrong_gradient_shape_raises(make, input_shape):
    layer = make()
    layer.forward(np.ones((2, *input_shape), dtype=np.float32), training=True)
    expected = (2, *layer.output_shape)
    wrong = (3, *layer.output_shape)
    with pytest.raises(ValueError, match=re.escape(f"{layer.name}: backward expected dy of shape {expected}")):
        layer.backward(np.zeros(wrong))


@pytest.mark.parametrize(("make", "input_shape"), ALL_LAYERS)
def test_forward_keeps_the_layer_dtype_and_casts_integer_input(make, input_shape):
    layer = make()
    y = layer.forward(np.ones((2, *input_shape), dtype=np.uint8), training=False)
    assert y.dtype == np.float32
    assert isinstance(layer, Layer)


def test_needs_input_gradient_false_skips_dx_but_fills_parameter_gradients():
    rng = np.random.default_rng(8)
    for layer, x in [(Conv2D(2, 3, dtype="float64"), rng.standard_normal((2, 5, 5, 1))),
                     (Dense(2, dtype="float64"), rng.standard_normal((2, 3)))]:
        layer.needs_input_gradient = False
        y = layer.forward(x)
        assert layer.backward(np.ones_like(y)) is None
        assert np.any(layer.grads["kernel"] != 0)
        np.testing.assert_allclose(layer.grads["bias"], np.full(2, y.size / 2))
