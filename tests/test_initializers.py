"""Initializers: Keras's fans, the Glorot limits of the tutorial's kernels, the distributions, seeds and lookup."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinynet import backend, initializers
from tinynet.initializers import compute_fans
from tinynet.layers import Conv2D, Dense

# (kernel shape, fan_in, fan_out, Glorot limit) for the tutorial CNN's five kernels.
TUTORIAL_KERNELS = [
    ((3, 3, 1, 64), 9, 576, 0.101274),
    ((3, 3, 64, 32), 576, 288, 0.083333),
    ((800, 512), 800, 512, 0.067625),
    ((512, 256), 512, 256, 0.088388),
    ((256, 10), 256, 10, 0.150188),
]


@pytest.mark.parametrize(("shape", "fan_in", "fan_out", "limit"), TUTORIAL_KERNELS)
def test_fans_and_glorot_limits_of_the_tutorial_kernels(shape, fan_in, fan_out, limit):
    assert compute_fans(shape) == (fan_in, fan_out)
    assert math.sqrt(6 / (fan_in + fan_out)) == pytest.approx(limit, abs=5e-7)


def test_compute_fans_for_other_ranks():
    assert compute_fans((5, 7)) == (5, 7)
    assert compute_fans((3, 4, 5)) == (3 * 4, 3 * 5)               # Conv1D kernel (k, in, out)
    assert compute_fans((2, 3, 3, 4, 5)) == (2 * 3 * 3 * 4, 2 * 3 * 3 * 5)
    assert compute_fans((16,)) == (4, 4)                          # Keras: sqrt(size) for odd shapes
    assert compute_fans(()) == (1, 1)


def test_tutorial_layers_draw_kernels_within_and_nearly_reaching_their_limits():
    backend.set_random_seed(0)
    layers = [(Conv2D(64, (3, 3)), (28, 28, 1)), (Conv2D(32, (3, 3)), (13, 13, 64)), (Dense(512), (800,)),
              (Dense(256), (512,)), (Dense(10), (256,))]
    for (layer, input_shape), (shape, _, _, limit) in zip(layers, TUTORIAL_KERNELS, strict=True):
        layer.build(input_shape)
        kernel, bias = layer.get_weights()
        assert kernel.shape == shape and kernel.dtype == np.float32
        largest = np.abs(kernel).max()
        assert largest <= limit + 1e-6
        # A uniform sample of >= 2560 values comes within 1% of the limit (fails for a limit off by > 1%).
        assert largest > 0.99 * limit
        assert abs(kernel.mean()) < 0.05 * limit
        assert kernel.std() == pytest.approx(limit / math.sqrt(3), rel=0.05)
        np.testing.assert_array_equal(bias, 0.0)


def test_he_initializers():
    backend.set_random_seed(1)
    shape = (3, 3, 32, 64)
    fan_in = 3 * 3 * 32
    uniform = initializers.get("he_uniform")(shape)
    limit = math.sqrt(6 / fan_in)
    assert np.abs(uniform).max() <= limit and np.abs(uniform).max() > 0.99 * limit
    normal = initializers.get("he_normal")(shape, dtype="float64")
    assert normal.dtype == np.float64
    stddev = math.sqrt(2 / fan_in) / 0.87962566103423978
    assert np.abs(normal).max() <= 2 * stddev  # truncated at two standard deviations
    assert normal.std() == pytest.approx(math.sqrt(2 / fan_in), rel=0.03)


def test_constants():
    np.testing.assert_array_equal(initializers.get("zeros")((2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(initializers.get("Ones")((4,)), np.ones(4))
    assert initializers.get("zeros")((2,)).dtype == np.float32
    backend.set_floatx("float64")
    assert initializers.get("ones")((2,)).dtype == np.float64


def test_seeds_make_draws_repeatable():
    first = initializers.GlorotUniform(seed=3)((10, 10))
    np.testing.assert_array_equal(initializers.GlorotUniform(seed=3)((10, 10)), first)
    assert not np.array_equal(initializers.GlorotUniform(seed=4)((10, 10)), first)
    backend.set_random_seed(5)
    a = Dense(4)
    a.build((6,))
    backend.set_random_seed(5)
    b = Dense(4)
    b.build((6,))
    np.testing.assert_array_equal(a.params["kernel"], b.params["kernel"])
    backend.set_random_seed(6)
    c = Dense(4)
    c.build((6,))
    assert not np.array_equal(a.params["kernel"], c.params["kernel"])


def test_lookup_serialization_and_errors():
    assert isinstance(initializers.get("glorot_uniform"), initializers.GlorotUniform)
    assert isinstance(initializers.get("GlorotUniform"), initializers.GlorotUniform)
    assert isinstance(initializers.get(initializers.HeNormal), initializers.HeNormal)
    instance = initializers.HeUniform(seed=2)
    assert initializers.get(instance) is instance
    config = initializers.serialize(instance)
    assert config == {"class_name": "he_uniform", "config": {"seed": 2}}
    clone = initializers.deserialize(config)
    np.testing.assert_array_equal(clone((3, 3)), initializers.HeUniform(seed=2)((3, 3)))
    with pytest.raises(ValueError, match=r"initializer: unknown initializer 'xavier'; expected one of zeros, ones"):
        initializers.get("xavier")
    with pytest.raises(TypeError, match=r"kernel_initializer: expected an initializer name or Initializer, got float"):
        initializers.get(0.5, owner="kernel_initializer")
    # A custom initializer object reaches the layer.
    layer = Dense(3, kernel_initializer=initializers.Ones(), bias_initializer="ones")
    layer.build((2,))
    np.testing.assert_array_equal(layer.params["kernel"], 1.0)
    np.testing.assert_array_equal(layer.params["bias"], 1.0)
