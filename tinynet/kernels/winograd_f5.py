"""Winograd's F(5x5, 3x3): a 3x3, stride-1 convolution on 5x5 output tiles, for inference before 2x2 pooling.

The tutorial's second convolution has an 11x11 output, and the 2x2 pooling after it reads only its top-left
10x10 (Keras floors 11 / 2). :mod:`tinynet.kernels.winograd_f4` covers 11x11 with 3x3 tiles of 4x4 outputs: 9 tiles
of 36 multiplications, 324 per (channel, filter) pair. Four tiles of 5x5 outputs cover the 10x10 exactly, with 49
multiplications each: 196, 40 % fewer, and the 49 matrix products that replace them are most of the block's time.

In one dimension, five outputs of a 3-tap correlation from seven inputs take seven multiplications,
``y = A^T [(G g) * (B^T d)]``, with the interpolation points 0, 1, -1, 2, -2, 1/2 and infinity (the Toom-Cook
construction; B^T's rows scaled to integers, the factors moved into G, which is applied in float64 once per
kernel)::

    B^T = [[4, -8, -5,  10,   1, -2, 0],     G = [[  1/4,     0,    0],     A^T = [[1, 1,  1,  1,  1,    1, 0],
           [0, -4,  4,   9,  -1, -2, 0],          [  1/6,   1/6,  1/6],            [0, 1, -1,  2, -2,  1/2, 0],
           [0, -4, 12,  -7,  -3,  2, 0],          [ 1/18, -1/18, 1/18],            [0, 1,  1,  4,  4,  1/4, 0],
           [0,  2, -3,  -4,   3,  2, 0],          [ 1/72,  1/36, 1/18],            [0, 1, -1,  8, -8,  1/8, 0],
           [0,  2, -5,   0,   5, -2, 0],          [1/120, -1/60, 1/30],            [0, 1,  1, 16, 16, 1/16, 1]]
           [0,  4,  0,  -5,   0,  1, 0],          [32/45, 16/45, 8/45],
           [0, -4,  8,   5, -10, -1, 2]]          [    0,     0,  1/2]]

Nested as in F(4x4, 3x3): ``Y = A^T [(G g G^T) * (B^T d B)] A`` for a 7x7 input tile ``d``, and over channels 49
matrix products ``M[k] = V[k] @ U[k]``. The larger transforms round a little more: on the tutorial's second
convolution (ReLU'd inputs, Glorot-uniform kernel) the float32 result differs from the exact sum by at most 5.9e-6
of the outputs' largest magnitude (F(4x4, 3x3): 5.1e-6), in float64 by about 1e-14. Tests bound both.

Only inference uses it (:mod:`tinynet.engine.compiled_inference`, when it needs fewer multiplications than
F(4x4, 3x3) for the part of the map the pooling reads); training keeps F(4x4, 3x3) and its recorded winners over the
whole map. The transforms loop with the channel (or filter) innermost, so the compiler vectorises them.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["kernel_transform_f5", "input_transform_f5", "output_transform_f5", "tile_counts_f5",
           "multiplications", "winograd_f5_reference", "TILE", "POSITIONS"]

TILE = 5  # outputs per tile side
POSITIONS = 49  # 7x7 elementwise products per tile: the number of matrix products


def tile_counts_f5(out_h: int, out_w: int) -> tuple[int, int]:
    """How many 5x5 output tiles cover an ``out_h x out_w`` output."""
    return (out_h + 4) // 5, (out_w + 4) // 5


def multiplications(out_h: int, out_w: int, tile: int) -> int:
    """Multiplications per (channel, filter) pair to cover ``out_h x out_w`` with ``tile x tile`` output tiles
    of a 3x3 kernel (``(tile + 2)^2`` a tile): how the engine picks F(4x4, 3x3) or F(5x5, 3x3)."""
    return -(-out_h // tile) * -(-out_w // tile) * (tile + 2) ** 2


@numba.njit(cache=True, nogil=True)
def _kernel_transform_f5(kernel, U):
    """``U[7a + b, c, f] = (G g G^T)[a, b]`` for ``g = kernel[:, :, c, f]``, in float64, the filters innermost."""
    G = np.array([[1 / 4, 0.0, 0.0], [1 / 6, 1 / 6, 1 / 6], [1 / 18, -1 / 18, 1 / 18], [1 / 72, 1 / 36, 1 / 18],
                  [1 / 120, -1 / 60, 1 / 30], [32 / 45, 16 / 45, 8 / 45], [0.0, 0.0, 1 / 2]])
    filters = kernel.shape[3]
    rows = np.empty((7, 3, filters))  # G g for one input channel
    for c in range(kernel.shape[2]):
        for a in range(7):
            for j in range(3):
                for f in range(filters):
                    rows[a, j, f] = (G[a, 0] * float(kernel[0, j, c, f]) + G[a, 1] * float(kernel[1, j, c, f])
                                     + G[a, 2] * float(kernel[2, j, c, f]))
        for a in range(7):
            for b in range(7):
                for f in range(filters):
                    U[7 * a + b, c, f] = G[b, 0] * rows[a, 0, f] + G[b, 1] * rows[a, 1, f] + G[b, 2] * rows[a, 2, f]


def kernel_transform_f5(kernel: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``U (49, C, F)`` for a ``(3, 3, C, F)`` kernel, in the kernel's dtype (computed in float64)."""
    if kernel.ndim != 4 or kernel.shape[:2] != (3, 3):
        raise ValueError(f"kernel_transform_f5: kernel must be (3, 3, C, F), got {kernel.shape}")
    channels, filters = kernel.shape[2], kernel.shape[3]
    if out is None:
        out = np.empty((POSITIONS, channels, filters), dtype=kernel.dtype)
    elif out.shape != (POSITIONS, channels, filters) or out.dtype != kernel.dtype:
        raise ValueError(f"kernel_transform_f5: out must be {(POSITIONS, channels, filters)} {kernel.dtype}, "
                         f"got {out.shape} {out.dtype}")
    _kernel_transform_f5(kernel, out)
    return out


