"""A slice's whole F(4x4, 3x3) convolution work in one compiled call: transforms and the 36 products together.

The convolution block (:mod:`tinynet.engine.conv_block`) computes a slice of images by F(4x4, 3x3) as a
transform, 36 matrix products and a transform back, and its backward pass as five such steps. Called from Python,
each step takes the GIL between compiled code and BLAS; with the block's slices spread over two threads, a thread
that wants the GIL while the other holds it sleeps, and on a virtual machine waking it costs 20-35 us (a Xeon
guest), more than many of the steps take. Here each of the three pieces is a single ``nogil`` call that runs the
transforms (:mod:`tinynet.kernels.winograd_f4`, :mod:`tinynet.kernels.winograd_f4_gradients`) and makes the
products itself, through the BLAS's ``cblas_?gemm`` (:func:`tinynet.engine.blas.gemm_functions`).

Same numbers: each product is the call ``numpy.matmul`` makes for it on a stack of matrices (one gemm per matrix,
row-major, the same transposition flags and leading dimensions), so a slice gives the bits of the Python steps
(a test compares them). :func:`winograd_forward`, :func:`winograd_kernel_gradient` and
:func:`winograd_input_gradient` take the compiled call where they can and the Python steps otherwise: without
those functions (another BLAS), or for a product with a vector operand, which NumPy hands to gemv.

Math: see the transforms' modules; per slice, with ``U`` the transformed kernel::

    forward:          V = B^T d B (input tiles),   M[k] = V[k] @ U[k],   z = A^T M A + b
    weight gradient:  V as above, dM = A dz A^T,   dU_part[k] = V[k]^T @ dM[k]
    input gradient:   V' = B^T dz' B (dz padded),  M'[k] = V'[k] @ U'[k] (U' the turned kernel's transform),
                      dx = A^T M' A
"""

from __future__ import annotations

import numba
import numpy as np

from tinynet.engine import blas
from tinynet.kernels.winograd_f4 import input_transform_f4, output_transform_f4
from tinynet.kernels.winograd_f4_gradients import output_gradient_transform_f4
from tinynet.kernels.winograd_f5 import input_transform_f5, output_transform_f5

__all__ = ["winograd_forward", "winograd_kernel_gradient", "winograd_input_gradient", "forward_slice",
           "forward_slice_f5", "kernel_gradient_slice", "input_gradient_slice", "stacked_products", "COMPILED"]

# Whether the slices take the compiled calls where the BLAS allows (tests turn it off to compare the two paths).
COMPILED = True

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


@numba.njit(cache=True, nogil=True)
def stacked_products(a, b, out, transpose_a, gemm):
    """``out[k] = a[k] @ b[k]`` (``a[k]^T @ b[k]`` when ``transpose_a``) for each matrix of the stacks, C-contiguous
    3-D arrays of one dtype, as ``numpy.matmul`` calls gemm for them: row-major, ``a`` transposed when read
    through its transpose, leading dimensions the rows' lengths."""
    one, zero = out.dtype.type(1), out.dtype.type(0)
    rows, columns = out.shape[1], out.shape[2]
    inner = a.shape[1] if transpose_a else a.shape[2]
    trans_a = np.int32(_TRANS if transpose_a else _NO_TRANS)
    for k in range(out.shape[0]):
        gemm(np.int32(_ROW_MAJOR), trans_a, np.int32(_NO_TRANS), rows, columns, inner, one, a[k].ctypes.data,
             a.shape[2], b[k].ctypes.data, b.shape[2], zero, out[k].ctypes.data, out.shape[2])


@numba.njit(cache=True, nogil=True)
def forward_slice(x, tiles, products, transformed_kernel, bias, use_bias, z, pad_top, pad_left, tiles_h, tiles_w,
                  gemm):
    """``z (images, out_h, out_w, F)``: the slice ``x``'s convolution (plus ``bias`` when ``use_bias``), through the
    work arrays ``tiles (36, T, C)`` and ``products (36, T, F)``."""
    input_transform_f4(x, tiles, pad_top, pad_left, tiles_h, tiles_w)
    stacked_products(tiles, transformed_kernel, products, False, gemm)
    output_transform_f4(products, bias, use_bias, z, tiles_h, tiles_w)


@numba.njit(cache=True, nogil=True)
def forward_slice_f5(x, tiles, products, transformed_kernel, bias, use_bias, z, tiles_h, tiles_w, gemm):
    """:func:`forward_slice` by F(5x5, 3x3) (:mod:`tinynet.kernels.winograd_f5`, valid convolution): ``z`` the
    top-left part of the map that its 5x5 tiles cover, through ``tiles (49, T, C)`` and ``products (49, T, F)``."""
    input_transform_f5(x, tiles, tiles_h, tiles_w)
    stacked_products(tiles, transformed_kernel, products, False, gemm)
    output_transform_f5(products, bias, use_bias, z, tiles_h, tiles_w)


