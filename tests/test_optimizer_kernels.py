"""Each optimizer kernel against its plain NumPy reference, bit for bit, in float32 and float64; the count of
non-finite updated values; and the operand checks that keep the unchecked loops inside their arrays."""

from __future__ import annotations

import numpy as np
import pytest

from tinynet.kernels.adadelta import adadelta_update, adadelta_update_reference
from tinynet.kernels.adagrad import adagrad_update, adagrad_update_reference
from tinynet.kernels.adam import adam_update, adam_update_reference
from tinynet.kernels.adamax import adamax_update, adamax_update_reference
from tinynet.kernels.nadam import nadam_update, nadam_update_reference
from tinynet.kernels.rmsprop import rmsprop_update, rmsprop_update_reference

# name -> (kernel, reference, number of slots, scalar arguments after the slots)
KERNELS = {
    "rmsprop": (rmsprop_update, rmsprop_update_reference, 1, (0.01, 0.9, 1e-7)),
    "adagrad": (adagrad_update, adagrad_update_reference, 1, (0.05, 1e-7)),
    "adadelta": (adadelta_update, adadelta_update_reference, 2, (1.0, 0.95, 1e-7)),
    "adam": (adam_update, adam_update_reference, 2, (None, 0.003, 0.9, 0.999, 1e-7)),
    "amsgrad": (adam_update, adam_update_reference, 3, (0.003, 0.9, 0.999, 1e-7)),
    "adamw": (adam_update, adam_update_reference, 2, (None, 0.003, 0.9, 0.999, 1e-7, 0.004, 0.01)),
    "adamax": (adamax_update, adamax_update_reference, 2, (0.002, 0.9, 0.999, 1e-7)),
    "nadam": (nadam_update, nadam_update_reference, 2, (0.002, 0.9, 0.999, 1e-7, 0.43, 0.2, 0.002, 0.45, 0.46)),
}


def _operands(slot_count, dtype, shape=(7, 5), seed=0):
    rng = np.random.default_rng(seed)
    param = rng.standard_normal(shape).astype(dtype)
    slots = [np.abs(rng.standard_normal(shape)).astype(dtype) * 0.1 for _ in range(slot_count)]
    return param, slots


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(KERNELS))
def test_kernel_gives_the_bits_of_its_numpy_reference(name, dtype):
    kernel, reference, slot_count, scalars = KERNELS[name]
    param, slots = _operands(slot_count, dtype)
    expected_param, expected_slots = param.copy(), [slot.copy() for slot in slots]
    rng = np.random.default_rng(1)
    for _ in range(5):
        grad = rng.standard_normal(param.shape).astype(dtype)
        assert kernel(param, grad, *slots, *scalars) == 0
        reference(expected_param, grad, *expected_slots, *scalars)
        np.testing.assert_array_equal(param, expected_param, strict=True)
        for slot, expected in zip(slots, expected_slots, strict=True):
            np.testing.assert_array_equal(slot, expected, strict=True)


@pytest.mark.parametrize("name", list(KERNELS))
def test_kernel_counts_non_finite_updated_values(name):
    kernel, _, slot_count, scalars = KERNELS[name]
    param, slots = _operands(slot_count, np.float64)
    grad = np.ones_like(param)
    grad[0, 0], grad[1, 2] = np.nan, np.inf
    assert kernel(param, grad, *slots, *scalars) == 2
    assert np.isfinite(param).sum() == param.size - 2


@pytest.mark.parametrize("name", list(KERNELS))
def test_kernel_refuses_operands_it_would_index_out_of_bounds(name):
    kernel, _, slot_count, scalars = KERNELS[name]
    param, slots = _operands(slot_count, np.float64)
    grad = np.ones_like(param)
    with pytest.raises(ValueError, match="grad has shape"):
        kernel(param, grad[:3], *slots, *scalars)
    short = [slots[0][:2], *slots[1:]]
    with pytest.raises(ValueError, match=r"has shape \(2, 5\)"):
        kernel(param, grad, *short, *scalars)
    wrong_dtype = [slots[0].astype(np.float32), *slots[1:]]
    with pytest.raises(ValueError, match="dtype float32"):
        kernel(param, grad, *wrong_dtype, *scalars)
    with pytest.raises(ValueError, match="param must be a writeable C-contiguous"):
        kernel(np.asfortranarray(param), grad, *slots, *scalars)
    with pytest.raises(TypeError, match="param must be a float array"):
        kernel(param.astype(np.int64), grad, *slots, *scalars)


def test_amsgrad_keeps_the_largest_second_moment():
    param = np.zeros(3)
    first, second, largest = np.zeros(3), np.array([1.0, 0.0, 4.0]), np.array([2.0, 0.0, 1.0])
    adam_update(param, np.zeros(3), first, second, largest, 0.1, 0.9, 0.5, 1e-7)
    np.testing.assert_array_equal(second, [0.5, 0.0, 2.0])
    np.testing.assert_array_equal(largest, [2.0, 0.0, 2.0])


def test_adamw_decays_the_weights_even_with_a_zero_gradient():
    param = np.array([1.0, -2.0])
    adam_update(param, np.zeros(2), np.zeros(2), np.zeros(2), None, 0.1, 0.9, 0.999, 1e-7, 0.5, 0.2)
    np.testing.assert_array_equal(param, [1.0 - 1.0 * 0.5 * 0.2, -2.0 + 2.0 * 0.5 * 0.2])