@numba.njit(cache=True, nogil=True)
def input_transform_f5(x, V, tiles_h, tiles_w):
    """``V[k, t, c] = (B^T d B)[k]`` for every image's tiles ``t`` (row-major, image by image) and channel ``c``,
    ``d`` the 7x7 input patch at ``(5 * tile_row, 5 * tile_col)``, zero outside ``x``.

    Per row of tiles: ``B^T d`` for the seven image rows under it, as seven long loops over every (column,
    channel) of them (a zero-bordered copy of the rows, so that every tile reads seven whole columns); then per
    tile and output row, ``(B^T d) B`` over the channels."""
    batch, height, width, channels = x.shape
    dtype = x.dtype.type
    two, three, four, five = dtype(2), dtype(3), dtype(4), dtype(5)
    seven, eight, nine, ten, twelve = dtype(7), dtype(8), dtype(9), dtype(10), dtype(12)
    padded_width = 5 * tiles_w + 2
    rows = np.zeros((7, padded_width * channels), dtype=x.dtype)  # the tile row's seven image rows, zero-bordered
    combined = np.empty((7, padded_width * channels), dtype=x.dtype)  # B^T d for the tile row
    span = min(width, padded_width) * channels
    for n in range(batch):
        for ti in range(tiles_h):
            for a in range(7):
                h = 5 * ti + a
                if h < height:
                    source = x[n, h].reshape(-1)
                    for e in range(span):
                        rows[a, e] = source[e]
                else:
                    rows[a, :span] = 0
            d0, d1, d2, d3, d4, d5, d6 = rows[0], rows[1], rows[2], rows[3], rows[4], rows[5], rows[6]
            for e in range(padded_width * channels):
                combined[0, e] = four * d0[e] - eight * d1[e] - five * d2[e] + ten * d3[e] + d4[e] - two * d5[e]
            for e in range(padded_width * channels):
                combined[1, e] = -four * d1[e] + four * d2[e] + nine * d3[e] - d4[e] - two * d5[e]
            for e in range(padded_width * channels):
                combined[2, e] = -four * d1[e] + twelve * d2[e] - seven * d3[e] - three * d4[e] + two * d5[e]
            for e in range(padded_width * channels):
                combined[3, e] = two * d1[e] - three * d2[e] - four * d3[e] + three * d4[e] + two * d5[e]
            for e in range(padded_width * channels):
                combined[4, e] = two * d1[e] - five * d2[e] + five * d4[e] - two * d5[e]
            for e in range(padded_width * channels):
                combined[5, e] = four * d1[e] - five * d3[e] + d5[e]
            for e in range(padded_width * channels):
                combined[6, e] = (-four * d1[e] + eight * d2[e] + five * d3[e] - ten * d4[e] - d5[e]
                                  + two * d6[e])
            for tj in range(tiles_w):
                t = (n * tiles_h + ti) * tiles_w + tj
                first = 5 * tj * channels
                for i in range(7):
                    row = combined[i, first:first + 7 * channels]
                    k = 7 * i
                    for c in range(channels):
                        e0, e1, e2 = row[c], row[channels + c], row[2 * channels + c]
                        e3, e4, e5 = row[3 * channels + c], row[4 * channels + c], row[5 * channels + c]
                        e6 = row[6 * channels + c]
                        V[k, t, c] = four * e0 - eight * e1 - five * e2 + ten * e3 + e4 - two * e5
                        V[k + 1, t, c] = -four * e1 + four * e2 + nine * e3 - e4 - two * e5
                        V[k + 2, t, c] = -four * e1 + twelve * e2 - seven * e3 - three * e4 + two * e5
                        V[k + 3, t, c] = two * e1 - three * e2 - four * e3 + three * e4 + two * e5
                        V[k + 4, t, c] = two * e1 - five * e2 + five * e4 - two * e5
                        V[k + 5, t, c] = four * e1 - five * e3 + e5
                        V[k + 6, t, c] = -four * e1 + eight * e2 + five * e3 - ten * e4 - e5 + two * e6


