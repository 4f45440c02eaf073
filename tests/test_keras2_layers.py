"""Keras 2's activations (elu, selu, softplus, softsign, hard_sigmoid, exponential), the ELU, Reshape and
ZeroPadding2D layers and Conv2D's dilation_rate: known answers from Keras 2.2.4's formulas, float64 gradient
checks under hypothesis, the dilated im2col/col2im against their references, saving and the planner.
"""

from __future__ import annotations

import io
import json
import math
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tinynet import activations, engine
from tinynet.kernels import col2im, col2im_reference, im2col, im2col_reference
from tinynet.layers import ELU, Activation, Conv2D, Dense, Flatten, MaxPooling2D, Reshape, ZeroPadding2D
from tinynet.learn.gradcheck import GradcheckReport, check_layer
from tinynet.models import Sequential, load_model, saving
from tinynet.optimizers import SGD
from tinynet.utils import to_categorical

GRADIENT_SETTINGS = settings(max_examples=15, deadline=None)
SEEDS = st.integers(0, 2**32 - 1)
NEW_ACTIVATIONS = ["elu", "selu", "softplus", "softsign", "hard_sigmoid", "exponential"]


def assert_checked(report: GradcheckReport, layer) -> None:
    assert report.passed, str(report)
    assert {entry.name for entry in report.entries} == {"x"} | {f"{layer.name}.{name}" for name in layer.params}
    assert all(entry.checked > 0 for entry in report.entries)


# ------------------------------------------------------------------------------------------------ activations
def keras_formula(name: str, value: float) -> float:
    """Keras 2.2.4's keras/activations.py (TensorFlow backend) for one number, with the math module."""
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    return {
        "elu": lambda v: v if v > 0 else math.exp(v) - 1,
        "selu": lambda v: scale * (v if v > 0 else alpha * (math.exp(v) - 1)),
        "softplus": lambda v: math.log(math.exp(v) + 1),
        "softsign": lambda v: v / (abs(v) + 1),
        "hard_sigmoid": lambda v: min(max(0.2 * v + 0.5, 0.0), 1.0),
        "exponential": math.exp,
    }[name](value)


def keras_slope(name: str, value: float) -> float:
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    return {
        "elu": lambda v: 1.0 if v > 0 else math.exp(v),
        "selu": lambda v: scale if v > 0 else scale * alpha * math.exp(v),
        "softplus": lambda v: 1 / (1 + math.exp(-v)),
        "softsign": lambda v: 1 / (abs(v) + 1) ** 2,
        "hard_sigmoid": lambda v: 0.2 if -2.5 < v < 2.5 else 0.0,
        "exponential": math.exp,
    }[name](value)


