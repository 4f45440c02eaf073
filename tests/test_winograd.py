"""The fused convolution block's Winograd passes (forward and input gradient) against the layers."""

from __future__ import annotations

import numpy as np
import pytest

from tinynet import backend, engine
from tinynet.engine import conv_block
from tinynet.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from tinynet.learn.gradcheck import check_model
from tinynet.models import Sequential, passes
from tinynet.utils import set_random_seed


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
