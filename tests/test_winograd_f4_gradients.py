"""The weight gradient of Winograd F(4x4, 3x3) in the Winograd domain: each transform against its adjoint, and the
whole gradient against the direct X_col^T @ dZ."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.kernels import im2col_reference
from tinynet.kernels.winograd_f4 import input_transform_f4, kernel_transform_f4, output_transform_f4, tile_counts_f4
from tinynet.kernels.winograd_f4_gradients import kernel_gradient_transform_f4, output_gradient_transform_f4


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 3), out_h=st.integers(1, 13), out_w=st.integers(1, 13), filters=st.integers(1, 9),
       seed=st.integers(0, 2**16))
def test_the_output_gradient_transform_is_the_adjoint_of_the_output_transform(batch, out_h, out_w, filters, seed):
    rng = np.random.default_rng(seed)
    tiles_h, tiles_w = tile_counts_f4(out_h, out_w)
    M = rng.standard_normal((36, batch * tiles_h * tiles_w, filters))
    dz = rng.standard_normal((batch, out_h, out_w, filters))
    z = np.empty_like(dz)
    output_transform_f4(M, np.zeros(filters), False, z, tiles_h, tiles_w)
    dM = np.empty_like(M)
    output_gradient_transform_f4(dz, dM, tiles_h, tiles_w)
    # <A^T M A, dz> == <M, A dz A^T> (outputs dropped at the edges contribute to neither side)
    np.testing.assert_allclose(np.vdot(z, dz), np.vdot(M, dM), rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(channels=st.integers(1, 6), filters=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_the_kernel_gradient_transform_is_the_adjoint_of_the_kernel_transform(channels, filters, seed):
    rng = np.random.default_rng(seed)
    kernel = rng.standard_normal((3, 3, channels, filters))
    dU = rng.standard_normal((36, channels, filters))
    dW = kernel_gradient_transform_f4(dU, np.empty_like(kernel))
    np.testing.assert_allclose(np.vdot(kernel_transform_f4(kernel), dU), np.vdot(kernel, dW), rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 3), height=st.integers(3, 15), width=st.integers(3, 15), channels=st.integers(1, 12),
       filters=st.integers(1, 9), same=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16))
def test_the_weight_gradient_equals_the_direct_one(batch, height, width, channels, filters, same, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, height, width, channels)).astype(dtype)
    pad = 1 if same else 0
    out_h, out_w = (height, width) if same else (height - 2, width - 2)
    dz = rng.standard_normal((batch, out_h, out_w, filters)).astype(dtype)
    cols = im2col_reference(x.astype(np.float64), 3, 3, 1, 1, pad, pad, out_h, out_w)
    expected = (cols.T @ dz.reshape(-1, filters).astype(np.float64)).reshape(3, 3, channels, filters)
    tiles_h, tiles_w = tile_counts_f4(out_h, out_w)
    tiles = batch * tiles_h * tiles_w
    V = np.empty((36, tiles, channels), dtype)
    input_transform_f4(x, V, pad, pad, tiles_h, tiles_w)
    dM = np.empty((36, tiles, filters), dtype)
    output_gradient_transform_f4(dz, dM, tiles_h, tiles_w)
    dW = kernel_gradient_transform_f4(np.matmul(V.transpose(0, 2, 1), dM), np.empty((3, 3, channels, filters), dtype))
    scale = np.abs(x).max() * np.abs(dz).max() * batch * out_h * out_w
    np.testing.assert_allclose(dW, expected, atol=(1e-5 if dtype == np.float32 else 1e-12) * scale)
