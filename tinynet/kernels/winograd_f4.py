"""Winograd's minimal filtering F(4x4, 3x3): a 3x3, stride-1 convolution with up to 4x fewer multiplications.

Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks" (2016), section 4. In one dimension, four
outputs of a 3-tap correlation ``y_i = d_i g_0 + d_{i+1} g_1 + d_{i+2} g_2`` from six inputs ``d`` take six
multiplications instead of twelve, ``y = A^T [(G g) * (B^T d)]`` (``*`` elementwise), with the interpolation
points 0, 1, -1, 2, -2 and infinity::

    B^T = [[4,  0, -5,  0, 1, 0],     G = [[ 1/4,     0,    0],     A^T = [[1, 1,  1, 1,  1, 0],
           [0, -4, -4,  1, 1, 0],          [-1/6,  -1/6, -1/6],            [0, 1, -1, 2, -2, 0],
           [0,  4, -4, -1, 1, 0],          [-1/6,   1/6, -1/6],            [0, 1,  1, 4,  4, 0],
           [0, -2, -1,  2, 1, 0],          [ 1/24, 1/12,  1/6],            [0, 1, -1, 8, -8, 1]]
           [0,  2, -1, -2, 1, 0],          [ 1/24, -1/12, 1/6],
           [0,  4,  0, -5, 0, 1]]          [    0,    0,    1]]

Nested, a 6x6 input tile ``d`` and a 3x3 kernel ``g`` give a 4x4 output tile with 36 multiplications instead of
144: ``Y = A^T [(G g G^T) * (B^T d B)] A``. Over channels the elementwise product becomes 36 matrix products:
with ``V[k] = (B^T d B)[k]`` for every tile (rows) and input channel (columns) and ``U[k] = (G g G^T)[k]`` for
every input channel (rows) and filter (columns), ``M[k] = V[k] @ U[k]``, and each tile's outputs are
``A^T M A``. The output is tiled in 4x4 blocks; a tile that hangs over the bottom or right edge reads zeros and
its extra outputs are dropped. On the tutorial's second convolution (11x11 outputs, 9 tiles covering 12x12) that
is 324 multiplications per (channel, filter) pair against the direct sum's 1089 (and 576 for the smaller
F(2x2, 3x3), which tinynet used before: 1.5x slower on the whole block here).

The engine computes both the forward pass and the input gradient this way (:mod:`tinynet.engine.conv_block`;
the input gradient of a 3x3 convolution is itself a 3x3 correlation). The price is rounding: the transforms scale
by up to 8 and 1/24, so the float32 result differs from the direct sum by about 1e-5 of the outputs' scale (the
tests bound it), far inside what a gradient step or a prediction tolerates; in float64, as the gradient checks
run, the difference is 1e-12.

The transforms loop with the channel (or filter) innermost, over contiguous memory, so the compiler vectorises
them; ``winograd_f4_reference`` is the whole convolution through them, for tests.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["kernel_transform_f4", "input_transform_f4", "output_transform_f4", "tile_counts_f4",
           "winograd_f4_reference"]


def tile_counts_f4(out_h: int, out_w: int) -> tuple[int, int]:
    """How many 4x4 output tiles cover an ``out_h x out_w`` output."""
    return (out_h + 3) // 4, (out_w + 3) // 4


@numba.njit(cache=True, nogil=True)
def _kernel_transform_f4(kernel, U):
    """``U[6a + b, c, f] = (G g G^T)[a, b]`` for ``g = kernel[:, :, c, f]``, computed in float64 with the filters
    innermost (vectorised: about 50 us a call for the tutorial's 64 x 32 kernel, against 400 value by value)."""
    filters = kernel.shape[3]
    quarter, sixth, twelfth, twenty_fourth = 1.0 / 4.0, 1.0 / 6.0, 1.0 / 12.0, 1.0 / 24.0
    rows = np.empty((6, 3, filters))  # G g for one input channel
    for c in range(kernel.shape[2]):
        for j in range(3):  # G g: the six combinations of the kernel's rows, column j at a time
            for f in range(filters):
                g0, g1, g2 = float(kernel[0, j, c, f]), float(kernel[1, j, c, f]), float(kernel[2, j, c, f])
                rows[0, j, f] = g0 * quarter
                rows[1, j, f] = -(g0 + g1 + g2) * sixth
                rows[2, j, f] = -(g0 - g1 + g2) * sixth
                rows[3, j, f] = g0 * twenty_fourth + g1 * twelfth + g2 * sixth
                rows[4, j, f] = g0 * twenty_fourth - g1 * twelfth + g2 * sixth
                rows[5, j, f] = g2
        for i in range(6):  # ... times G^T: the same combinations of the three columns
            for f in range(filters):
                g0, g1, g2 = rows[i, 0, f], rows[i, 1, f], rows[i, 2, f]
                U[6 * i + 0, c, f] = g0 * quarter
                U[6 * i + 1, c, f] = -(g0 + g1 + g2) * sixth
                U[6 * i + 2, c, f] = -(g0 - g1 + g2) * sixth
                U[6 * i + 3, c, f] = g0 * twenty_fourth + g1 * twelfth + g2 * sixth
                U[6 * i + 4, c, f] = g0 * twenty_fourth - g1 * twelfth + g2 * sixth
                U[6 * i + 5, c, f] = g2


def kernel_transform_f4(kernel: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``U`` of shape ``(36, C, F)`` from a Keras kernel ``(3, 3, C, F)``."""
    kernel = np.ascontiguousarray(kernel)
    if out is None:
        out = np.empty((36, kernel.shape[2], kernel.shape[3]), dtype=kernel.dtype)
    _kernel_transform_f4(kernel, out)
    return out


@numba.njit(cache=True, nogil=True)
def input_transform_f4(x, V, pad_top, pad_left, tiles_h, tiles_w):
    """``V[k, t, c] = (B^T d B)[k]`` for every image's tiles ``t`` (row-major, image by image) and channel ``c``,
    ``d`` the 6x6 input patch at ``(4 * tile_row - pad_top, 4 * tile_col - pad_left)``, zero outside ``x``.

    The loops are shaped for the compiler rather than for the eye, because a 64-channel loop per tile value
    spends more time starting than running (11 us an image for the tutorial's 13x13x64 maps, 5 us as here):

    - each image is first copied into ``phased[row, m, u, c]`` = the zero-bordered image at column ``4u + m``:
      the columns split by their position within a tile (tiles start every 4 columns);
    - ``B^T d`` for a whole row of tiles is then six long loops over every (phase, column, channel) of the six
      image rows under it;
    - and ``(B^T d) B`` for the row of tiles is six loops per tile row ``i`` over (tile, channel): in the phased
      layout, column ``j`` of tile ``u`` is phase ``j`` of ``u`` (``j`` < 4) or phase ``j - 4`` of ``u + 1``, so
      every operand is a fixed offset from the loop index. The offsets are unsigned so that no negative-index
      wrap-around test stands in the way of vectorisation.
    """
    batch, height, width, channels = x.shape
    two, four, five = x.dtype.type(2), x.dtype.type(4), x.dtype.type(5)  # a bare 4 * d would be float64
    padded_rows, phase_columns = 4 * tiles_h + 2, tiles_w + 1
    phased = np.zeros((padded_rows, 4, phase_columns, channels), dtype=x.dtype)
    rows = min(height, padded_rows - pad_top)
    cols = min(width, 4 * phase_columns - pad_left)
    row_size = 4 * phase_columns * channels
    flat = phased.reshape(padded_rows, row_size)
    combined = np.empty((6, row_size), dtype=x.dtype)  # B^T d for the current row of tiles, phased likewise
    out = V.reshape(V.shape[0], V.shape[1] * channels)
    phase = np.uint64(phase_columns * channels)  # offset of phase m + 1 from phase m
    next_tile = np.uint64(channels)  # offset of tile u + 1 from tile u
    span = np.uint64(tiles_w * channels)  # unsigned: so is the loop index q below
    for n in range(batch):
        for r in range(rows):
            for w in range(cols):
                column = w + pad_left
                m, u = column % 4, column // 4
                for c in range(channels):
                    phased[r + pad_top, m, u, c] = x[n, r, w, c]
        for ti in range(tiles_h):
            h = 4 * ti
            for e in range(row_size):
                combined[0, e] = four * flat[h, e] - five * flat[h + 2, e] + flat[h + 4, e]
            for e in range(row_size):
                combined[1, e] = -four * flat[h + 1, e] - four * flat[h + 2, e] + flat[h + 3, e] + flat[h + 4, e]
            for e in range(row_size):
                combined[2, e] = four * flat[h + 1, e] - four * flat[h + 2, e] - flat[h + 3, e] + flat[h + 4, e]
            for e in range(row_size):
                combined[3, e] = -two * flat[h + 1, e] - flat[h + 2, e] + two * flat[h + 3, e] + flat[h + 4, e]
            for e in range(row_size):
                combined[4, e] = two * flat[h + 1, e] - flat[h + 2, e] - two * flat[h + 3, e] + flat[h + 4, e]
            for e in range(row_size):
                combined[5, e] = four * flat[h + 1, e] - five * flat[h + 3, e] + flat[h + 5, e]
            first = np.uint64(n * tiles_h + ti) * span
            p1, p2, p3 = phase, 2 * phase, 3 * phase  # columns 1, 2, 3 of a tile; 4 and 5 are 0 and 1 one tile on
            p4, p5 = next_tile, phase + next_tile
            for i in range(6):
                k = 6 * i
                for q in range(span):
                    out[k, first + q] = (four * combined[i, q] - five * combined[i, p2 + q]
                                         + combined[i, p4 + q])
                for q in range(span):
                    out[k + 1, first + q] = (-four * combined[i, p1 + q] - four * combined[i, p2 + q]
                                             + combined[i, p3 + q] + combined[i, p4 + q])
                for q in range(span):
                    out[k + 2, first + q] = (four * combined[i, p1 + q] - four * combined[i, p2 + q]
                                             - combined[i, p3 + q] + combined[i, p4 + q])
                for q in range(span):
                    out[k + 3, first + q] = (-two * combined[i, p1 + q] - combined[i, p2 + q]
                                             + two * combined[i, p3 + q] + combined[i, p4 + q])
                for q in range(span):
                    out[k + 4, first + q] = (two * combined[i, p1 + q] - combined[i, p2 + q]
                                             - two * combined[i, p3 + q] + combined[i, p4 + q])
                for q in range(span):
                    out[k + 5, first + q] = (four * combined[i, p1 + q] - five * combined[i, p3 + q]
                                             + combined[i, p5 + q])


@numba.njit(cache=True, nogil=True)
def output_transform_f4(M, bias, use_bias, z, tiles_h, tiles_w):
    """``z[n, 4*ti + a, 4*tj + b, f] = (A^T M A)[a, b] (+ bias[f])`` for the tiles' outputs inside ``z``."""
    batch, out_h, out_w, filters = z.shape
    s = np.empty((4, 6, filters), dtype=z.dtype)
    zero, two, four, eight = z.dtype.type(0), z.dtype.type(2), z.dtype.type(4), z.dtype.type(8)
    for n in range(batch):
        for ti in range(tiles_h):
            for tj in range(tiles_w):
                t = (n * tiles_h + ti) * tiles_w + tj
                for j in range(6):  # A^T M: combine the six rows, column j at a time
                    for f in range(filters):
                        m0, m1, m2 = M[j, t, f], M[6 + j, t, f], M[12 + j, t, f]
                        m3, m4, m5 = M[18 + j, t, f], M[24 + j, t, f], M[30 + j, t, f]
                        s[0, j, f] = m0 + m1 + m2 + m3 + m4
                        s[1, j, f] = m1 - m2 + two * m3 - two * m4
                        s[2, j, f] = m1 + m2 + four * m3 + four * m4
                        s[3, j, f] = m1 - m2 + eight * m3 - eight * m4 + m5
                for a in range(4):  # ... times A: combine the six columns, into the outputs inside z
                    h = 4 * ti + a
                    if h >= out_h:
                        break
                    for b in range(4):
                        w = 4 * tj + b
                        if w >= out_w:
                            break
                        out = z[n, h, w]
                        for f in range(filters):
                            e0, e1, e2 = s[a, 0, f], s[a, 1, f], s[a, 2, f]
                            e3, e4, e5 = s[a, 3, f], s[a, 4, f], s[a, 5, f]
                            if b == 0:
                                value = e0 + e1 + e2 + e3 + e4
                            elif b == 1:
                                value = e1 - e2 + two * e3 - two * e4
                            elif b == 2:
                                value = e1 + e2 + four * e3 + four * e4
                            else:
                                value = e1 - e2 + eight * e3 - eight * e4 + e5
                            out[f] = value + (bias[f] if use_bias else zero)


def winograd_f4_reference(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, pad_top: int, pad_left: int,
                          out_h: int, out_w: int) -> np.ndarray:
    """The whole F(4x4, 3x3) convolution through the kernels above and one batched product (for tests)."""
    tiles_h, tiles_w = tile_counts_f4(out_h, out_w)
    batch, channels, filters = x.shape[0], x.shape[3], kernel.shape[3]
    V = np.empty((36, batch * tiles_h * tiles_w, channels), dtype=x.dtype)
    input_transform_f4(np.ascontiguousarray(x), V, pad_top, pad_left, tiles_h, tiles_w)
    M = np.matmul(V, kernel_transform_f4(kernel))
    z = np.empty((batch, out_h, out_w, filters), dtype=x.dtype)
    output_transform_f4(M, bias if bias is not None else np.zeros(filters, x.dtype), bias is not None, z,
                        tiles_h, tiles_w)
    return z
