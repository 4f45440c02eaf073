"""Winograd's minimal filtering F(2x2, 3x3): a 3x3, stride-1 convolution with 2.25x fewer multiplications.

Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks" (2016). In one dimension, two outputs of a
3-tap correlation ``y_i = d_i g_0 + d_{i+1} g_1 + d_{i+2} g_2`` from four inputs ``d`` take four
multiplications instead of six::

    y = A^T [ (G g) * (B^T d) ]          (* elementwise)

    B^T = [[1, 0, -1, 0],     G = [[1,    0,    0  ],     A^T = [[1, 1,  1,  0],
           [0, 1,  1, 0],          [1/2,  1/2,  1/2],            [0, 1, -1, -1]]
           [0, -1, 1, 0],          [1/2, -1/2,  1/2],
           [0, 1,  0, -1]]         [0,    0,    1  ]]

Nested, a 4x4 input tile ``d`` and a 3x3 kernel ``g`` give a 2x2 output tile with 16 multiplications instead
of 36: ``Y = A^T [ (G g G^T) * (B^T d B) ] A``. Over channels the elementwise product becomes 16 matrix
products: with ``V[k] = (B^T d B)[k]`` for every tile (rows) and input channel (columns) and
``U[k] = (G g G^T)[k]`` for every input channel (rows) and filter (columns), ``M[k] = V[k] @ U[k]`` and each
tile's outputs are ``A^T M A``. The output is tiled in 2x2 blocks; a tile that hangs over the bottom or right
edge reads zeros and its extra outputs are dropped.

The transforms add and subtract only (``G`` halves), so the result differs from the direct sum by rounding:
about 1e-6 relative in float32 here (tests compare with im2col + GEMM).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["kernel_transform", "input_transform", "output_transform", "tile_counts", "winograd_reference"]

def tile_counts(out_h: int, out_w: int) -> tuple[int, int]:
    """How many 2x2 output tiles cover an ``out_h x out_w`` output."""
    return (out_h + 1) // 2, (out_w + 1) // 2


@numba.njit(cache=True, nogil=True)
def _kernel_transform(kernel, U):
    half = kernel.dtype.type(0.5)
    filters = kernel.shape[3]
    for c in range(kernel.shape[2]):
        for i in range(4):
            # Row i of G g: kernel row 0, half of rows (0 + 1 + 2), half of (0 - 1 + 2), or row 2.
            for f in range(filters):  # innermost and contiguous: vectorised
                if i == 0:
                    a, b, e = kernel[0, 0, c, f], kernel[0, 1, c, f], kernel[0, 2, c, f]
                elif i == 3:
                    a, b, e = kernel[2, 0, c, f], kernel[2, 1, c, f], kernel[2, 2, c, f]
                elif i == 1:
                    a = (kernel[0, 0, c, f] + kernel[1, 0, c, f] + kernel[2, 0, c, f]) * half
                    b = (kernel[0, 1, c, f] + kernel[1, 1, c, f] + kernel[2, 1, c, f]) * half
                    e = (kernel[0, 2, c, f] + kernel[1, 2, c, f] + kernel[2, 2, c, f]) * half
                else:
                    a = (kernel[0, 0, c, f] - kernel[1, 0, c, f] + kernel[2, 0, c, f]) * half
                    b = (kernel[0, 1, c, f] - kernel[1, 1, c, f] + kernel[2, 1, c, f]) * half
                    e = (kernel[0, 2, c, f] - kernel[1, 2, c, f] + kernel[2, 2, c, f]) * half
                # ... times G^T: the same combinations of its three columns.
                U[4 * i + 0, c, f] = a
                U[4 * i + 1, c, f] = (a + b + e) * half
                U[4 * i + 2, c, f] = (a - b + e) * half
                U[4 * i + 3, c, f] = e


def kernel_transform(kernel: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``U`` of shape ``(16, C, F)`` from a Keras kernel ``(3, 3, C, F)``: ``U[4a + b] = (G g G^T)[a, b]``."""
    kernel = np.ascontiguousarray(kernel)
    if out is None:
        out = np.empty((16, kernel.shape[2], kernel.shape[3]), dtype=kernel.dtype)
    _kernel_transform(kernel, out)
    return out


