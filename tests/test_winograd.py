"""Winograd F(2x2, 3x3) against im2col + GEMM, alone and inside the fused convolution block."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet import backend, engine
from tinynet.engine import conv_block
from tinynet.kernels import im2col_reference
from tinynet.kernels.winograd import kernel_transform, tile_counts, winograd_reference
from tinynet.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from tinynet.learn.gradcheck import check_model
from tinynet.models import Sequential, passes
from tinynet.utils import set_random_seed


@settings(max_examples=60, deadline=None)
@given(batch=st.integers(1, 3), height=st.integers(3, 12), width=st.integers(3, 12), channels=st.integers(1, 20),
       filters=st.integers(1, 9), same=st.booleans(), bias=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_winograd_equals_the_direct_convolution(batch, height, width, channels, filters, same, bias, dtype, seed):
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
    result = winograd_reference(x, kernel, b, pad, pad, out_h, out_w)
    assert result.dtype == dtype and result.shape == expected.shape
    # The transforms only add (G also halves), so the error is a few roundings of the inputs' size.
    scale = (np.abs(x).max() * np.abs(kernel).max() * 9 * channels + (np.abs(b).max() if bias else 0))
    tolerance = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(result, expected, atol=tolerance * scale)


def test_kernel_transform_is_g_kernel_g_transposed():
    g = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
    kernel = np.random.default_rng(0).standard_normal((3, 3, 4, 5))
    expected = np.einsum("ai,ijcf,bj->abcf", g, kernel, g).reshape(16, 4, 5)
    np.testing.assert_allclose(kernel_transform(kernel), expected, rtol=1e-14, atol=1e-14)
    assert tile_counts(11, 11) == (6, 6) and tile_counts(12, 3) == (6, 2)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_the_block_uses_winograd_for_deep_3x3_convolutions_and_matches_the_layers(padding, use_bias, monkeypatch):
    monkeypatch.setattr(conv_block, "_SLICE_BYTES", 1)  # many slices, a shorter last one
    set_random_seed(4)
    model = Sequential([Conv2D(8, 3, padding=padding, use_bias=use_bias, input_shape=(9, 9, 16)), MaxPooling2D(),
                        Activation("relu"), Dropout(0.3)])
    stage = engine.plan(list(model.layers))[0]
    assert stage._uses_winograd()
    set_random_seed(4)
    twin = Sequential([Conv2D(8, 3, padding=padding, use_bias=use_bias, input_shape=(9, 9, 16)), MaxPooling2D(),
                       Activation("relu"), Dropout(0.3)])
    twin.fuse = False
    x = np.random.default_rng(4).standard_normal((5, 9, 9, 16)).astype(np.float32)
    rng = np.random.default_rng(5)
    for _ in range(2):  # the second time through reuses every buffer
        y = stage.forward(x, training=True)
        reference = passes.forward(twin, x, training=True)
        np.testing.assert_allclose(y, reference, rtol=1e-5, atol=1e-5)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx = stage.backward(dy)
        expected = dy
        for layer in reversed(twin.layers):
            expected = layer.backward(expected)
        np.testing.assert_allclose(dx, expected, rtol=1e-5, atol=1e-5)
        for name in model.layers[0].grads:
            np.testing.assert_allclose(model.layers[0].grads[name], twin.layers[0].grads[name], rtol=1e-4,
                                       atol=1e-4)


def test_model_gradient_check_through_the_winograd_passes():
    backend.set_floatx("float64")  # restored to float32 by the autouse fixture
    set_random_seed(6)
    # Two blocks, the second with 16 input channels: both forward passes by Winograd, the backward through both.
    model = Sequential([Conv2D(16, 3, padding="same", input_shape=(8, 8, 16)), MaxPooling2D(), Activation("relu"),
                        Conv2D(3, 3), MaxPooling2D(), Activation("relu"), Flatten(),
                        Dense(3, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    assert passes.stages(model)[0]._uses_winograd() and passes.stages(model)[1]._uses_winograd()
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 8, 8, 16))
    y = np.eye(3)[rng.integers(0, 3, 3)]
    report = check_model(model, x, y, seed=6, step=1e-5, rtol=1e-4, atol=1e-6)
    assert report.passed, str(report)
