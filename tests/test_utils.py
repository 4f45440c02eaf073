"""to_categorical, seeds and the backend settings (floatx, epsilon, layer names)."""

from __future__ import annotations

import numpy as np
import pytest

from tinynet import backend
from tinynet.layers import Conv2D, Dense, Dropout
from tinynet.utils import set_random_seed, to_categorical


def test_to_categorical_one_hot_rows():
    y = to_categorical([2, 0, 1, 2])
    assert y.dtype == np.float32 and y.shape == (4, 3)
    np.testing.assert_array_equal(y, [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(np.argmax(to_categorical(np.arange(10), 10), axis=1), np.arange(10))


def test_to_categorical_num_classes_dtype_and_shapes():
    assert to_categorical(np.array([1, 0]), num_classes=5).shape == (2, 5)
    assert to_categorical(np.array([[1], [3]])).shape == (2, 4)          # trailing size-1 axis squeezed
    assert to_categorical(np.array([[1, 2], [0, 1]])).shape == (2, 2, 3)  # other shapes gain an axis
    assert to_categorical(np.array([1, 0], dtype=np.uint8), dtype="float64").dtype == np.float64
    np.testing.assert_array_equal(to_categorical(np.array([1.0, 0.0])), [[0, 1], [1, 0]])
    assert to_categorical(np.array([], dtype=int), num_classes=3).shape == (0, 3)


@pytest.mark.parametrize(("y", "kwargs", "error", "message"), [
    ([0, 3], dict(num_classes=3), ValueError, r"to_categorical: label 3 is out of range for num_classes=3"),
    ([0, -1], {}, ValueError, r"to_categorical: labels must be >= 0, got minimum -1"),
    ([0.5, 1.0], {}, TypeError, r"to_categorical: y must hold integer class labels, got non-integer floats"),
    (["a"], {}, TypeError, r"to_categorical: y must hold integer class labels, got dtype <U1"),
    ([0, 1], dict(num_classes=0), ValueError, r"to_categorical: num_classes must be a positive int, got 0"),
])
def test_to_categorical_errors(y, kwargs, error, message):
    with pytest.raises(error, match=message):
        to_categorical(np.array(y), **kwargs)


def test_set_random_seed_repeats_weights_and_dropout_masks():
    def draw(seed):
        set_random_seed(seed)
        layer = Conv2D(3, 2)
        layer.build((4, 4, 1))
        mask = Dropout(0.5).forward(np.ones((1, 50)), training=True)
        return layer.params["kernel"].copy(), mask

    kernel_a, mask_a = draw(42)
    kernel_b, mask_b = draw(42)
    np.testing.assert_array_equal(kernel_a, kernel_b)
    np.testing.assert_array_equal(mask_a, mask_b)
    kernel_c, mask_c = draw(43)
    assert not np.array_equal(kernel_a, kernel_c) and not np.array_equal(mask_a, mask_c)
    assert set_random_seed is backend.set_random_seed


@pytest.mark.parametrize("seed", [-1, 1.5, "1", True])
def test_set_random_seed_rejects_non_integers(seed):
    with pytest.raises(ValueError, match=r"set_random_seed: expected a non-negative integer seed"):
        set_random_seed(seed)


def test_floatx_controls_new_layers():
    assert backend.floatx() == "float32"  # restored by the autouse fixture
    assert Dense(2).dtype == np.float32
    backend.set_floatx("float64")
    layer = Dense(2)
    layer.build((3,))
    assert layer.dtype == np.float64 and layer.params["kernel"].dtype == np.float64
    assert layer.forward(np.ones((1, 3), dtype=np.float32)).dtype == np.float64
    assert Dense(2, dtype="float32").dtype == np.float32
    with pytest.raises(ValueError, match=r"set_floatx: expected 'float32' or 'float64', got 'float16'"):
        backend.set_floatx("float16")
    assert backend.float_dtype(None) == np.float64


def test_epsilon_and_names():
    assert backend.epsilon() == 1e-7
    assert [Dense(1).name, Dense(1).name, Conv2D(1, 1).name] == ["dense_1", "dense_2", "conv2d_1"]
    backend.clear_session()
    assert Dense(1).name == "dense_1"
    assert backend.unique_name("sequential") == "sequential_1"