@numba.njit(cache=True, nogil=True)
def kernel_gradient_slice(x, dz, tiles, products, out, pad_top, pad_left, tiles_h, tiles_w, gemm):
    """``out (36, C, F)``: the slice's share of the weight gradient in the Winograd domain, ``V^T @ dM``."""
    input_transform_f4(x, tiles, pad_top, pad_left, tiles_h, tiles_w)
    output_gradient_transform_f4(dz, products, tiles_h, tiles_w)
    stacked_products(tiles, products, out, True, gemm)


@numba.njit(cache=True, nogil=True)
def input_gradient_slice(dz, tiles, products, turned_kernel, no_bias, dx, pad_top, pad_left, tiles_h, tiles_w,
                         gemm):
    """``dx``: the slice's input gradient, a correlation of ``dz`` (padded by ``pad_top``, ``pad_left``) with the
    turned kernel's transform ``turned_kernel (36, F, C)``."""
    input_transform_f4(dz, tiles, pad_top, pad_left, tiles_h, tiles_w)
    stacked_products(tiles, turned_kernel, products, False, gemm)
    output_transform_f4(products, no_bias, False, dx, tiles_h, tiles_w)


def _gemm_for(dtype: np.dtype, *sizes: int) -> object | None:
    """The BLAS's gemm for ``dtype`` that compiled code can call, or ``None``: the Python steps then, with the same
    numbers. Also ``None`` when a product's ``sizes`` (rows, columns, inner) hold a 1: NumPy multiplies a vector by
    gemv, which rounds otherwise."""
    functions = blas.gemm_functions() if COMPILED and min(sizes, default=2) >= 2 else None
    if functions is None:
        return None
    return functions[0] if dtype == np.float32 else functions[1] if dtype == np.float64 else None


def winograd_forward(x: np.ndarray, tiles: np.ndarray, products: np.ndarray, transformed_kernel: np.ndarray,
                     bias: np.ndarray, use_bias: bool, z: np.ndarray, pad_top: int, pad_left: int, tiles_h: int,
                     tiles_w: int) -> None:
    """:func:`forward_slice`, or its steps from Python."""
    gemm = _gemm_for(x.dtype, tiles.shape[1], products.shape[2], tiles.shape[2])
    if gemm is not None:
        forward_slice(x, tiles, products, transformed_kernel, bias, use_bias, z, pad_top, pad_left, tiles_h,
                      tiles_w, gemm)
        return
    input_transform_f4(x, tiles, pad_top, pad_left, tiles_h, tiles_w)
    np.matmul(tiles, transformed_kernel, out=products)
    output_transform_f4(products, bias, use_bias, z, tiles_h, tiles_w)


def winograd_kernel_gradient(x: np.ndarray, dz: np.ndarray, tiles: np.ndarray, products: np.ndarray,
                             out: np.ndarray, pad_top: int, pad_left: int, tiles_h: int, tiles_w: int) -> None:
    """:func:`kernel_gradient_slice`, or its steps from Python."""
    gemm = _gemm_for(x.dtype, out.shape[1], out.shape[2], tiles.shape[1])
    if gemm is not None:
        kernel_gradient_slice(x, dz, tiles, products, out, pad_top, pad_left, tiles_h, tiles_w, gemm)
        return
    input_transform_f4(x, tiles, pad_top, pad_left, tiles_h, tiles_w)
    output_gradient_transform_f4(dz, products, tiles_h, tiles_w)
    np.matmul(tiles.transpose(0, 2, 1), products, out=out)


def winograd_input_gradient(dz: np.ndarray, tiles: np.ndarray, products: np.ndarray, turned_kernel: np.ndarray,
                            no_bias: np.ndarray, dx: np.ndarray, pad_top: int, pad_left: int, tiles_h: int,
                            tiles_w: int) -> None:
    """:func:`input_gradient_slice`, or its steps from Python."""
    gemm = _gemm_for(dz.dtype, tiles.shape[1], products.shape[2], tiles.shape[2])
    if gemm is not None:
        input_gradient_slice(dz, tiles, products, turned_kernel, no_bias, dx, pad_top, pad_left, tiles_h, tiles_w,
                             gemm)
        return
    input_transform_f4(dz, tiles, pad_top, pad_left, tiles_h, tiles_w)
    np.matmul(tiles, turned_kernel, out=products)
    output_transform_f4(products, no_bias, False, dx, tiles_h, tiles_w)
