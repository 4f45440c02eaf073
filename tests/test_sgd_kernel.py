"""The one-pass SGD kernel gives exactly the bits of the NumPy expression of Keras 2's update."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.kernels.sgd import sgd_update, sgd_update_reference


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 300), learning_rate=st.floats(1e-5, 1.0), momentum=st.sampled_from([0.0, 0.5, 0.9, 0.99]),
       nesterov=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16),
       steps=st.integers(1, 4))
def test_kernel_matches_numpy_expression_bit_for_bit(size, learning_rate, momentum, nesterov, dtype, seed, steps):
    rng = np.random.default_rng(seed)
    param = rng.standard_normal(size).astype(dtype)
    velocity = np.zeros_like(param)
    param_ref, velocity_ref = param.copy(), velocity.copy()
    for _ in range(steps):
        grad = rng.standard_normal(size).astype(dtype)
        sgd_update(param, velocity, grad, learning_rate, momentum, nesterov)
        sgd_update_reference(param_ref, velocity_ref, grad, learning_rate, momentum, nesterov)
    assert np.array_equal(param, param_ref)
    assert np.array_equal(velocity, velocity_ref)
    assert param.dtype == dtype


def test_kernel_updates_multidimensional_parameters_in_place():
    param = np.ones((2, 3, 4), dtype=np.float32)
    view = param
    velocity = np.zeros_like(param)
    sgd_update(param, velocity, np.full(param.shape, 2.0, np.float32), 0.5, 0.9, True)
    # v = -1; p = 1 + (0.9 * -1 - 1) = -0.9
    assert view is param and np.allclose(param, -0.9) and np.allclose(velocity, -1.0)


def test_kernel_counts_updated_values_that_are_not_finite():
    param = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    assert sgd_update(param, None, np.ones(3, np.float32), 0.1, 0.0, False) == 0
    velocity = np.zeros(3, np.float32)
    grad = np.array([0.0, 3e38, -3e38], dtype=np.float32)  # lr * g overflows float32 in two places
    assert sgd_update(param, velocity, grad, 10.0, 0.9, True) == 2
    assert np.isfinite(param[0]) and not np.isfinite(param[1:]).any()


@pytest.mark.parametrize(("param", "velocity", "grad", "message"), [
    (np.zeros(6, np.float32), np.zeros(12, np.float32), np.zeros(6, np.float32), "velocity has shape"),
    (np.zeros(6, np.float32), np.zeros((2, 3), np.float32), np.zeros(6, np.float32), "velocity has shape"),
    (np.zeros(6, np.float32), np.zeros(6, np.float64), np.zeros(6, np.float32), "dtype float64"),
    (np.zeros(6, np.float32), None, np.zeros(6, np.float32), "velocity has shape None"),
    (np.zeros(6, np.float32), np.zeros(6, np.float32), np.zeros(12, np.float32), "grad has shape"),
    (np.zeros((6, 2), np.float32)[:, 0], np.zeros(6, np.float32), np.zeros(6, np.float32), "C-contiguous"),
    (np.zeros(6, np.float32), np.zeros((6, 2), np.float32)[:, 0], np.zeros(6, np.float32), "C-contiguous"),
    (np.zeros(6, np.int32), np.zeros(6, np.int32), np.zeros(6, np.int32), "float array"),
])
def test_kernel_checks_its_operands_before_it_indexes_them(param, velocity, grad, message):
    """The loops index every array by the parameter's positions without bounds checks: a velocity or gradient of
    another size, dtype or layout is refused, and nothing is written."""
    before = param.copy()
    with pytest.raises((ValueError, TypeError), match=message):
        sgd_update(param, velocity, grad + 1, 0.1, 0.9, False)
    np.testing.assert_array_equal(param, before)


def test_kernel_without_momentum_needs_no_velocity_but_checks_the_gradient():
    param = np.zeros(4, np.float64)
    with pytest.raises(ValueError, match=r"grad has shape \(8,\), param has \(4,\)"):
        sgd_update(param, None, np.ones(8), 0.1, 0.0, False)
    assert sgd_update(param, None, np.ones(4), 0.5, 0.0, False) == 0
    np.testing.assert_array_equal(param, -0.5)
