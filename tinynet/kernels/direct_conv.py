"""A direct 3x3 convolution of one-channel images: the first layer of a greyscale CNN, without im2col.

For a single input channel, im2col turns each output pixel into a row of only nine values, and the product
``cols @ K`` is then a matrix product with an inner dimension of 9 (10 with the bias column): too thin for BLAS,
which spends its time packing (measured here: 20 us per 28x28 MNIST image for 64 filters, 38 GFLOP/s on one
core). Computed directly, each output pixel is::

    z[n, i, j, f] = b[f] + sum over (di, dj) in 3x3 of  x[n, i + di, j + dj] * K[di, dj, 0, f]

and the loop over the filters ``f`` is innermost: the nine pixel values are scalars held in registers for a
whole row of ``z``, the nine kernel rows ``K[di, dj, 0, :]`` stay in the L1 cache, and each group of filters is
nine fused multiply-adds into one vector register, written once (11.5 us per image, 1.7x faster). The sum is
taken in the order written above (bias first, then the taps row by row), each step one fused multiply-add: a
fixed order, so the result is the same on every call and with any number of threads; it differs from the im2col
product by rounding only.

:func:`conv3x3_one_channel_pool_relu_dropout` goes on through the tutorial's next three layers (2x2 max
pooling, ReLU, dropout): it computes the four outputs of each pooling window together and keeps only the
winner, so that the 26x26x64 convolution map of an MNIST image (173 KB) is never written out and each kernel
load serves four sums (about 9 us per image for inference, against 25 us for im2col, the product and the fused
pooling kernel; in training, with the dropout and the record the backward pass needs, 16 us against 20 for the
direct convolution and the fused kernel). :func:`conv3x3_one_channel_pool_relu` is its inference-only twin.

Its backward pass for the parameters, :func:`conv3x3_one_channel_pooled_parameter_gradients`, needs no
convolution-sized gradient either. Only the winner of each pooling window receives a gradient, so of the map's
``dz`` three values in four are zero, and the weight gradient is a sum over the *windows*::

    g[n, i, j, f]       = dy[n, i, j, f] * scale    where the output passed (ReLU and dropout), else 0
    (r, c)              = the winner of window (i, j) for filter f, in the convolution's map
    dK[di, dj, 0, f]    = sum over n, i, j of  g[n, i, j, f] * x[n, r + di, c + dj]
    db[f]               = sum over n, i, j of  g[n, i, j, f]

For each window the kernel reads the same 4x4 patch as the forward pass and, per filter, picks the 3x3 part
under the winner with selects (no gather), then adds nine products into ``dK``: about 4x less work than
writing ``dz``, building the im2col matrix and multiplying (measured on one core of a Xeon with AVX-512, batch
32: 0.3 against 1.9 ms).

Only valid padding with stride 1 is implemented: the engine (:mod:`tinynet.engine.conv_block`) uses these
kernels when a convolution matches, and im2col otherwise. The ``*_reference`` twin is plain NumPy.
"""

from __future__ import annotations

import numba
import numpy as np

from .dropout import NO_WORDS, keep_scale, keep_threshold

__all__ = ["conv3x3_one_channel", "conv3x3_one_channel_pool_relu", "conv3x3_one_channel_pool_relu_dropout",
           "conv3x3_one_channel_pool_relu_dropout_unchecked", "conv3x3_one_channel_pooled_parameter_gradients",
           "conv3x3_one_channel_reference", "check_conv3x3_one_channel"]


