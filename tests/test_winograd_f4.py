"""Winograd F(4x4, 3x3) against im2col + GEMM, alone and as the convolution block's inference pass."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.engine import conv_block
from tinynet.kernels import im2col_reference
from tinynet.kernels.winograd_f4 import kernel_transform_f4, tile_counts_f4, winograd_f4_reference
from tinynet.layers import Activation, Conv2D, Dropout, MaxPooling2D
from tinynet.models import Sequential, passes
from tinynet.utils import set_random_seed


@settings(max_examples=60, deadline=None)
@given(batch=st.integers(1, 3), height=st.integers(3, 15), width=st.integers(3, 15), channels=st.integers(1, 20),
       filters=st.integers(1, 9), same=st.booleans(), bias=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_f4_equals_the_direct_convolution(batch, height, width, channels, filters, same, bias, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, height, width, channels)).astype(dtype)
    kernel = rng.standard_normal((3, 3, channels, filters)).astype(dtype)
    b = rng.standard_normal(filters).astype(dtype) if bias else None
    pad = 1 if same else 0
    out_h, out_w = (height, width) if same else (height - 2, width - 2)
    cols = im2col_reference(x.astype(np.float64), 3, 3, 1, 1, pad, pad, out_h, out_w)
    expected = (cols @ kernel.reshape(-1, filters).astype(np.float64)).reshape(batch, out_h, out_w, filters)
    if bias:
        expected += b
    result = winograd_f4_reference(x, kernel, b, pad, pad, out_h, out_w)
    assert result.dtype == dtype and result.shape == expected.shape
    # The transforms scale by up to 8 (A) and 1/24 (G): some 10x F(2x2, 3x3)'s rounding, still a few 1e-6 of the
    # outputs' possible size in float32.
    scale = (np.abs(x).max() * np.abs(kernel).max() * 9 * channels + (np.abs(b).max() if bias else 0))
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(result, expected, atol=tolerance * scale)


def test_kernel_transform_is_g_kernel_g_transposed():
    g = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
                  [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
    kernel = np.random.default_rng(0).standard_normal((3, 3, 4, 5))
    expected = np.einsum("ai,ijcf,bj->abcf", g, kernel, g).reshape(36, 4, 5)
    np.testing.assert_allclose(kernel_transform_f4(kernel), expected, rtol=1e-13, atol=1e-13)
    assert tile_counts_f4(11, 11) == (3, 3) and tile_counts_f4(12, 3) == (3, 1)


def _deep_block(padding, use_bias, rate):
    return Sequential([Conv2D(8, 3, padding=padding, use_bias=use_bias, input_shape=(11, 10, 16)), MaxPooling2D(),
                       Activation("relu"), Dropout(rate)])


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_the_block_predicts_and_trains_through_one_f4_convolution(padding, use_bias, monkeypatch):
    monkeypatch.setattr(conv_block, "_SLICE_BYTES", 1)  # many slices, a shorter last one
    set_random_seed(4)
    model = _deep_block(padding, use_bias, 0.0)
    set_random_seed(4)
    twin = _deep_block(padding, use_bias, 0.0)
    twin.fuse = False
    stage = passes.stages(model)[0]
    assert stage._uses_winograd()
    x = np.random.default_rng(4).standard_normal((5, 11, 10, 16)).astype(np.float32)
    reference = passes.forward(twin, x, training=False)
    for _ in range(2):  # the second time through reuses every buffer
        predicted = stage.forward(x, training=False)
        np.testing.assert_allclose(predicted, reference, rtol=1e-4, atol=1e-4)
    trained = stage.forward(x, training=True)  # rate 0: the same function, the same convolution, the same bits
    assert np.array_equal(trained, predicted)


def test_predict_of_a_model_uses_the_f4_pass_and_agrees_with_the_unfused_model():
    set_random_seed(9)
    model = Sequential([Conv2D(16, 3, input_shape=(28, 28, 1)), MaxPooling2D(), Activation("relu"),
                        Conv2D(8, 3), MaxPooling2D(), Activation("relu")])
    stages = passes.stages(model)
    assert stages[0]._uses_direct() and stages[1]._uses_winograd()
    x = np.random.default_rng(9).random((7, 28, 28, 1), dtype=np.float32)
    fused = model.predict(x, batch_size=4, verbose=0)
    model.fuse = False
    np.testing.assert_allclose(fused, model.predict(x, batch_size=4, verbose=0), rtol=1e-4, atol=1e-5)


def test_predictions_follow_weights_changed_in_place():
    set_random_seed(2)
    model = _deep_block("valid", True, 0.0)
    stage = passes.stages(model)[0]
    x = np.random.default_rng(2).standard_normal((3, 11, 10, 16)).astype(np.float32)
    before = stage.forward(x, training=False)
    assert np.array_equal(stage.forward(x, training=False), before)  # the kept transform gives the same bits
    model.layers[0].params["kernel"][1, 2, 3, 4] += 0.5  # in place, as an optimizer writes
    after = stage.forward(x, training=False)
    model.fuse = False
    np.testing.assert_allclose(after, passes.forward(model, x, training=False), rtol=1e-4, atol=1e-4)
    assert not np.array_equal(after, before)


def test_a_batch_larger_than_a_chunk_predicts_as_whole(monkeypatch):
    set_random_seed(5)
    model = Sequential([Conv2D(16, 3, input_shape=(12, 12, 1)), MaxPooling2D(), Activation("relu"),
                        Conv2D(8, 3), MaxPooling2D(), Activation("relu")])
    x = np.random.default_rng(5).random((11, 12, 12, 1), dtype=np.float32)
    whole = passes.forward(model, x, training=False)
    monkeypatch.setattr(passes, "INFERENCE_CHUNK", 4)  # chunks of 4, 4 and 3
    chunked = passes.forward(model, x, training=False)
    assert chunked.shape == whole.shape
    np.testing.assert_allclose(chunked, whole, rtol=1e-6, atol=1e-6)
