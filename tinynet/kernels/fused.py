"""Max pooling, ReLU and dropout in one pass over each image: the fused kernel behind the planner's
``MaxPooling2D -> ReLU -> Dropout`` stage (:mod:`tinynet.engine.planner`).

Forward, per image, per output pixel and channel (same window rules and tie-breaking as
:func:`tinynet.kernels.maxpool_forward`)::

    m        = max over the window of z          argmax_index = where it was
    r        = max(m, 0)                          (ReLU; it commutes with max, so pooling first is exact)
    y        = r * scale  if words >= threshold else 0     (dropout, scale = 1 / (1 - rate); skipped if no words)
    pass_mask = 1 if the unit was kept and r > 0, else 0   (where any gradient can flow)

Backward: the three derivatives multiply to ``pass_mask * scale`` (``scale = 1`` without dropout), routed to the
winning pixel::

    dz = 0;  dz[n, idx // W, idx % W, c] += dy[n, i, j, c] * scale   where pass_mask[n, i, j, c]

The unfused layers compute exactly the same floating-point operations in the same order, so the fused and the
unfused model agree bit for bit (a test checks it). The win is memory traffic: the pooled map is read and
written once instead of once per layer, and no float mask is materialised.
"""

from __future__ import annotations

import numba
import numpy as np

from .dropout import NO_WORDS, keep_scale, keep_threshold
from .pooling import _maxpool_forward_one_image

__all__ = ["pool_relu_dropout_forward", "pool_relu_dropout_backward"]