def check_conv3x3_one_channel(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, out: np.ndarray,
                              pooled: bool = False) -> None:
    """Raise ``ValueError`` unless the arrays fit the kernels below (they index without bounds checks).

    ``x`` is ``(N, H, W)``, ``kernel`` ``(9, F)``, ``bias`` ``(F,)``, all C-contiguous and of one float dtype;
    ``out`` is ``(N, H - 2, W - 2, F)``, or ``(N, (H - 2) // 2, (W - 2) // 2, F)`` when ``pooled``."""
    arrays = {"x": x, "kernel": kernel, "bias": bias, "out": out}
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray) or array.dtype not in (np.float32, np.float64):
            raise ValueError(f"conv3x3_one_channel: {name} must be a float32 or float64 ndarray")
        if not array.flags.c_contiguous:
            raise ValueError(f"conv3x3_one_channel: {name} must be C-contiguous")
        if array.dtype != x.dtype:
            raise ValueError(f"conv3x3_one_channel: {name} has dtype {array.dtype}, expected x's {x.dtype}")
    if x.ndim != 3 or x.shape[1] < 3 or x.shape[2] < 3:
        raise ValueError(f"conv3x3_one_channel: x must be (N, H, W) with H, W >= 3, got {x.shape}")
    if kernel.ndim != 2 or kernel.shape[0] != 9:
        raise ValueError(f"conv3x3_one_channel: kernel must be (9, filters), got {kernel.shape}")
    filters = kernel.shape[1]
    if bias.shape != (filters,):
        raise ValueError(f"conv3x3_one_channel: bias must be ({filters},), got {bias.shape}")
    out_h, out_w = x.shape[1] - 2, x.shape[2] - 2
    expected = (x.shape[0], out_h // 2, out_w // 2, filters) if pooled else (x.shape[0], out_h, out_w, filters)
    if out.shape != expected:
        raise ValueError(f"conv3x3_one_channel: out must be {expected}, got {out.shape}")


@numba.njit(cache=True, nogil=True, fastmath={"contract"})
def conv3x3_one_channel(x, kernel, bias, z):
    """``z (N, H-2, W-2, F)``: the valid 3x3 convolution of ``x (N, H, W)`` by ``kernel (9, F)`` plus ``bias``
    (check the arguments with :func:`check_conv3x3_one_channel` first). ``fastmath`` only fuses each multiply
    with its add; the order of the sum stays as written."""
    k0, k1, k2, k3, k4, k5, k6, k7, k8 = (kernel[0], kernel[1], kernel[2], kernel[3], kernel[4], kernel[5],
                                          kernel[6], kernel[7], kernel[8])
    for n in range(z.shape[0]):
        for i in range(z.shape[1]):
            r0, r1, r2 = x[n, i], x[n, i + 1], x[n, i + 2]
            for j in range(z.shape[2]):
                x0, x1, x2 = r0[j], r0[j + 1], r0[j + 2]
                x3, x4, x5 = r1[j], r1[j + 1], r1[j + 2]
                x6, x7, x8 = r2[j], r2[j + 1], r2[j + 2]
                out = z[n, i, j]
                for f in range(out.shape[0]):  # innermost and contiguous: one vector of filters per step
                    out[f] = (bias[f] + x0 * k0[f] + x1 * k1[f] + x2 * k2[f] + x3 * k3[f] + x4 * k4[f]
                              + x5 * k5[f] + x6 * k6[f] + x7 * k7[f] + x8 * k8[f])


@numba.njit(cache=True, nogil=True, fastmath={"contract"}, inline="always")
def _window_sums(f, patch, k0, k1, k2, k3, k4, k5, k6, k7, k8, bias):
    """Filter ``f``'s four convolution outputs of a 2x2 pooling window from its 4x4 image ``patch`` (a tuple of
    sixteen scalars, row by row), each summed in :func:`conv3x3_one_channel`'s order."""
    (a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33) = patch
    b = bias[f]
    top_left = (b + a00 * k0[f] + a01 * k1[f] + a02 * k2[f] + a10 * k3[f] + a11 * k4[f] + a12 * k5[f]
                + a20 * k6[f] + a21 * k7[f] + a22 * k8[f])
    top_right = (b + a01 * k0[f] + a02 * k1[f] + a03 * k2[f] + a11 * k3[f] + a12 * k4[f] + a13 * k5[f]
                 + a21 * k6[f] + a22 * k7[f] + a23 * k8[f])
    bottom_left = (b + a10 * k0[f] + a11 * k1[f] + a12 * k2[f] + a20 * k3[f] + a21 * k4[f] + a22 * k5[f]
                   + a30 * k6[f] + a31 * k7[f] + a32 * k8[f])
    bottom_right = (b + a11 * k0[f] + a12 * k1[f] + a13 * k2[f] + a21 * k3[f] + a22 * k4[f] + a23 * k5[f]
                    + a31 * k6[f] + a32 * k7[f] + a33 * k8[f])
    return top_left, top_right, bottom_left, bottom_right


@numba.njit(cache=True, nogil=True, inline="always")
def _patch(x, n, i, j):
    """The 4x4 image patch under pooled output ``(i, j)``, as sixteen scalars row by row."""
    r0, r1, r2, r3 = x[n, 2 * i], x[n, 2 * i + 1], x[n, 2 * i + 2], x[n, 2 * i + 3]
    c = 2 * j
    return (r0[c], r0[c + 1], r0[c + 2], r0[c + 3], r1[c], r1[c + 1], r1[c + 2], r1[c + 3],
            r2[c], r2[c + 1], r2[c + 2], r2[c + 3], r3[c], r3[c + 1], r3[c + 2], r3[c + 3])


@numba.njit(cache=True, nogil=True, fastmath={"contract"})
def conv3x3_one_channel_pool_relu(x, kernel, bias, y):
    """``y = relu(maxpool_2x2(conv3x3(x) + bias))`` for inference: :func:`conv3x3_one_channel_pool_relu_dropout`
    without dropout and without recording anything for a backward pass (a separate loop: with the record's
    stores in it the compiler vectorises it less well, 14 against 9 us an image)."""
    k0, k1, k2, k3, k4, k5, k6, k7, k8 = (kernel[0], kernel[1], kernel[2], kernel[3], kernel[4], kernel[5],
                                          kernel[6], kernel[7], kernel[8])
    zero = y.dtype.type(0)
    for n in range(y.shape[0]):
        for i in range(y.shape[1]):
            for j in range(y.shape[2]):
                patch = _patch(x, n, i, j)
                out = y[n, i, j]
                for f in range(out.shape[0]):
                    best, value_1, value_2, value_3 = _window_sums(f, patch, k0, k1, k2, k3, k4, k5, k6, k7, k8,
                                                                   bias)
                    # "value > best, or value is NaN and best is not", without branches (x != x: NaN), so that the
                    # compiler vectorises the loop
                    best = value_1 if (value_1 > best) | ((value_1 != value_1) & (best == best)) else best
                    best = value_2 if (value_2 > best) | ((value_2 != value_2) & (best == best)) else best
                    best = value_3 if (value_3 > best) | ((value_3 != value_3) & (best == best)) else best
                    out[f] = best if best > zero else zero  # a NaN fails the test: 0, as in the fused kernel


@numba.njit(cache=True, nogil=True, fastmath={"contract"})
def conv3x3_one_channel_pool_relu_dropout(x, kernel, bias, y, argmax_index, pass_mask, words, use_dropout,
                                          threshold, scale, record):
    """``y (N, (H-2)//2, (W-2)//2, F) = dropout(relu(maxpool_2x2(conv3x3(x) + bias)))`` without the
    convolution's output ever being written: :func:`tinynet.kernels.fused.pool_relu_dropout_forward_unchecked`
    (2x2 windows, stride 2) applied to :func:`conv3x3_one_channel`, in one pass.

    Each pooled output reads its 4x4 patch of the image (sixteen scalars) and computes the four convolution
    outputs of its window at once, one vector of filters at a time: 36 multiply-adds for every 9 kernel loads, so
    the loads no longer limit the loop. Each sum is taken in :func:`conv3x3_one_channel`'s order with its fused
    multiply-adds, and the rest is the fused kernel's arithmetic (strictly greater wins, a NaN beats any number,
    ``best > 0`` passes, then the dropout word and the scale), so ``y``, ``argmax_index`` (the winner's
    ``h * (W-2) + w`` in the convolution's map) and ``pass_mask`` are bit for bit those of the two kernels in
    turn (a test checks it). ``record=False`` (inference) writes neither ``argmax_index`` nor ``pass_mask``;
    ``use_dropout=False`` reads no ``words``. The flags do not change inside the loops, so the compiler makes a
    loop for each case and vectorises them all.
    """
    k0, k1, k2, k3, k4, k5, k6, k7, k8 = (kernel[0], kernel[1], kernel[2], kernel[3], kernel[4], kernel[5],
                                          kernel[6], kernel[7], kernel[8])
    zero = y.dtype.type(0)
    width = x.shape[2] - 2  # of the convolution's map, in which argmax_index counts
    for n in range(y.shape[0]):
        for i in range(y.shape[1]):
            for j in range(y.shape[2]):
                patch = _patch(x, n, i, j)
                first = 2 * i * width + 2 * j
                out = y[n, i, j]
                for f in range(out.shape[0]):
                    best, value_1, value_2, value_3 = _window_sums(f, patch, k0, k1, k2, k3, k4, k5, k6, k7, k8,
                                                                   bias)
                    index = first
                    take = (value_1 > best) | ((value_1 != value_1) & (best == best))
                    best, index = (value_1, first + 1) if take else (best, index)
                    take = (value_2 > best) | ((value_2 != value_2) & (best == best))
                    best, index = (value_2, first + width) if take else (best, index)
                    take = (value_3 > best) | ((value_3 != value_3) & (best == best))
                    best, index = (value_3, first + width + 1) if take else (best, index)
                    passes = best > zero  # a NaN fails it: 0, as in the fused kernel
                    if use_dropout:
                        passes = passes & (words[n, i, j, f] >= threshold)
                        best = best * scale
                    out[f] = best if passes else zero
                    if record:
                        argmax_index[n, i, j, f] = index
                        pass_mask[n, i, j, f] = 1 if passes else 0


def conv3x3_one_channel_pool_relu_dropout_unchecked(x, kernel, bias, y, argmax_index, pass_mask, words, rate,
                                                    record=True) -> None:
    """:func:`conv3x3_one_channel_pool_relu_dropout` with the dropout given as
    :func:`tinynet.kernels.fused.pool_relu_dropout_forward_unchecked` takes it: ``words`` (``None``: no dropout)
    and ``rate``, from which the same threshold and scale are derived. No argument checks (the caller checked
    the geometry once); releases the GIL."""
    use_dropout = words is not None
    scale = keep_scale(rate, y.dtype, use_dropout)
    conv3x3_one_channel_pool_relu_dropout(x, kernel, bias, y, argmax_index, pass_mask,
                                          words if use_dropout else NO_WORDS, use_dropout, keep_threshold(rate),
                                          scale, record)


@numba.njit(cache=True, nogil=True, fastmath={"contract"})
def conv3x3_one_channel_pooled_parameter_gradients(x, dy, argmax_index, pass_mask, scale, kernel_gradient,
                                                   bias_gradient):
    """``kernel_gradient (9, F)`` and ``bias_gradient (F,)``, overwritten with the gradients of the images
    ``x (N, H, W)`` through :func:`conv3x3_one_channel_pool_relu_dropout`, given the gradient ``dy`` of its output
    and the ``argmax_index`` and ``pass_mask`` it recorded (``scale``: the dropout's ``1 / (1 - rate)``, or 1).

    The sums run image by image, window by window, in that fixed order: the same bits on every call. The
    winner's 3x3 values are chosen from the window's 4x4 patch by two selects per tap (its column, then its row),
    without branches, so the loop over the filters vectorises."""
    zero = kernel_gradient.dtype.type(0)
    kernel_gradient[:] = zero
    bias_gradient[:] = zero
    d0, d1, d2, d3, d4, d5, d6, d7, d8 = (kernel_gradient[0], kernel_gradient[1], kernel_gradient[2],
                                          kernel_gradient[3], kernel_gradient[4], kernel_gradient[5],
                                          kernel_gradient[6], kernel_gradient[7], kernel_gradient[8])
    width = x.shape[2] - 2  # of the convolution's map, in which argmax_index counts
    for n in range(dy.shape[0]):
        for i in range(dy.shape[1]):
            for j in range(dy.shape[2]):
                (a00, a01, a02, a03, a10, a11, a12, a13,
                 a20, a21, a22, a23, a30, a31, a32, a33) = _patch(x, n, i, j)
                first = 2 * i * width + 2 * j
                gradients, winners, passed = dy[n, i, j], argmax_index[n, i, j], pass_mask[n, i, j]
                for f in range(gradients.shape[0]):
                    g = gradients[f] * scale if passed[f] else zero
                    offset = winners[f] - first  # 0, 1, width or width + 1
                    right = (offset == 1) | (offset == width + 1)
                    down = offset >= width
                    # the winner's rows of the patch, each already shifted to its column
                    b0, b1, b2 = (a01, a02, a03) if right else (a00, a01, a02)
                    c0, c1, c2 = (a11, a12, a13) if right else (a10, a11, a12)
                    e0, e1, e2 = (a21, a22, a23) if right else (a20, a21, a22)
                    h0, h1, h2 = (a31, a32, a33) if right else (a30, a31, a32)
                    top0, top1, top2 = (c0, c1, c2) if down else (b0, b1, b2)
                    mid0, mid1, mid2 = (e0, e1, e2) if down else (c0, c1, c2)
                    low0, low1, low2 = (h0, h1, h2) if down else (e0, e1, e2)
                    d0[f] += g * top0
                    d1[f] += g * top1
                    d2[f] += g * top2
                    d3[f] += g * mid0
                    d4[f] += g * mid1
                    d5[f] += g * mid2
                    d6[f] += g * low0
                    d7[f] += g * low1
                    d8[f] += g * low2
                    bias_gradient[f] += g


def conv3x3_one_channel_reference(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Plain NumPy: the nine taps as shifted slices of the whole batch, summed in float64."""
    batch, height, width = x.shape
    out_h, out_w = height - 2, width - 2
    z = np.broadcast_to(bias.astype(np.float64), (batch, out_h, out_w, kernel.shape[1])).copy()
    for tap in range(9):
        di, dj = divmod(tap, 3)
        z += x[:, di:di + out_h, dj:dj + out_w, None].astype(np.float64) * kernel[tap].astype(np.float64)
    return z.astype(x.dtype)