@pytest.mark.parametrize("name", NEW_ACTIVATIONS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_new_activations_match_keras_formulas_and_their_slopes(name, dtype):
    z = np.array([[-6.0, -2.6, -1.0, -0.3, -1e-3, 0.0, 1e-3, 0.7, 2.4, 4.0, 12.0]])
    layer = Activation(name, dtype=dtype)
    y = layer.forward(z)
    assert y.dtype == np.dtype(dtype)
    expected = np.array([[keras_formula(name, v) for v in z[0]]])
    tolerance = 1e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(y, expected, rtol=tolerance, atol=tolerance)
    dz = layer.backward(np.ones_like(y))
    assert dz.dtype == np.dtype(dtype)
    slopes = np.array([[keras_slope(name, v) for v in z[0]]])
    np.testing.assert_allclose(dz, slopes, rtol=10 * tolerance, atol=10 * tolerance)


def test_the_named_activations_work_on_dense_and_conv2d_and_in_get_config():
    for name in NEW_ACTIVATIONS:
        assert activations.get(name).name == name
        dense = Dense(2, activation=name, input_shape=(3,))
        assert dense.get_config()["activation"] == name
        assert Conv2D(2, 3, activation=name).get_config()["activation"] == name


def test_softplus_and_elu_are_stable_far_out():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning from a branch np.where discards
        z = np.array([[-1000.0, -50.0, 50.0, 1000.0]])
        np.testing.assert_array_equal(activations.softplus(z), [[0.0, math.exp(-50.0), 50.0, 1000.0]])
        np.testing.assert_array_equal(activations.elu(z), [[-1.0, -1.0, 50.0, 1000.0]])
        np.testing.assert_array_equal(activations.selu(z.astype(np.float32)).dtype, np.float32)
        # Full relative precision in the tail, where log(exp(z) + 1) in float32 would round to 0.
        tail = activations.softplus(np.array([-30.0], dtype=np.float32))
        np.testing.assert_allclose(tail, math.exp(-30.0), rtol=1e-6)


def test_hard_sigmoid_is_keras_2s_not_keras_3s():
    # Keras 3 changed it to clip(z / 6 + 0.5, 0, 1): at z = 1 that is 0.6667, Keras 2 gives 0.7.
    np.testing.assert_allclose(activations.hard_sigmoid(np.array([1.0, -3.0, 3.0])), [0.7, 0.0, 1.0])


@GRADIENT_SETTINGS
@given(name=st.sampled_from(NEW_ACTIVATIONS), shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       batch=st.integers(1, 3), scale=st.sampled_from([0.5, 2.0, 4.0]), seed=SEEDS)
def test_new_activation_gradients(name, shape, batch, scale, seed):
    x = scale * np.random.default_rng(seed).standard_normal((batch, *shape))
    kinks = {"selu": [0.0], "hard_sigmoid": [-2.5, 2.5]}.get(name, [])
    assume(all(np.abs(x - kink).min() > 1e-3 for kink in kinks))
    if name == "exponential":
        x = np.minimum(x, 3.0)  # central differences round off by eps * sum|f| / h: keep exp(x) moderate
    layer = Activation(name, dtype="float64")
    assert_checked(check_layer(layer, x=x, seed=seed, max_entries=None), layer)


# ------------------------------------------------------------------------------------------------------- ELU
@GRADIENT_SETTINGS
@given(alpha=st.sampled_from([0.0, 0.3, 1.0, 2.5]), shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       batch=st.integers(1, 3), seed=SEEDS)
def test_elu_layer_values_and_gradients(alpha, shape, batch, seed):
    x = 2 * np.random.default_rng(seed).standard_normal((batch, *shape))
    assume(np.abs(x).min() > 1e-3)  # alpha != 1 puts a kink at 0
    layer = ELU(alpha, dtype="float64")
    expected = np.where(x > 0, x, alpha * (np.exp(x) - 1))
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-13, atol=1e-15)
    layer._cache = None
    assert_checked(check_layer(layer, x=x, seed=seed, max_entries=None), layer)


def test_elu_layer_defaults_and_equals_the_named_activation():
    layer = ELU()
    assert layer.alpha == 1.0 and layer.name.startswith("elu")
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(2, 6)
    np.testing.assert_array_equal(layer.forward(x), Activation("elu").forward(x))
    assert ELU.from_config(ELU(0.5).get_config()).alpha == 0.5


@pytest.mark.parametrize("alpha, error", [(-0.1, ValueError), (float("nan"), ValueError), ("1", TypeError),
                                          (True, TypeError)])
def test_elu_refuses_bad_alphas(alpha, error):
    with pytest.raises(error, match="alpha"):
        ELU(alpha)


# --------------------------------------------------------------------------------------------------- Reshape
@pytest.mark.parametrize("input_shape, target, output", [
    ((2, 3, 4), (6, 4), (6, 4)),
    ((2, 3, 4), (-1, 2), (12, 2)),
    ((2, 3, 4), (4, -1, 3), (4, 2, 3)),
    ((24,), (2, 3, 4), (2, 3, 4)),
])
def test_reshape_follows_keras_shapes_and_c_order(input_shape, target, output):
    layer = Reshape(target, dtype="float64")
    x = np.arange(2 * math.prod(input_shape), dtype=np.float64).reshape(2, *input_shape)
    y = layer.forward(x)
    assert layer.output_shape == output and y.shape == (2, *output)
    np.testing.assert_array_equal(y.reshape(2, -1), x.reshape(2, -1))
    dx = layer.backward(y * 2)
    np.testing.assert_array_equal(dx, 2 * x)
    assert layer.get_config()["target_shape"] == target


@pytest.mark.parametrize("target, input_shape, error, fragment", [
    ((-1, -1), (4,), ValueError, "only one unknown"),
    ((0, 4), (4,), ValueError, "positive"),
    ((-2, 4), (4,), ValueError, "positive"),
    ((5,), (4,), ValueError, "total size"),
    ((-1, 3), (4,), ValueError, "not a multiple"),
    ("ab", (4,), TypeError, "target_shape"),
    (4, (4,), TypeError, "target_shape"),
])
def test_reshape_refuses_what_keras_refuses(target, input_shape, error, fragment):
    with pytest.raises(error, match=fragment):
        Reshape(target).build(input_shape)


@GRADIENT_SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), batch=st.integers(1, 3), seed=SEEDS,
       unknown=st.booleans())