@numba.njit(cache=True, nogil=True)
def input_transform(x, V, pad_top, pad_left, tiles_h, tiles_w):
    """``V[k, t, c] = (B^T d B)[k]`` for every image's tiles ``t`` (row-major, image by image) and channel ``c``,
    ``d`` the 4x4 input patch at ``(2 * tile_row - pad_top, 2 * tile_col - pad_left)``, zero outside ``x``."""
    batch, height, width, channels = x.shape
    zero = x.dtype.type(0)
    d = np.empty((4, 4, channels), dtype=x.dtype)
    for n in range(batch):
        for ti in range(tiles_h):
            for tj in range(tiles_w):
                t = (n * tiles_h + ti) * tiles_w + tj
                for i in range(4):
                    h = 2 * ti + i - pad_top
                    for j in range(4):
                        w = 2 * tj + j - pad_left
                        if 0 <= h < height and 0 <= w < width:
                            for c in range(channels):
                                d[i, j, c] = x[n, h, w, c]
                        else:
                            for c in range(channels):
                                d[i, j, c] = zero
                for j in range(4):  # B^T d: combine rows, column j at a time
                    for c in range(channels):
                        d0, d1, d2, d3 = d[0, j, c], d[1, j, c], d[2, j, c], d[3, j, c]
                        d[0, j, c] = d0 - d2
                        d[1, j, c] = d1 + d2
                        d[2, j, c] = d2 - d1
                        d[3, j, c] = d1 - d3
                for i in range(4):  # (B^T d) B: combine columns
                    for c in range(channels):
                        e0, e1, e2, e3 = d[i, 0, c], d[i, 1, c], d[i, 2, c], d[i, 3, c]
                        V[4 * i + 0, t, c] = e0 - e2
                        V[4 * i + 1, t, c] = e1 + e2
                        V[4 * i + 2, t, c] = e2 - e1
                        V[4 * i + 3, t, c] = e1 - e3


@numba.njit(cache=True, nogil=True)
def output_transform(M, bias, use_bias, z, tiles_h, tiles_w):
    """``z[n, 2*ti + a, 2*tj + b, f] = (A^T M A)[a, b] (+ bias[f])`` for the tiles' outputs inside ``z``."""
    batch, out_h, out_w, filters = z.shape
    for n in range(batch):
        for ti in range(tiles_h):
            for tj in range(tiles_w):
                t = (n * tiles_h + ti) * tiles_w + tj
                h, w = 2 * ti, 2 * tj
                for f in range(filters):
                    # A^T M: rows 0 and 1 of the 2x4 intermediate, then times A on the columns.
                    s00 = M[0, t, f] + M[4, t, f] + M[8, t, f]
                    s01 = M[1, t, f] + M[5, t, f] + M[9, t, f]
                    s02 = M[2, t, f] + M[6, t, f] + M[10, t, f]
                    s03 = M[3, t, f] + M[7, t, f] + M[11, t, f]
                    s10 = M[4, t, f] - M[8, t, f] - M[12, t, f]
                    s11 = M[5, t, f] - M[9, t, f] - M[13, t, f]
                    s12 = M[6, t, f] - M[10, t, f] - M[14, t, f]
                    s13 = M[7, t, f] - M[11, t, f] - M[15, t, f]
                    b = bias[f] if use_bias else z.dtype.type(0)
                    z[n, h, w, f] = s00 + s01 + s02 + b
                    if w + 1 < out_w:
                        z[n, h, w + 1, f] = s01 - s02 - s03 + b
                    if h + 1 < out_h:
                        z[n, h + 1, w, f] = s10 + s11 + s12 + b
                        if w + 1 < out_w:
                            z[n, h + 1, w + 1, f] = s11 - s12 - s13 + b


def winograd_reference(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, pad_top: int, pad_left: int,
                       out_h: int, out_w: int) -> np.ndarray:
    """The whole F(2x2, 3x3) convolution through the kernels above and one batched product (for tests)."""
    tiles_h, tiles_w = tile_counts(out_h, out_w)
    batch, channels, filters = x.shape[0], x.shape[3], kernel.shape[3]
    V = np.empty((16, batch * tiles_h * tiles_w, channels), dtype=x.dtype)
    input_transform(np.ascontiguousarray(x), V, pad_top, pad_left, tiles_h, tiles_w)
    M = np.matmul(V, kernel_transform(kernel))
    z = np.empty((batch, out_h, out_w, filters), dtype=x.dtype)
    output_transform(M, bias if bias is not None else np.zeros(filters, x.dtype), bias is not None, z,
                     tiles_h, tiles_w)
    return z