@numba.njit(cache=True, nogil=True)
def output_transform_f5(M, bias, use_bias, z, tiles_h, tiles_w):
    """``z[n, 5*ti + a, 5*tj + b, f] = (A^T M A)[a, b] (+ bias[f])`` for the tiles' outputs inside ``z``."""
    batch, out_h, out_w, filters = z.shape
    s = np.empty((5, 7, filters), dtype=z.dtype)
    dtype = z.dtype.type
    zero, two, four, eight, sixteen = dtype(0), dtype(2), dtype(4), dtype(8), dtype(16)
    half, quarter, eighth, sixteenth = dtype(0.5), dtype(0.25), dtype(0.125), dtype(0.0625)
    for n in range(batch):
        for ti in range(tiles_h):
            for tj in range(tiles_w):
                t = (n * tiles_h + ti) * tiles_w + tj
                for j in range(7):  # A^T M: combine the seven rows, column j at a time
                    for f in range(filters):
                        m0, m1, m2 = M[j, t, f], M[7 + j, t, f], M[14 + j, t, f]
                        m3, m4, m5, m6 = M[21 + j, t, f], M[28 + j, t, f], M[35 + j, t, f], M[42 + j, t, f]
                        s[0, j, f] = m0 + m1 + m2 + m3 + m4 + m5
                        s[1, j, f] = m1 - m2 + two * m3 - two * m4 + half * m5
                        s[2, j, f] = m1 + m2 + four * m3 + four * m4 + quarter * m5
                        s[3, j, f] = m1 - m2 + eight * m3 - eight * m4 + eighth * m5
                        s[4, j, f] = m1 + m2 + sixteen * m3 + sixteen * m4 + sixteenth * m5 + m6
                for a in range(5):  # ... times A: combine the seven columns, into the outputs inside z
                    h = 5 * ti + a
                    if h >= out_h:
                        break
                    for b in range(5):
                        w = 5 * tj + b
                        if w >= out_w:
                            break
                        out = z[n, h, w]
                        for f in range(filters):
                            e0, e1, e2, e3 = s[a, 0, f], s[a, 1, f], s[a, 2, f], s[a, 3, f]
                            e4, e5, e6 = s[a, 4, f], s[a, 5, f], s[a, 6, f]
                            if b == 0:
                                value = e0 + e1 + e2 + e3 + e4 + e5
                            elif b == 1:
                                value = e1 - e2 + two * e3 - two * e4 + half * e5
                            elif b == 2:
                                value = e1 + e2 + four * e3 + four * e4 + quarter * e5
                            elif b == 3:
                                value = e1 - e2 + eight * e3 - eight * e4 + eighth * e5
                            else:
                                value = e1 + e2 + sixteen * e3 + sixteen * e4 + sixteenth * e5 + e6
                            out[f] = value + (bias[f] if use_bias else zero)


def winograd_f5_reference(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, out_h: int,
                          out_w: int) -> np.ndarray:
    """The valid F(5x5, 3x3) convolution's top-left ``out_h x out_w`` outputs through the kernels above and one
    batched product (for tests)."""
    tiles_h, tiles_w = tile_counts_f5(out_h, out_w)
    batch, channels, filters = x.shape[0], x.shape[3], kernel.shape[3]
    V = np.empty((POSITIONS, batch * tiles_h * tiles_w, channels), dtype=x.dtype)
    input_transform_f5(np.ascontiguousarray(x), V, tiles_h, tiles_w)
    M = np.matmul(V, kernel_transform_f5(kernel))
    z = np.empty((batch, out_h, out_w, filters), dtype=x.dtype)
    output_transform_f5(M, bias if bias is not None else np.zeros(filters, x.dtype), bias is not None, z,
                        tiles_h, tiles_w)
    return z