@numba.njit(cache=True)
def _forward_one_image(z, n, y, argmax_index, pass_mask, words, use_dropout, threshold, scale,
                       pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    _maxpool_forward_one_image(z, n, y, argmax_index, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
    out_h, out_w, channels = y.shape[1], y.shape[2], y.shape[3]
    zero = y.dtype.type(0)
    for i in range(out_h):
        for j in range(out_w):
            for c in range(channels):
                value = y[n, i, j, c]
                if value > zero:
                    if use_dropout:
                        if words[n, i, j, c] >= threshold:
                            y[n, i, j, c] = value * scale
                            pass_mask[n, i, j, c] = 1
                        else:
                            y[n, i, j, c] = zero
                            pass_mask[n, i, j, c] = 0
                    else:
                        pass_mask[n, i, j, c] = 1
                else:
                    y[n, i, j, c] = zero  # ReLU (and -0.0 or NaN never pass a gradient)
                    pass_mask[n, i, j, c] = 0


@numba.njit(cache=True, nogil=True)
def _forward_batch(z, y, argmax_index, pass_mask, words, use_dropout, threshold, scale,
                    pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    for n in range(z.shape[0]):
        _forward_one_image(z, n, y, argmax_index, pass_mask, words, use_dropout, threshold, scale,
                           pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)


@numba.njit(cache=True)
def _backward_one_image(dy, argmax_index, pass_mask, scale, n, dz_planes):
    dz_planes[n, :, :] = 0
    out_h, out_w, channels = dy.shape[1], dy.shape[2], dy.shape[3]
    for i in range(out_h):
        for j in range(out_w):
            for c in range(channels):
                if pass_mask[n, i, j, c]:
                    dz_planes[n, argmax_index[n, i, j, c], c] += dy[n, i, j, c] * scale


@numba.njit(cache=True)
def _backward_one_image_disjoint(dy, argmax_index, pass_mask, scale, n, dz, pool_h, pool_w, stride_h, stride_w,
                                 pad_top, pad_left, covers_plane):
    """The same result when windows never overlap (stride >= pool): every pixel lies in at most one window, so
    each is *written* once (the gradient if it won, else 0) instead of zeroed and then scattered into. The inner
    loop over channels is a select on contiguous memory, which vectorises; the scatter's does not."""
    height, width, channels = dz.shape[1], dz.shape[2], dz.shape[3]
    out_h, out_w = dy.shape[1], dy.shape[2]
    zero = dz.dtype.type(0)
    if not covers_plane:  # pixels outside every window (e.g. the odd last row of an 11x11 map) get no gradient
        dz[n, :, :, :] = zero
    gradient = np.empty(channels, dtype=dz.dtype)
    for i in range(out_h):
        for j in range(out_w):
            for c in range(channels):
                gradient[c] = dy[n, i, j, c] * scale if pass_mask[n, i, j, c] else zero
            for di in range(pool_h):
                h = i * stride_h + di - pad_top
                if h < 0 or h >= height:
                    continue
                for dj in range(pool_w):
                    w = j * stride_w + dj - pad_left
                    if w < 0 or w >= width:
                        continue
                    flat_index = h * width + w
                    for c in range(channels):
                        dz[n, h, w, c] = gradient[c] if argmax_index[n, i, j, c] == flat_index else zero


@numba.njit(cache=True, nogil=True)
def _backward_batch(dy, argmax_index, pass_mask, scale, dz_planes):
    for n in range(dy.shape[0]):
        _backward_one_image(dy, argmax_index, pass_mask, scale, n, dz_planes)


@numba.njit(cache=True, nogil=True)
def _backward_disjoint_batch(dy, argmax_index, pass_mask, scale, dz, pool_h, pool_w, stride_h, stride_w,
                              pad_top, pad_left, covers_plane):
    for n in range(dy.shape[0]):
        _backward_one_image_disjoint(dy, argmax_index, pass_mask, scale, n, dz, pool_h, pool_w, stride_h,
                                     stride_w, pad_top, pad_left, covers_plane)


def pool_relu_dropout_forward(z, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w,
                              words=None, rate=0.0):
    """Fused forward; returns ``(y, argmax_index, pass_mask)``. ``words`` (uint16, shape of ``y``) from
    :func:`tinynet.kernels.dropout.draw_random_words` turns dropout on; ``None`` means no dropout (inference).

    The layer geometry is trusted here (the planner takes it from built layers); ``z`` must be C-contiguous
    float32/float64 ``(N, H, W, C)``.
    """
    batch, channels = z.shape[0], z.shape[3]
    y = np.empty((batch, out_h, out_w, channels), dtype=z.dtype)
    argmax_index = np.empty(y.shape, dtype=np.int32)
    pass_mask = np.empty(y.shape, dtype=np.uint8)
    if words is not None and words.shape != y.shape:
        raise ValueError(f"pool_relu_dropout_forward: words has shape {words.shape}, expected {y.shape}")
    pool_relu_dropout_forward_unchecked(z, y, argmax_index, pass_mask, words, rate,
                                        (pool_h, pool_w, stride_h, stride_w, pad_top, pad_left))
    return y, argmax_index, pass_mask


def pool_relu_dropout_backward(dy, argmax_index, pass_mask, height, width, rate=0.0, dropout=True, out=None,
                               window=None):
    """Fused backward: ``dz`` of shape ``(N, height, width, C)`` (into ``out`` if given, for buffer reuse).

    ``window = (pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)``, when given for windows that do not
    overlap (stride >= pool on both axes), selects the write-once kernel; otherwise the zero-and-scatter one.
    Both give the same values.
    """
    batch, channels = dy.shape[0], dy.shape[3]
    dz = np.empty((batch, height, width, channels), dtype=dy.dtype) if out is None else out
    dy = np.ascontiguousarray(dy)
    if window is None:
        scale = keep_scale(rate, dy.dtype, dropout)
        _backward_batch(dy, argmax_index, pass_mask, scale, dz.reshape(batch, height * width, channels))
    else:
        pool_relu_dropout_backward_unchecked(dy, argmax_index, pass_mask, dz, rate, dropout, window)
    return dz




@numba.njit(cache=True, nogil=True)
def _forward_2x2_batch(z, y, argmax_index, pass_mask, words, use_dropout, threshold, scale, record):
    """The forward pass for the common 2x2 window with stride 2 and no padding, in one pass per output: the four
    candidates compared in the general kernel's order with its rule (strictly greater wins, NaN beats any
    number), then ReLU and dropout, so the values are the same bits. ``record=False`` (inference) skips
    writing ``argmax_index`` and ``pass_mask``, which only a backward pass reads."""
    out_h, out_w, channels = y.shape[1], y.shape[2], y.shape[3]
    width = z.shape[2]
    zero = y.dtype.type(0)
    for n in range(z.shape[0]):
        for i in range(out_h):
            h = 2 * i
            for j in range(out_w):
                w = 2 * j
                first = h * width + w
                for c in range(channels):
                    best = z[n, h, w, c]
                    index = first
                    value = z[n, h, w + 1, c]
                    if value > best or (np.isnan(value) and not np.isnan(best)):
                        best, index = value, first + 1
                    value = z[n, h + 1, w, c]
                    if value > best or (np.isnan(value) and not np.isnan(best)):
                        best, index = value, first + width
                    value = z[n, h + 1, w + 1, c]
                    if value > best or (np.isnan(value) and not np.isnan(best)):
                        best, index = value, first + width + 1
                    passes = best > zero
                    if passes and use_dropout:
                        passes = words[n, i, j, c] >= threshold
                        best = best * scale
                    y[n, i, j, c] = best if passes else zero
                    if record:
                        argmax_index[n, i, j, c] = index
                        pass_mask[n, i, j, c] = 1 if passes else 0


def pool_relu_dropout_forward_unchecked(z, y, argmax_index, pass_mask, words, rate, window, record=True) -> None:
    """:func:`pool_relu_dropout_forward` into given arrays, without argument checks (for a stage that runs it
    on slices of a batch after checking the geometry once). ``words=None``: no dropout. Releases the GIL.

    ``record=False`` lets the 2x2 stride-2 kernel skip ``argmax_index`` and ``pass_mask`` (inference: 4.9
    against 16 us for 3 images of 26x26x64); other windows write them anyway."""
    pool_h, pool_w, stride_h, stride_w, pad_top, pad_left = window
    use_dropout = words is not None
    scale = keep_scale(rate, z.dtype, use_dropout)
    words = words if use_dropout else NO_WORDS
    # Only when every window lies inside z: 'same' pooling of an odd size has a last window hanging over the edge.
    if window == (2, 2, 2, 2, 0, 0) and 2 * y.shape[1] <= z.shape[1] and 2 * y.shape[2] <= z.shape[2]:
        _forward_2x2_batch(z, y, argmax_index, pass_mask, words, use_dropout, keep_threshold(rate), scale, record)
        return
    _forward_batch(z, y, argmax_index, pass_mask, words, use_dropout, keep_threshold(rate), scale,
                   pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)


def pool_relu_dropout_backward_unchecked(dy, argmax_index, pass_mask, dz, rate, dropout, window) -> None:
    """:func:`pool_relu_dropout_backward` into ``dz`` (every element written), without argument checks."""
    scale = keep_scale(rate, dy.dtype, dropout)
    pool_h, pool_w, stride_h, stride_w, pad_top, pad_left = window
    batch, height, width, channels = dz.shape
    out_h, out_w = dy.shape[1], dy.shape[2]
    if stride_h >= pool_h and stride_w >= pool_w:
        covers_plane = (pad_top == 0 and pad_left == 0 and stride_h == pool_h and stride_w == pool_w
                        and out_h * stride_h == height and out_w * stride_w == width)
        _backward_disjoint_batch(dy, argmax_index, pass_mask, scale, dz, pool_h, pool_w, stride_h, stride_w,
                                 pad_top, pad_left, covers_plane)
    else:
        _backward_batch(dy, argmax_index, pass_mask, scale, dz.reshape(batch, height * width, channels))