def test_reshape_gradients(shape, batch, seed, unknown):
    size = math.prod(shape)
    target = (-1, shape[0]) if unknown else (size,)
    layer = Reshape(target, dtype="float64")
    x = np.random.default_rng(seed).standard_normal((batch, *shape))
    assert_checked(check_layer(layer, x=x, seed=seed, max_entries=None), layer)


# --------------------------------------------------------------------------------------------- ZeroPadding2D
@pytest.mark.parametrize("padding, normalized", [
    (2, ((2, 2), (2, 2))),
    ((1, 3), ((1, 1), (3, 3))),
    (((0, 2), (1, 0)), ((0, 2), (1, 0))),
    ([[0, 2], [1, 0]], ((0, 2), (1, 0))),
    (0, ((0, 0), (0, 0))),
])
def test_zero_padding_takes_keras_padding_forms(padding, normalized):
    layer = ZeroPadding2D(padding, dtype="float64")
    assert layer.padding == normalized and layer.get_config()["padding"] == normalized
    x = np.arange(1.0, 1 + 2 * 3 * 2 * 2).reshape(2, 3, 2, 2)
    y = layer.forward(x)
    (top, bottom), (left, right) = normalized
    assert y.shape == (2, top + 3 + bottom, left + 2 + right, 2) == (2, *layer.output_shape)
    expected = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    np.testing.assert_array_equal(y, expected)
    dx = layer.backward(np.arange(y.size, dtype=np.float64).reshape(y.shape))
    np.testing.assert_array_equal(dx, np.arange(y.size, dtype=np.float64).reshape(y.shape)[
        :, top:top + 3, left:left + 2, :])
    assert dx.flags.c_contiguous


def test_zero_padding_default_is_one_pixel_all_round():
    assert ZeroPadding2D().padding == ((1, 1), (1, 1))


@pytest.mark.parametrize("padding, error", [(-1, ValueError), ((1, -1), ValueError), ((1, 2, 3), ValueError),
                                            ("same", TypeError), (1.5, TypeError), (((1,), (2, 2)), ValueError),
                                            (True, TypeError)])
def test_zero_padding_refuses_bad_padding(padding, error):
    with pytest.raises(error, match="padding"):
        ZeroPadding2D(padding)


def test_zero_padding_refuses_channels_first_and_non_images():
    with pytest.raises(ValueError, match="channels_last"):
        ZeroPadding2D(1, data_format="channels_first")
    with pytest.raises(ValueError, match="height, width, channels"):
        ZeroPadding2D(1).build((4, 4))


@GRADIENT_SETTINGS
@given(padding=st.tuples(st.tuples(st.integers(0, 2), st.integers(0, 2)),
                         st.tuples(st.integers(0, 2), st.integers(0, 2))),
       height=st.integers(1, 4), width=st.integers(1, 4), channels=st.integers(1, 3), batch=st.integers(1, 3),
       seed=SEEDS)
def test_zero_padding_gradients(padding, height, width, channels, batch, seed):
    layer = ZeroPadding2D(padding, dtype="float64")
    x = np.random.default_rng(seed).standard_normal((batch, height, width, channels))
    assert_checked(check_layer(layer, x=x, seed=seed, max_entries=None), layer)


# ----------------------------------------------------------------------------------------- dilated Conv2D
def dilated_conv_reference(x, kernel, bias, dilation, padding):
    """Loop over every output pixel and tap, with Keras 2's (TensorFlow's) sizes and 'same' padding."""
    batch, height, width, _ = x.shape
    kh, kw, _, filters = kernel.shape
    span_h, span_w = kh + (kh - 1) * (dilation[0] - 1), kw + (kw - 1) * (dilation[1] - 1)
    if padding == "valid":
        out_h, out_w, top, left = height - span_h + 1, width - span_w + 1, 0, 0
    else:
        out_h, out_w = height, width
        top, left = max(span_h - 1, 0) // 2, max(span_w - 1, 0) // 2
    y = np.zeros((batch, out_h, out_w, filters)) + bias
    for i in range(out_h):
        for j in range(out_w):
            for di in range(kh):
                for dj in range(kw):
                    h, w = i + di * dilation[0] - top, j + dj * dilation[1] - left
                    if 0 <= h < height and 0 <= w < width:
                        y[:, i, j, :] += x[:, h, w, :] @ kernel[di, dj]
    return y


@st.composite
def dilated_configs(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["valid", "same"]))
    span = [k + (k - 1) * (d - 1) for k, d in zip(kernel, dilation, strict=True)]
    low = span if padding == "valid" else [1, 1]
    height = draw(st.integers(low[0], low[0] + 4))
    width = draw(st.integers(low[1], low[1] + 4))
    return kernel, dilation, padding, height, width


