"""The direct 3x3 convolution of one-channel images (tinynet.kernels.direct_conv) and the engine's use of it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_conv_block import _through_layers  # the layers one by one: the reference

from tinynet import engine
from tinynet.engine import conv_block
from tinynet.engine import threads as engine_threads
from tinynet.kernels.direct_conv import (
    check_conv3x3_one_channel,
    conv3x3_one_channel,
    conv3x3_one_channel_pool_relu,
    conv3x3_one_channel_pool_relu_dropout,
    conv3x3_one_channel_pool_relu_dropout_unchecked,
    conv3x3_one_channel_pooled_parameter_gradients,
    conv3x3_one_channel_reference,
)
from tinynet.kernels.dropout import keep_threshold
from tinynet.kernels.fused import pool_relu_dropout_backward_unchecked, pool_relu_dropout_forward_unchecked
from tinynet.kernels.im2col import im2col
from tinynet.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from tinynet.learn.gradcheck import check_model
from tinynet.models import Sequential, passes
from tinynet.utils import set_random_seed


def _operands(rng, batch, height, width, filters, dtype):
    x = rng.standard_normal((batch, height, width)).astype(dtype)
    kernel = rng.standard_normal((9, filters)).astype(dtype)
    bias = rng.standard_normal(filters).astype(dtype)
    return x, kernel, bias


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 3), height=st.integers(3, 12), width=st.integers(3, 12), filters=st.integers(1, 70),
       dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 10_000))
def test_the_direct_convolution_equals_im2col_and_the_reference(batch, height, width, filters, dtype, seed):
    x, kernel, bias = _operands(np.random.default_rng(seed), batch, height, width, filters, dtype)
    z = np.empty((batch, height - 2, width - 2, filters), dtype=dtype)
    check_conv3x3_one_channel(x, kernel, bias, z)
    conv3x3_one_channel(x, kernel, bias, z)
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(z, conv3x3_one_channel_reference(x, kernel, bias), rtol=tolerance, atol=tolerance)
    cols = im2col(x[..., None], 3, 3, 1, 1, 0, 0, height - 2, width - 2)
    by_product = (cols @ kernel + bias).reshape(z.shape)
    np.testing.assert_allclose(z, by_product, rtol=tolerance, atol=tolerance)


@settings(max_examples=60, deadline=None)
@given(batch=st.integers(1, 3), height=st.integers(4, 13), width=st.integers(4, 13), filters=st.integers(1, 40),
       nans=st.integers(0, 4), rate=st.sampled_from([None, 0.25, 0.6]), record=st.booleans(),
       seed=st.integers(0, 10_000))
def test_the_one_pass_kernel_is_the_fused_pooling_of_the_direct_convolution_bit_for_bit(
        batch, height, width, filters, nans, rate, record, seed):
    rng = np.random.default_rng(seed)
    x, kernel, bias = _operands(rng, batch, height, width, filters, "float32")
    for _ in range(nans):  # a NaN pixel makes NaN outputs, which the pooling must treat as the fused kernel does
        x[rng.integers(batch), rng.integers(height), rng.integers(width)] = np.nan
    z = np.empty((batch, height - 2, width - 2, filters), np.float32)
    conv3x3_one_channel(x, kernel, bias, z)
    pooled_shape = (batch, (height - 2) // 2, (width - 2) // 2, filters)
    words = rng.integers(0, 1 << 16, pooled_shape).astype(np.uint16) if rate is not None else None
    expected = np.empty(pooled_shape, np.float32)
    expected_index, expected_mask = np.empty(pooled_shape, np.int32), np.empty(pooled_shape, np.uint8)
    pool_relu_dropout_forward_unchecked(z, expected, expected_index, expected_mask, words, rate or 0.0,
                                        (2, 2, 2, 2, 0, 0), record=True)
    y = np.full(pooled_shape, -7.0, np.float32)
    index, mask = np.full(pooled_shape, -1, np.int32), np.full(pooled_shape, 9, np.uint8)
    check_conv3x3_one_channel(x, kernel, bias, y, pooled=True)
    conv3x3_one_channel_pool_relu_dropout(
        x, kernel, bias, y, index, mask, words if words is not None else np.zeros((1, 1, 1, 1), np.uint16),
        words is not None, keep_threshold(rate or 0.0), np.float32(1 / (1 - (rate or 0.0))), record)
    assert np.array_equal(y, expected)  # NaN outputs included: both give 0 there
    if record:
        assert np.array_equal(index, expected_index) and np.array_equal(mask, expected_mask)
    else:  # inference: nothing recorded
        assert (index == -1).all() and (mask == 9).all()
    if rate is None:  # the inference-only twin
        inferred = np.full(pooled_shape, -7.0, np.float32)
        conv3x3_one_channel_pool_relu(x, kernel, bias, inferred)
        assert np.array_equal(inferred, expected)


@settings(max_examples=50, deadline=None)
@given(batch=st.integers(1, 3), height=st.integers(4, 13), width=st.integers(4, 13), filters=st.integers(1, 40),
       rate=st.sampled_from([None, 0.25, 0.6]), dtype=st.sampled_from(["float32", "float64"]),
       ties=st.booleans(), seed=st.integers(0, 10_000))
def test_the_pooled_parameter_gradients_equal_unpooling_then_the_im2col_product(batch, height, width, filters, rate,
                                                                                dtype, ties, seed):
    """The backward kernel that skips dz and im2col gives the gradients of the long way round: the fused pooling's
    backward writes dz, and dK = X_col^T dz, db = 1^T dz, summed here in float64."""
    rng = np.random.default_rng(seed)
    x, kernel, bias = _operands(rng, batch, height, width, filters, dtype)
    if ties:  # a flat image: every window's four sums tie, and the first must be the one that gets the gradient
        x[:] = 1.0
    pooled_shape = (batch, (height - 2) // 2, (width - 2) // 2, filters)
    words = rng.integers(0, 1 << 16, pooled_shape).astype(np.uint16) if rate is not None else None
    y = np.empty(pooled_shape, dtype)
    index, mask = np.empty(pooled_shape, np.int32), np.empty(pooled_shape, np.uint8)
    conv3x3_one_channel_pool_relu_dropout_unchecked(x, kernel, bias, y, index, mask, words, rate or 0.0)
    dy = rng.standard_normal(pooled_shape).astype(dtype)
    dz = np.empty((batch, height - 2, width - 2, filters), dtype)
    pool_relu_dropout_backward_unchecked(dy, index, mask, dz, rate or 0.0, rate is not None, (2, 2, 2, 2, 0, 0))
    cols = im2col(x[..., None], 3, 3, 1, 1, 0, 0, height - 2, width - 2).astype(np.float64)
    dz_rows = dz.reshape(-1, filters).astype(np.float64)
    kernel_gradient = np.full((9, filters), np.nan, dtype)
    bias_gradient = np.full(filters, np.nan, dtype)
    scale = np.dtype(dtype).type(1 / (1 - rate) if rate is not None else 1.0)
    conv3x3_one_channel_pooled_parameter_gradients(x, dy, index, mask, scale, kernel_gradient, bias_gradient)
    tolerance = 2e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(kernel_gradient, cols.T @ dz_rows, rtol=tolerance, atol=tolerance * batch * 100)
    np.testing.assert_allclose(bias_gradient, dz_rows.sum(axis=0), rtol=tolerance, atol=tolerance * batch * 100)


@pytest.mark.parametrize(("name", "change", "message"), [
    ("x", lambda a: a.update(x=np.zeros((2, 2, 5), np.float32)), "x must be"),
    ("kernel", lambda a: a.update(kernel=np.zeros((8, 4), np.float32)), "kernel must be"),
    ("bias", lambda a: a.update(bias=np.zeros(5, np.float32)), "bias must be"),
    ("out", lambda a: a.update(out=np.zeros((2, 3, 3, 4), np.float32)), "out must be"),
    ("dtype", lambda a: a.update(kernel=np.zeros((9, 4))), "dtype"),
    ("layout", lambda a: a.update(x=np.zeros((2, 5, 10), np.float32)[:, :, ::2]), "C-contiguous"),
    ("type", lambda a: a.update(bias=[0.0] * 4), "ndarray"),
])
def test_the_checks_refuse_what_the_kernels_would_misread(name, change, message):
    arguments = {"x": np.zeros((2, 5, 5), np.float32), "kernel": np.zeros((9, 4), np.float32),
                 "bias": np.zeros(4, np.float32), "out": np.zeros((2, 3, 3, 4), np.float32)}
    check_conv3x3_one_channel(**arguments)
    change(arguments)
    if name == "out":
        arguments["out"] = np.zeros((2, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match=message):
        check_conv3x3_one_channel(**arguments)


def _first_block(height, width, filters, rate, dtype="float32"):
    layers = [Conv2D(filters, 3, input_shape=(height, width, 1), dtype=dtype), MaxPooling2D(2, dtype=dtype),
              Activation("relu", dtype=dtype)]
    if rate is not None:
        layers.append(Dropout(rate, dtype=dtype))
    return Sequential(layers).layers


@settings(max_examples=25, deadline=None)
@given(height=st.integers(4, 14), width=st.integers(4, 14), filters=st.integers(1, 66), batch=st.integers(1, 9),
       rate=st.sampled_from([None, 0.25]), one_image_slices=st.booleans(), seed=st.integers(0, 1000))
def test_the_block_uses_the_direct_path_and_its_inference_matches_the_layers(height, width, filters, batch, rate,
                                                                           one_image_slices, seed):
    set_random_seed(seed)
    layers = _first_block(height, width, filters, rate)
    (stage,) = engine.plan(list(layers))
    assert stage._uses_direct()
    x = np.random.default_rng(seed).standard_normal((batch, height, width, 1)).astype(np.float32)
    saved = conv_block._SLICE_BYTES
    conv_block._SLICE_BYTES = 1 if one_image_slices else saved
    try:
        inferred = stage.forward(x, training=False)
        trained = stage.forward(x, training=True) if rate is None else None
    finally:
        conv_block._SLICE_BYTES = saved
    reference = x
    for layer in layers:
        reference = layer.forward(reference, training=False)
    np.testing.assert_allclose(inferred, reference, rtol=1e-5, atol=1e-5)
    assert np.array_equal(inferred == 0, reference == 0)
    if trained is not None:  # the training pass pools the same convolution, written out: the same bits
        assert np.array_equal(inferred, trained)


@pytest.mark.parametrize(("kernel", "strides", "padding", "channels"), [
    ((3, 3), 1, "same", 1), ((3, 3), 2, "valid", 1), ((3, 3), 1, "valid", 2), ((2, 2), 1, "valid", 1)])
def test_other_convolutions_keep_im2col(kernel, strides, padding, channels):
    layers = Sequential([Conv2D(4, kernel, strides=strides, padding=padding, input_shape=(9, 9, channels)),
                         MaxPooling2D(2), Activation("relu")]).layers
    (stage,) = engine.plan(list(layers))
    assert not stage._uses_direct()


@pytest.mark.parametrize("rate", [0.25, None])
def test_the_first_tutorial_block_trains_through_the_one_pass_kernel_as_its_layers_do(rate):
    set_random_seed(11)
    layers = _first_block(28, 28, 64, rate)
    set_random_seed(11)
    twins = _first_block(28, 28, 64, rate)
    (stage,) = engine.plan(list(layers))
    assert stage._uses_direct()
    rng = np.random.default_rng(11)
    x = rng.random((7, 28, 28, 1), dtype=np.float32)
    y = stage.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = stage.backward(dy)
    expected = x
    for twin in twins:  # the same dropout generator state: the same mask
        expected = twin.forward(expected, training=True)
    gradient = dy
    for twin in reversed(twins):
        gradient = twin.backward(gradient)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    assert np.array_equal(y == 0, expected == 0)
    np.testing.assert_allclose(dx, gradient, rtol=1e-5, atol=1e-5)
    for name in layers[0].grads:
        np.testing.assert_allclose(layers[0].grads[name], twins[0].grads[name], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rate", [0.25, None])
@pytest.mark.parametrize("one_image_slices", [False, True])
def test_the_first_layer_takes_its_parameter_gradients_from_the_pooled_gradient_as_its_layers_do(
        rate, one_image_slices, monkeypatch, two_threads):
    """With no input gradient wanted (the model's first layer), the block's backward pass skips dz and im2col;
    the parameters' gradients are the layers', and the same bits with one thread or two."""
    if one_image_slices:
        monkeypatch.setattr(conv_block, "_SLICE_BYTES", 1)
    set_random_seed(12)
    layers = _first_block(28, 27, 64, rate)
    set_random_seed(12)
    twins = _first_block(28, 27, 64, rate)
    (stage,) = engine.plan(list(layers))
    stage.needs_input_gradient = False
    rng = np.random.default_rng(12)
    x = rng.random((9, 28, 27, 1), dtype=np.float32)
    y = stage.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    for grad in layers[0].grads.values():
        grad[:] = np.nan  # every element must be written
    cache = stage._cache
    assert stage.backward(dy) is None
    on_two_threads = {name: grad.copy() for name, grad in layers[0].grads.items()}
    _through_layers(twins, x, dy)
    for name in layers[0].grads:
        np.testing.assert_allclose(layers[0].grads[name], twins[0].grads[name], rtol=1e-4, atol=1e-4)
    engine_threads.set_num_threads(1)
    stage._cache = cache
    stage.backward(dy)
    for name, grad in layers[0].grads.items():
        assert np.array_equal(grad, on_two_threads[name])


def test_model_gradient_check_through_the_direct_one_pass_kernel(float64):
    set_random_seed(8)
    model = Sequential([Conv2D(4, 3, input_shape=(8, 9, 1)), MaxPooling2D(2), Activation("relu"), Dropout(0.3),
                        Flatten(), Dense(3, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    (stage, *_rest) = passes.stages(model)
    assert stage._uses_direct()  # float64: the same one-pass kernel, compiled for doubles
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 8, 9, 1))
    y = np.eye(3)[rng.integers(0, 3, 4)]
    report = check_model(model, x, y, seed=8, step=1e-5, rtol=1e-4, atol=1e-6)
    assert report.passed, str(report)
