"""The planner's fused stages against the unfused layers they replace: same numbers, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet import applications, engine
from tinynet.kernels import maxpool_backward_reference, maxpool_forward_reference
from tinynet.kernels.dropout import draw_random_words, keep_threshold
from tinynet.kernels.fused import pool_relu_dropout_backward, pool_relu_dropout_forward
from tinynet.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D, ReLU
from tinynet.models import Sequential, passes
from tinynet.optimizers import SGD
from tinynet.utils import set_random_seed, to_categorical


def _train(fuse: bool, build, seed: int = 3, batch_size: int = 16):
    set_random_seed(seed)
    model = build()
    model.fuse = fuse
    model.compile(SGD(0.05, momentum=0.9, nesterov=True), "categorical_crossentropy", ["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((40, 28, 28, 1), dtype=np.float32)
    y = to_categorical(rng.integers(0, 10, 40), 10)
    history = model.fit(x, y, batch_size=batch_size, epochs=2, verbose=0)
    return model, history.history, model.predict(x)


def test_tutorial_cnn_fused_matches_unfused():
    # The convolution blocks add the weight-gradient terms slice by slice, so after training the two models
    # agree to rounding, not to the bit (the pooling stages alone are bit-identical: see the next tests).
    fused, fused_history, fused_predictions = _train(True, applications.mnist_cnn)
    plain, plain_history, plain_predictions = _train(False, applications.mnist_cnn)
    kinds = [type(stage).__name__ for stage in passes.stages(fused)]
    assert kinds.count("ConvPoolReluDropout") == 2, kinds
    assert all(isinstance(stage, type(layer)) for stage, layer in zip(passes.stages(plain), plain.layers, strict=True))
    for a, b in zip(fused.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for key in plain_history:
        np.testing.assert_allclose(fused_history[key], plain_history[key], rtol=1e-4)
    np.testing.assert_allclose(fused_predictions, plain_predictions, rtol=1e-4, atol=1e-5)


def test_stages_other_than_the_conv_block_are_bit_identical_to_the_layers():
    def relu_conv_model():  # activation on the convolution: nothing for a ConvPoolReluDropout stage to absorb
        return Sequential([Conv2D(4, 3, activation="relu", input_shape=(28, 28, 1)), MaxPooling2D(), ReLU(),
                           Dropout(0.25), Flatten(), Dense(10, activation="softmax")])

    fused, fused_history, fused_predictions = _train(True, relu_conv_model)
    plain, plain_history, plain_predictions = _train(False, relu_conv_model)
    assert [type(stage).__name__ for stage in passes.stages(fused)] == [
        "ThreadedConv2D", "PoolReluDropout", "Flatten", "ThreadedDense"]
    for a, b in zip(fused.get_weights(), plain.get_weights(), strict=True):
        assert np.array_equal(a, b)
    assert fused_history == plain_history
    assert np.array_equal(fused_predictions, plain_predictions)


def test_plan_recognises_relu_layer_and_pool_without_dropout_and_leaves_others():
    model = Sequential([
        Conv2D(4, 3, input_shape=(9, 9, 2)), MaxPooling2D(), ReLU(), Conv2D(3, 2), MaxPooling2D(),
        Activation("relu"), Dropout(0.5, noise_shape=(None, 1, 1, 3)), Flatten(), Dense(3, activation="softmax"),
    ])
    stages = engine.plan(model.layers)
    kinds = [type(stage).__name__ for stage in stages]
    assert kinds == ["ConvPoolReluDropout", "ConvPoolReluDropout", "Dropout", "Flatten", "ThreadedDense"]
    assert stages[0].dropout is None and stages[1].dropout is None  # a noise_shape dropout is not fused
    assert [layer.name for layer in stages[0].layers] == [layer.name for layer in model.layers[:3]]
    leaky = Sequential([MaxPooling2D(input_shape=(4, 4, 1)), ReLU(negative_slope=0.1)])
    assert [type(stage).__name__ for stage in engine.plan(leaky.layers)] == ["MaxPooling2D", "ReLU"]


def test_fused_model_with_relu_variants_matches_unfused():
    def build():
        return Sequential([Conv2D(6, 3, input_shape=(28, 28, 1)), MaxPooling2D((3, 3), strides=2, padding="same"),
                           ReLU(), Dropout(0.3), Flatten(), Dense(10, activation="softmax")])

    fused, fused_history, _ = _train(True, build, batch_size=7)
    plain, plain_history, _ = _train(False, build, batch_size=7)
    assert type(passes.stages(fused)[0]).__name__ == "ConvPoolReluDropout"  # overlapping windows: the scatter backward
    for a, b in zip(fused.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for key in plain_history:
        np.testing.assert_allclose(fused_history[key], plain_history[key], rtol=1e-4)


@settings(max_examples=60, deadline=None)
@given(
    batch=st.integers(1, 3), size=st.integers(2, 9), channels=st.integers(1, 4), pool=st.integers(1, 3),
    stride=st.integers(1, 3), padding=st.sampled_from(["valid", "same"]), rate=st.sampled_from([0.0, 0.25, 0.6]),
    dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16),
)
def test_fused_kernel_matches_pool_then_relu_then_dropout_references(batch, size, channels, pool, stride, padding,
                                                                     rate, dtype, seed):
    pool = min(pool, size)
    layer = MaxPooling2D(pool, strides=stride, padding=padding)
    layer.build((size, size, channels))
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((batch, size, size, channels)).astype(dtype)
    geometry = (pool, pool, stride, stride, layer.pad_top, layer.pad_left, layer.out_h, layer.out_w)
    words = draw_random_words(rng, (batch, layer.out_h, layer.out_w, channels)) if rate else None
    y, argmax_index, pass_mask = pool_relu_dropout_forward(z, *geometry, words=words, rate=rate)

    pooled, reference_argmax = maxpool_forward_reference(z, *geometry)
    keep = np.ones(pooled.shape, bool) if words is None else words >= keep_threshold(rate)
    scale = dtype(1 / (1 - rate)) if words is not None else dtype(1)
    expected = np.maximum(pooled, 0) * np.where(keep, scale, 0).astype(dtype)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(argmax_index, reference_argmax)
    np.testing.assert_array_equal(pass_mask.astype(bool), keep & (pooled > 0))

    dy = rng.standard_normal(y.shape).astype(dtype)
    dz = pool_relu_dropout_backward(dy, argmax_index, pass_mask, size, size, rate=rate, dropout=words is not None)
    expected_dz = maxpool_backward_reference(np.where(keep & (pooled > 0), dy * scale, 0).astype(dtype),
                                             reference_argmax, size, size)
    np.testing.assert_allclose(dz, expected_dz, rtol=1e-6, atol=1e-6)
    if stride >= pool:  # windows never overlap: the write-once kernel must give exactly the scatter's values
        window = (pool, pool, stride, stride, layer.pad_top, layer.pad_left)
        dz_disjoint = pool_relu_dropout_backward(dy, argmax_index, pass_mask, size, size, rate=rate,
                                                 dropout=words is not None, window=window)
        np.testing.assert_array_equal(dz_disjoint, dz)


def test_dropout_words_keep_the_requested_fraction():
    rng = np.random.default_rng(1)
    words = draw_random_words(rng, (200, 500))
    for rate in (0.1, 0.25, 0.5, 0.9):
        kept = np.mean(words >= keep_threshold(rate))
        assert kept == pytest.approx(1 - rate, abs=0.005)
    assert keep_threshold(0.0) == 0


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 3), height=st.integers(2, 9), width=st.integers(2, 9), channels=st.integers(1, 5),
       rate=st.sampled_from([None, 0.25, 0.6]), ties=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16))
def test_the_2x2_kernel_gives_the_general_kernels_bits(batch, height, width, channels, rate, ties, dtype, seed):
    from tinynet.kernels.dropout import NO_WORDS
    from tinynet.kernels.fused import _forward_batch, pool_relu_dropout_forward_unchecked

    rng = np.random.default_rng(seed)
    z = rng.standard_normal((batch, height, width, channels)).astype(dtype)
    if ties:  # repeated values and NaNs: the tie and NaN rules must match too
        z = np.round(z).astype(dtype)
        z.flat[rng.integers(0, z.size, 3)] = np.nan
    shape = (batch, height // 2, width // 2, channels)
    words = rng.integers(0, 2**16, shape, dtype=np.uint16) if rate is not None else None
    fast = [np.empty(shape, dtype), np.empty(shape, np.int32), np.empty(shape, np.uint8)]
    pool_relu_dropout_forward_unchecked(z, *fast, words, rate or 0.0, (2, 2, 2, 2, 0, 0))
    general = [np.empty(shape, dtype), np.empty(shape, np.int32), np.empty(shape, np.uint8)]
    scale = dtype(1 / (1 - rate)) if rate is not None else dtype(1)
    _forward_batch(z, *general, words if rate is not None else NO_WORDS, rate is not None,
                   keep_threshold(rate or 0.0), scale, 2, 2, 2, 2, 0, 0)
    for a, b in zip(fast, general, strict=True):
        assert np.array_equal(a, b, equal_nan=True)
    untouched = [np.empty(shape, dtype), np.full(shape, -7, np.int32), np.full(shape, 9, np.uint8)]
    pool_relu_dropout_forward_unchecked(z, *untouched, words, rate or 0.0, (2, 2, 2, 2, 0, 0), record=False)
    assert np.array_equal(untouched[0], general[0], equal_nan=True)
    assert (untouched[1] == -7).all() and (untouched[2] == 9).all()