@GRADIENT_SETTINGS
@given(config=dilated_configs(), channels=st.integers(1, 3), filters=st.integers(1, 3), batch=st.integers(1, 2),
       seed=SEEDS)
def test_dilated_conv2d_matches_the_loop_reference_and_its_gradients_check(config, channels, filters, batch, seed):
    kernel_size, dilation, padding, height, width = config
    rng = np.random.default_rng(seed)
    layer = Conv2D(filters, kernel_size, padding=padding, dilation_rate=dilation, activation="tanh",
                   dtype="float64")
    layer.build((height, width, channels))
    kernel, bias = rng.uniform(-1, 1, layer.params["kernel"].shape), rng.uniform(-1, 1, filters)
    layer.set_weights([kernel, bias])
    x = rng.standard_normal((batch, height, width, channels))
    expected = np.tanh(dilated_conv_reference(x, kernel, bias, dilation, padding))
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-12)
    layer._cache = None
    assert_checked(check_layer(layer, x=x, seed=seed, max_entries=None), layer)


def test_dilated_conv2d_output_shapes_follow_keras():
    # keras/utils/conv_utils.py conv_output_length: 'valid' size - (k + (k-1)(d-1)) + 1, 'same' keeps the size.
    cases = [((28, 28, 1), dict(kernel_size=3, dilation_rate=2), (24, 24, 4)),
             ((28, 28, 1), dict(kernel_size=3, dilation_rate=(2, 3)), (24, 22, 4)),
             ((10, 9, 2), dict(kernel_size=(3, 2), dilation_rate=4, padding="same"), (10, 9, 4)),
             ((5, 5, 1), dict(kernel_size=3, dilation_rate=2), (1, 1, 4))]
    for input_shape, options, output in cases:
        layer = Conv2D(4, **options)
        layer.build(input_shape)
        assert layer.output_shape == output, options
    with pytest.raises(ValueError, match="larger than the input"):
        Conv2D(4, 3, dilation_rate=3).build((6, 6, 1))


@pytest.mark.parametrize("strides, dilation", [(2, 2), ((1, 2), (2, 1)), ((2, 1), 3)])
def test_dilation_with_strides_is_refused_like_keras(strides, dilation):
    with pytest.raises(ValueError, match="dilation_rate != 1 is incompatible with strides != 1"):
        Conv2D(2, 3, strides=strides, dilation_rate=dilation)


def test_dilation_rate_is_in_the_config_and_checked():
    layer = Conv2D(2, 3, dilation_rate=2)
    assert layer.get_config()["dilation_rate"] == (2, 2)
    assert Conv2D.from_config(layer.get_config()).dilation_rate == (2, 2)
    assert Conv2D(2, 3).get_config()["dilation_rate"] == (1, 1)
    with pytest.raises(ValueError, match="dilation_rate"):
        Conv2D(2, 3, dilation_rate=0)


@given(config=dilated_configs(), strides=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       channels=st.integers(1, 3), batch=st.integers(1, 2), dtype=st.sampled_from([np.float32, np.float64]),
       seed=SEEDS)
@settings(max_examples=40, deadline=None)
def test_dilated_im2col_and_col2im_match_their_references_and_are_adjoint(config, strides, channels, batch, dtype,
                                                                          seed):
    kernel, dilation, padding, height, width = config
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, height, width, channels)).astype(dtype)
    out_h, out_w, pad_top, pad_left = 3, 4, rng.integers(0, 3), rng.integers(0, 3)  # any window, in range or not
    window = (*kernel, *strides, pad_top, pad_left, out_h, out_w)
    dilations = {"dilation_h": dilation[0], "dilation_w": dilation[1]}
    cols = im2col(x, *window, **dilations)
    np.testing.assert_array_equal(cols, im2col_reference(x, *window, **dilations))
    g = rng.standard_normal(cols.shape).astype(dtype)
    dx = col2im(g, batch, height, width, channels, *window, **dilations)
    np.testing.assert_allclose(dx, col2im_reference(g, batch, height, width, channels, *window, **dilations),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.vdot(cols.astype(np.float64), g), np.vdot(x.astype(np.float64), dx),
                               rtol=1e-4, atol=1e-4)


