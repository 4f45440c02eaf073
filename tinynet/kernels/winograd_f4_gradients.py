"""The weight gradient of a Winograd F(4x4, 3x3) convolution, computed in the Winograd domain.

:mod:`tinynet.kernels.winograd_f4` computes each tile's outputs as ``Y = A^T M A`` with, over channels,
``M[k] = V[k] @ U[k]``, ``V = B^T d B`` (the input tiles) and ``U = G g G^T`` (the kernel). Every step is linear,
so the gradient of the loss with respect to the kernel follows by the adjoint of each step, in reverse:

    dM    = A dY A^T                              (per tile and filter; zero where the tile hangs over the edge)
    dU[k] = V[k]^T @ dM[k]                        (36 products of (C x tiles) by (tiles x F), summed over tiles)
    dg    = G^T dU G                              (per channel and filter: back to the 3x3 kernel)

This is the gradient of the function the forward pass computes. Against the direct
``dK = X_col^T @ dZ`` (one product of (9C x pixels) by (pixels x F)) it multiplies 3.4x fewer numbers on the
tutorial's 11x11 maps, and needs no im2col matrix: the input tiles ``V`` are the forward pass's. The result
differs from the direct sum by rounding only (about 1e-5 of its scale in float32, 1e-12 in float64; the tests
compare both and check each transform against its adjoint).

``A^T`` and ``G`` are written out in :mod:`tinynet.kernels.winograd_f4`; here they appear transposed::

    A dY rows:   r0 = y0,  r1 = y0 + y1 + y2 + y3,  r2 = y0 - y1 + y2 - y3,
                 r3 = y0 + 2 y1 + 4 y2 + 8 y3,  r4 = y0 - 2 y1 + 4 y2 - 8 y3,  r5 = y3
    G^T u rows:  g0 = u0/4 - u1/6 - u2/6 + u3/24 + u4/24,  g1 = -u1/6 + u2/6 + u3/12 - u4/12,
                 g2 = -u1/6 - u2/6 + u3/6 + u4/6 + u5
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["output_gradient_transform_f4", "kernel_gradient_transform_f4"]


@numba.njit(cache=True, nogil=True)
def output_gradient_transform_f4(dz, dM, tiles_h, tiles_w):
    """``dM[6r + s, t, f] = (A dY A^T)[r, s]``, ``dY`` tile ``t``'s 4x4 block of ``dz (images, out_h, out_w, F)``
    (zero outside ``dz``): the adjoint of :func:`~tinynet.kernels.winograd_f4.output_transform_f4`'s ``A^T M A``."""
    batch, out_h, out_w, filters = dz.shape
    zero, two, four, eight = dz.dtype.type(0), dz.dtype.type(2), dz.dtype.type(4), dz.dtype.type(8)
    block = np.empty((4, 4, filters), dtype=dz.dtype)
    rows = np.empty((6, 4, filters), dtype=dz.dtype)  # A dY
    for n in range(batch):
        for ti in range(tiles_h):
            for tj in range(tiles_w):
                t = (n * tiles_h + ti) * tiles_w + tj
                for a in range(4):
                    h = 4 * ti + a
                    for b in range(4):
                        w = 4 * tj + b
                        if h < out_h and w < out_w:
                            for f in range(filters):
                                block[a, b, f] = dz[n, h, w, f]
                        else:
                            for f in range(filters):
                                block[a, b, f] = zero
                for b in range(4):  # A dY: combine the four rows, column b at a time
                    for f in range(filters):
                        y0, y1, y2, y3 = block[0, b, f], block[1, b, f], block[2, b, f], block[3, b, f]
                        rows[0, b, f] = y0
                        rows[1, b, f] = y0 + y1 + y2 + y3
                        rows[2, b, f] = y0 - y1 + y2 - y3
                        rows[3, b, f] = y0 + two * y1 + four * y2 + eight * y3
                        rows[4, b, f] = y0 - two * y1 + four * y2 - eight * y3
                        rows[5, b, f] = y3
                for r in range(6):  # (A dY) A^T: the same combinations of the four columns
                    k = 6 * r
                    for f in range(filters):
                        e0, e1, e2, e3 = rows[r, 0, f], rows[r, 1, f], rows[r, 2, f], rows[r, 3, f]
                        dM[k, t, f] = e0
                        dM[k + 1, t, f] = e0 + e1 + e2 + e3
                        dM[k + 2, t, f] = e0 - e1 + e2 - e3
                        dM[k + 3, t, f] = e0 + two * e1 + four * e2 + eight * e3
                        dM[k + 4, t, f] = e0 - two * e1 + four * e2 - eight * e3
                        dM[k + 5, t, f] = e3


@numba.njit(cache=True, nogil=True)
def _kernel_gradient_transform_f4(dU, dW):
    filters = dU.shape[2]
    sixth, twelfth, twenty_fourth = 1.0 / 6.0, 1.0 / 12.0, 1.0 / 24.0
    half_way = np.empty((3, 6, filters))  # G^T dU for one channel: three rows by six columns
    for c in range(dU.shape[1]):
        for s in range(6):  # G^T dU: combine the six rows, column s at a time
            for f in range(filters):
                u0, u1, u2 = float(dU[s, c, f]), float(dU[6 + s, c, f]), float(dU[12 + s, c, f])
                u3, u4, u5 = float(dU[18 + s, c, f]), float(dU[24 + s, c, f]), float(dU[30 + s, c, f])
                half_way[0, s, f] = 0.25 * u0 - sixth * u1 - sixth * u2 + twenty_fourth * u3 + twenty_fourth * u4
                half_way[1, s, f] = -sixth * u1 + sixth * u2 + twelfth * u3 - twelfth * u4
                half_way[2, s, f] = -sixth * u1 - sixth * u2 + sixth * u3 + sixth * u4 + u5
        for i in range(3):  # (G^T dU) G: the same combinations of the six columns
            for f in range(filters):
                u0, u1, u2 = half_way[i, 0, f], half_way[i, 1, f], half_way[i, 2, f]
                u3, u4, u5 = half_way[i, 3, f], half_way[i, 4, f], half_way[i, 5, f]
                dW[i, 0, c, f] = 0.25 * u0 - sixth * u1 - sixth * u2 + twenty_fourth * u3 + twenty_fourth * u4
                dW[i, 1, c, f] = -sixth * u1 + sixth * u2 + twelfth * u3 - twelfth * u4
                dW[i, 2, c, f] = -sixth * u1 - sixth * u2 + sixth * u3 + sixth * u4 + u5


def kernel_gradient_transform_f4(dU: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out (3, 3, C, F) = G^T dU G`` for ``dU (36, C, F)`` (computed in float64): the adjoint of
    :func:`~tinynet.kernels.winograd_f4.kernel_transform_f4`."""
    _kernel_gradient_transform_f4(np.ascontiguousarray(dU), out)
    return out
