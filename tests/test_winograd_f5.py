"""Winograd F(5x5, 3x3) (inference's second convolution) against im2col + GEMM, and its matrices' identity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.kernels import im2col_reference
from tinynet.kernels.winograd_f5 import (
    kernel_transform_f5,
    multiplications,
    tile_counts_f5,
    winograd_f5_reference,
)

# The module docstring's matrices, as the kernels apply them.
_BT = np.array([[4, -8, -5, 10, 1, -2, 0], [0, -4, 4, 9, -1, -2, 0], [0, -4, 12, -7, -3, 2, 0],
                [0, 2, -3, -4, 3, 2, 0], [0, 2, -5, 0, 5, -2, 0], [0, 4, 0, -5, 0, 1, 0],
                [0, -4, 8, 5, -10, -1, 2]], dtype=float)
_G = np.array([[1 / 4, 0, 0], [1 / 6, 1 / 6, 1 / 6], [1 / 18, -1 / 18, 1 / 18], [1 / 72, 1 / 36, 1 / 18],
               [1 / 120, -1 / 60, 1 / 30], [32 / 45, 16 / 45, 8 / 45], [0, 0, 1 / 2]])
_AT = np.array([[1, 1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 1 / 2, 0], [0, 1, 1, 4, 4, 1 / 4, 0],
                [0, 1, -1, 8, -8, 1 / 8, 0], [0, 1, 1, 16, 16, 1 / 16, 1]])


def test_the_matrices_compute_five_outputs_of_a_three_tap_correlation():
    rng = np.random.default_rng(0)
    for _ in range(20):
        d, g = rng.standard_normal(7), rng.standard_normal(3)
        expected = [d[i:i + 3] @ g for i in range(5)]
        np.testing.assert_allclose(_AT @ ((_G @ g) * (_BT @ d)), expected, rtol=1e-12, atol=1e-12)


def test_kernel_transform_is_g_kernel_g_transposed_and_checks_its_arguments():
    kernel = np.random.default_rng(1).standard_normal((3, 3, 4, 5))
    expected = np.einsum("ai,ijcf,bj->abcf", _G, kernel, _G).reshape(49, 4, 5)
    np.testing.assert_allclose(kernel_transform_f5(kernel), expected, rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match=r"\(3, 3, C, F\)"):
        kernel_transform_f5(np.zeros((5, 5, 4, 5)))
    with pytest.raises(ValueError, match="out must be"):
        kernel_transform_f5(kernel, out=np.empty((36, 4, 5)))
    assert tile_counts_f5(10, 10) == (2, 2) and tile_counts_f5(11, 4) == (3, 1)
    # covering the tutorial's 10x10 read region: 4 tiles of 49 against 9 F(4x4) tiles of 36 over its 11x11
    assert multiplications(10, 10, 5) == 196 and multiplications(11, 11, 4) == 324


@settings(max_examples=60, deadline=None)
@given(batch=st.integers(1, 3), height=st.integers(3, 17), width=st.integers(3, 17), channels=st.integers(1, 20),
       filters=st.integers(1, 9), bias=st.booleans(), shrink=st.tuples(st.integers(0, 1), st.integers(0, 1)),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_f5_equals_the_direct_convolution(batch, height, width, channels, filters, bias, shrink, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, height, width, channels)).astype(dtype)
    kernel = rng.standard_normal((3, 3, channels, filters)).astype(dtype)
    b = rng.standard_normal(filters).astype(dtype) if bias else None
    # the whole valid map, or (as before 2x2 pooling) one row or column less of it
    out_h, out_w = max(1, height - 2 - shrink[0]), max(1, width - 2 - shrink[1])
    cols = im2col_reference(x.astype(np.float64), 3, 3, 1, 1, 0, 0, height - 2, width - 2)
    full = (cols @ kernel.reshape(-1, filters).astype(np.float64)).reshape(batch, height - 2, width - 2, filters)
    expected = full[:, :out_h, :out_w] + (b if bias else 0)
    result = winograd_f5_reference(x, kernel, b, out_h, out_w)
    assert result.dtype == dtype and result.shape == expected.shape
    # B^T reaches 12 and A^T 16: a few times F(4x4, 3x3)'s rounding, still a few 1e-6 of the outputs' possible size
    # in float32 (5.9e-6 of the largest output on the tutorial's second convolution).
    scale = (np.abs(x).max() * np.abs(kernel).max() * 9 * channels + (np.abs(b).max() if bias else 0))
    tolerance = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(result, expected, atol=tolerance * scale)


def test_non_finite_inputs_stay_inside_their_tiles():
    x = np.zeros((1, 12, 12, 2))
    x[0, 1, 1, 0] = np.inf  # inside the first tile's 7x7 inputs only
    kernel = np.ones((3, 3, 2, 3))
    with np.errstate(invalid="ignore"):  # inf - inf inside the first tile's transform
        result = winograd_f5_reference(x, kernel, None, 10, 10)
    assert not np.isfinite(result[0, :5, :5]).all()
    assert np.isfinite(result[0, 5:, 5:]).all() and np.isfinite(result[0, 5:, :5]).all()