def test_dilation_one_gives_the_undilated_kernels_bits():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 9, 8, 3)).astype(np.float32)
    window = (3, 2, 2, 1, 1, 0, 5, 7)
    plain = im2col(x, *window)
    np.testing.assert_array_equal(im2col(x, *window, dilation_h=1, dilation_w=1), plain)
    # The dilated taps of a 2-tap kernel with dilation 2 are taps 0 and 2 of the 3-tap kernel.
    wide = im2col(x, 3, 3, 1, 1, 0, 0, 7, 6).reshape(-1, 3, 3, 3)
    dilated = im2col(x, 2, 2, 1, 1, 0, 0, 7, 6, dilation_h=2, dilation_w=2).reshape(-1, 2, 2, 3)
    np.testing.assert_array_equal(dilated, wide[:, ::2, ::2, :])
    with pytest.raises(ValueError, match="dilation_h must be >= 1"):
        im2col(x, *window, dilation_h=0)


# -------------------------------------------------------------------------------------- planner and saving
def test_the_planner_leaves_dilated_convolutions_and_the_new_layers_to_their_own_code():
    dilated = Conv2D(3, 3, dilation_rate=2, input_shape=(12, 12, 1))
    plain = Conv2D(3, 3)
    model = Sequential([dilated, MaxPooling2D(), Activation("relu"), plain, MaxPooling2D(), Activation("relu"),
                        ZeroPadding2D(1), ELU(), Activation("selu"), Reshape((-1,)), Dense(2)])
    stages = engine.plan(model.layers)
    assert stages[0] is dilated  # not ThreadedConv2D, not absorbed into a ConvPoolReluDropout
    assert type(stages[1]).__name__ == "PoolReluDropout"
    assert type(stages[2]).__name__ == "ConvPoolReluDropout" and stages[2].conv is plain
    assert stages[3:6] == model.layers[6:9] and stages[6] is model.layers[9]
    # And the fused model computes what the unfused one does.
    x = np.random.default_rng(0).random((4, 12, 12, 1), dtype=np.float32)
    fused = model.predict(x)
    model.fuse = False
    np.testing.assert_allclose(model.predict(x), fused, rtol=1e-5, atol=1e-6)


def test_a_model_of_the_new_layers_trains_and_round_trips_through_save_and_load_model(tmp_path):
    model = Sequential([ZeroPadding2D(((1, 0), (2, 1)), input_shape=(6, 5, 2)),
                        Conv2D(3, 2, dilation_rate=(2, 1), activation="elu"), ELU(0.5),
                        Reshape((-1, 3)), Activation("softsign"), Flatten(),
                        Dense(4, activation="selu"), Dense(3, activation="softmax")])
    model.compile(SGD(0.05, momentum=0.9), "categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.random((12, 6, 5, 2), dtype=np.float32), to_categorical(np.arange(12) % 3, 3)
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    path = tmp_path / "model.tnz"
    model.save(path)
    loaded = load_model(path)
    for before, after in zip(model.layers, loaded.layers, strict=True):
        assert after.get_config() == before.get_config()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    for carrying_on in (model, loaded):
        carrying_on.fit(x, y, batch_size=4, epochs=3, initial_epoch=2, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def _with_edited_document(data: bytes, change) -> bytes:
    """The bytes of a model file whose JSON document went through ``change``, with a valid header (anyone can
    recompute the checksum: the checks behind it are under test)."""
    with zipfile.ZipFile(io.BytesIO(data[saving.HEADER_SIZE:])) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    key = saving.DOCUMENT_KEY + ".npy"
    document = json.loads(np.load(io.BytesIO(members[key])).tobytes())
    change(document)
    buffer = io.BytesIO()
    np.save(buffer, np.frombuffer(json.dumps(document).encode(), dtype=np.uint8))
    members[key] = buffer.getvalue()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, member in members.items():
            archive.writestr(zipfile.ZipInfo(name), member)
    payload = buffer.getvalue()
    return saving.file_header(payload) + payload


def test_a_model_file_whose_last_layer_would_output_a_huge_sample_is_refused(tmp_path):
    # 10^6 rows of zeros above and below a 4x4 image: 4 * 10^12 numbers per sample from a few bytes of JSON. The
    # loader checks every layer's input shape; the last layer's output has no layer after it to be checked by.
    model = Sequential([Conv2D(1, 1, input_shape=(4, 4, 1)), ZeroPadding2D(1)])
    path = tmp_path / "model.tnz"
    model.save(path)
    load_model(path)  # the untouched file loads
    crafted = tmp_path / "crafted.tnz"
    crafted.write_bytes(_with_edited_document(
        path.read_bytes(), lambda document: document["model"]["layers"][1]["config"].update(padding=10**6)))
    with pytest.raises(ValueError, match="numbers per sample"):
        load_model(crafted)


def test_reshape_costs_nothing_like_flatten():
    from tinynet.models.costs import activation_bytes, forward_flops

    layer = Reshape((-1, 2))
    layer.build((4, 3, 2))
    assert forward_flops(layer) == 0 and activation_bytes(layer, 32) == 0
