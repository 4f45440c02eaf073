"""Max pooling: forward keeps the largest value of each window and remembers where it came from.

Layout is channels-last, ``(N, H, W, C)``; every channel is pooled on its own.

Forward. Window ``(i, j)`` covers rows ``i*sh - pad_top ... i*sh - pad_top + pool_h - 1`` and columns
``j*sw - pad_left ... j*sw - pad_left + pool_w - 1``; positions outside the image act as ``-inf`` and so never
win::

    y[n, i, j, c]            = max over the window of x[n, h, w, c]
    argmax_index[n, i, j, c] = h*W + w of the winning pixel (a flat index into one H x W plane, int32)

Ties go to the FIRST maximum in row-major window order (scan rows top to bottom, and within a row left
to right; only a strictly larger value replaces the current winner), as TensorFlow and Caffe do. A NaN in a
window wins over every number, so NaN propagates to ``y`` as with ``np.max``; among several NaNs the first
wins.

Backward. ``y`` is a selection, so its derivative routes each upstream gradient to the one pixel that won and
gives every other pixel nothing::

    dx = 0;  dx[n, idx // W, idx % W, c] += dy[n, i, j, c]   with idx = argmax_index[n, i, j, c]

The ``+=`` matters: when the stride is smaller than the window, one pixel can win several windows and then
collects all their gradients.

Each fast kernel is a Numba loop over one image at a time, so a caller may hand different images to
different threads. The backward pass must never be split over windows: two windows can scatter into the same
pixel, and concurrent ``+=`` on it would race silently. Two images never share a pixel.
"""

from __future__ import annotations

import numba
import numpy as np

from .im2col import _prepare_out, _require_float_array, _require_int, _window_geometry

__all__ = [
    "maxpool_forward",
    "maxpool_backward",
    "maxpool_forward_reference",
    "maxpool_backward_reference",
]

# argmax_index is int32 (half the memory of int64): the flat index h*W + w must fit in it.
_MAX_PLANE_SIZE = np.iinfo(np.int32).max


# ----------------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------------


def _check_forward_args(
    function, x, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w, out, argmax_out
):
    x = _require_float_array(function, "x", x, 4)
    geometry = _window_geometry(
        function, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w, size_names=("pool_h", "pool_w")
    )
    pool_h, pool_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w = geometry
    batch, height, width, channels = x.shape
    if height * width > _MAX_PLANE_SIZE:
        raise ValueError(f"{function}: height*width must fit in int32 for argmax_index, got {height}x{width}")
    # A window lying wholly in the padding would have no pixel to take its maximum from. With the first and
    # the last window overlapping the image, every window between them does too.
    for axis, pad, pool, stride, out_size, size in (
        ("rows", pad_top, pool_h, stride_h, out_h, height),
        ("columns", pad_left, pool_w, stride_w, out_w, width),
    ):
        last_start = (out_size - 1) * stride - pad
        if pad >= pool or last_start >= size:
            raise ValueError(
                f"{function}: every pooling window must overlap the image, but along the {axis} the windows "
                f"span {-pad}..{last_start + pool - 1} for an image of {size} (pad {pad}, pool {pool}, "
                f"stride {stride}, {out_size} outputs)"
            )
    shape = (batch, out_h, out_w, channels)
    y = _prepare_out(function, "out", out, shape, x.dtype)
    argmax_index = _prepare_out(function, "argmax_out", argmax_out, shape, np.dtype(np.int32))
    return x, geometry, y, argmax_index


def _check_backward_args(function, dy, argmax_index, height, width, out):
    dy = _require_float_array(function, "dy", dy, 4)
    argmax_index = np.asarray(argmax_index)
    if argmax_index.dtype != np.int32:
        raise TypeError(f"{function}: argmax_index must have dtype int32, got {argmax_index.dtype}")
    if argmax_index.shape != dy.shape:
        raise ValueError(f"{function}: argmax_index must have the shape of dy {dy.shape}, got {argmax_index.shape}")
    argmax_index = np.ascontiguousarray(argmax_index)
    height = _require_int(function, "height", height, 1)
    width = _require_int(function, "width", width, 1)
    batch, _, _, channels = dy.shape
    dx = _prepare_out(function, "out", out, (batch, height, width, channels), dy.dtype)
    return dy, argmax_index, dx


def _as_planes(dx):
    """View a C-contiguous ``(N, H, W, C)`` array as ``(N, H*W, C)``, indexed by the flat pixel index."""
    batch, height, width, channels = dx.shape
    return dx.reshape(batch, height * width, channels)


def _out_of_range_error(function, height, width):
    return ValueError(
        f"{function}: argmax_index must hold flat indices in [0, height*width) = [0, {height * width}) "
        f"for a {height}x{width} input plane; some do not"
    )


# ----------------------------------------------------------------------------------------------------
# Fast kernels: one image per call, so that a caller may hand different images to different threads.
# ----------------------------------------------------------------------------------------------------


@numba.njit(cache=True)
def _maxpool_forward_one_image(x, n, y, argmax_index, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """Pool image ``n`` into ``y[n]`` and ``argmax_index[n]``. Every window is known to overlap the image."""
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = y.shape[1], y.shape[2]
    for i in range(out_h):
        for j in range(out_w):
            # Scan the window in row-major order with the channels innermost, so that every read of x and
            # write of y is a contiguous run of C values; y[n, i, j, :] holds the best so far.
            first_pixel = True
            for di in range(pool_h):
                h = i * stride_h + di - pad_top
                if h < 0 or h >= height:
                    continue  # padding: acts as -inf, never wins
                for dj in range(pool_w):
                    w = j * stride_w + dj - pad_left
                    if w < 0 or w >= width:
                        continue
                    flat_index = h * width + w
                    if first_pixel:
                        # Start from the first real pixel rather than -inf, so that a window of -inf values
                        # still reports a pixel inside the image.
                        for c in range(channels):
                            y[n, i, j, c] = x[n, h, w, c]
                            argmax_index[n, i, j, c] = flat_index
                        first_pixel = False
                    else:
                        for c in range(channels):
                            value = x[n, h, w, c]
                            best = y[n, i, j, c]
                            # Strictly greater: ties keep the earlier pixel. A NaN beats any number.
                            if value > best or (np.isnan(value) and not np.isnan(best)):
                                y[n, i, j, c] = value
                                argmax_index[n, i, j, c] = flat_index


@numba.njit(cache=True)
def _maxpool_forward_serial(x, y, argmax_index, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    for n in range(x.shape[0]):
        _maxpool_forward_one_image(x, n, y, argmax_index, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)



@numba.njit(cache=True)
def _maxpool_backward_one_image(dy, argmax_index, n, dx_planes):
    """Zero ``dx_planes[n]`` and scatter ``dy[n]`` onto the winning pixels; return the count of bad indices.

    ``dx_planes`` is dx viewed as ``(N, H*W, C)``, so the flat index addresses a pixel directly: no integer
    division by W in the hot loop. An index outside the plane is skipped and counted instead of written:
    Numba does not check bounds, and a raise inside a compiled loop would leave ``dx`` half written, so the
    Python caller raises when the count is non-zero.
    """
    plane_size = dx_planes.shape[1]
    out_h, out_w, channels = dy.shape[1], dy.shape[2], dy.shape[3]
    invalid = 0
    dx_planes[n, :, :] = 0
    for i in range(out_h):
        for j in range(out_w):
            for c in range(channels):
                flat_index = argmax_index[n, i, j, c]
                if flat_index < 0 or flat_index >= plane_size:
                    invalid += 1
                else:
                    dx_planes[n, flat_index, c] += dy[n, i, j, c]
    return invalid


@numba.njit(cache=True)
def _maxpool_backward_serial(dy, argmax_index, dx_planes):
    invalid = 0
    for n in range(dy.shape[0]):
        invalid += _maxpool_backward_one_image(dy, argmax_index, n, dx_planes)
    return invalid



# ----------------------------------------------------------------------------------------------------
# Public fast API
# ----------------------------------------------------------------------------------------------------


def maxpool_forward(
    x, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w, out=None, argmax_out=None
) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling of ``x`` (serial Numba kernel).

    Args:
        x: images ``(N, H, W, C)``, float32 or float64, unpadded.
        pool_h, pool_w: window size. stride_h, stride_w: window step (>= 1).
        pad_top, pad_left: padding rows above / columns left of the image (>= 0); bottom/right padding is
            implied by ``out_h`` / ``out_w``. Padding never wins (it acts as ``-inf``), and every window must
            overlap the image (true for Keras 'valid' and 'same'); otherwise ValueError.
        out_h, out_w: number of window positions down / across.
        out, argmax_out: optional C-contiguous buffers for ``y`` (dtype of ``x``) and ``argmax_index``
            (int32), both ``(N, out_h, out_w, C)``; filled and returned for buffer reuse.

    Returns:
        ``(y, argmax_index)``: the window maxima, and for each the flat index ``h*W + w`` of the winning pixel
        in its input plane. Ties go to the first maximum in row-major window order (TensorFlow and Caffe do
        the same); a NaN wins over any number.
    """
    x, geometry, y, argmax_index = _check_forward_args(
        "maxpool_forward", x, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w, out, argmax_out
    )
    _maxpool_forward_serial(x, y, argmax_index, *geometry[:6])
    return y, argmax_index



def maxpool_backward(dy, argmax_index, height, width, out=None) -> np.ndarray:
    """Route each upstream gradient to the pixel that won its window (serial Numba kernel).

    Args:
        dy: upstream gradient ``(N, out_h, out_w, C)``, float32 or float64.
        argmax_index: int32 ``(N, out_h, out_w, C)`` from :func:`maxpool_forward`.
        height, width: the input's spatial size ``H, W``.
        out: optional C-contiguous ``(N, H, W, C)`` buffer of dy's dtype; zeroed, filled and returned.

    Returns:
        ``dx`` ``(N, H, W, C)``: zero, then ``dx[n, idx // W, idx % W, c] += dy[n, i, j, c]``.
    """
    dy, argmax_index, dx = _check_backward_args("maxpool_backward", dy, argmax_index, height, width, out)
    if _maxpool_backward_serial(dy, argmax_index, _as_planes(dx)):
        raise _out_of_range_error("maxpool_backward", dx.shape[1], dx.shape[2])
    return dx



# ----------------------------------------------------------------------------------------------------
# Plain NumPy references, for the tests
# ----------------------------------------------------------------------------------------------------


def maxpool_forward_reference(
    x, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w, out=None, argmax_out=None
) -> tuple[np.ndarray, np.ndarray]:
    """Plain NumPy :func:`maxpool_forward`: stack one strided slice per window offset, then max and argmax.

    The winner is the first offset that is inside the image and equals the maximum (or is NaN when the maximum
    is NaN); testing "inside the image" keeps a padding cell from winning a window of ``-inf`` values.
    """
    x, geometry, y, argmax_index = _check_forward_args(
        "maxpool_forward_reference", x, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w, out,
        argmax_out,
    )
    pool_h, pool_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w = geometry
    batch, height, width, channels = x.shape
    padded_h = max(pad_top + height, (out_h - 1) * stride_h + pool_h)
    padded_w = max(pad_left + width, (out_w - 1) * stride_w + pool_w)
    padded = np.full((batch, padded_h, padded_w, channels), -np.inf, dtype=x.dtype)
    padded[:, pad_top : pad_top + height, pad_left : pad_left + width, :] = x
    inside = np.zeros((padded_h, padded_w), dtype=bool)
    inside[pad_top : pad_top + height, pad_left : pad_left + width] = True

    # windows[n, i, j, k, c] is offset k = di*pool_w + dj of window (i, j): row-major window order.
    windows = np.empty((batch, out_h, out_w, pool_h * pool_w, channels), dtype=x.dtype)
    windows_inside = np.empty((out_h, out_w, pool_h * pool_w), dtype=bool)
    for di in range(pool_h):
        for dj in range(pool_w):
            rows = slice(di, di + stride_h * out_h, stride_h)
            columns = slice(dj, dj + stride_w * out_w, stride_w)
            windows[:, :, :, di * pool_w + dj, :] = padded[:, rows, columns, :]
            windows_inside[:, :, di * pool_w + dj] = inside[rows, columns]

    y[...] = windows.max(axis=3)
    maximum = y[:, :, :, np.newaxis, :]
    is_winner = (windows == maximum) | (np.isnan(windows) & np.isnan(maximum))
    is_winner &= windows_inside[np.newaxis, :, :, :, np.newaxis]
    offset = is_winner.argmax(axis=3)  # argmax of booleans: the first True
    window_top = np.arange(out_h).reshape(1, out_h, 1, 1) * stride_h - pad_top
    window_left = np.arange(out_w).reshape(1, 1, out_w, 1) * stride_w - pad_left
    rows = window_top + offset // pool_w
    columns = window_left + offset % pool_w
    argmax_index[...] = rows * width + columns
    return y, argmax_index


def maxpool_backward_reference(dy, argmax_index, height, width, out=None) -> np.ndarray:
    """Plain NumPy :func:`maxpool_backward`: one unbuffered ``np.add.at`` scatter over flattened planes."""
    dy, argmax_index, dx = _check_backward_args("maxpool_backward_reference", dy, argmax_index, height, width, out)
    batch, height, width, channels = dx.shape
    if argmax_index.size and (argmax_index.min() < 0 or argmax_index.max() >= height * width):
        raise _out_of_range_error("maxpool_backward_reference", height, width)
    dx[...] = 0
    planes = dx.reshape(batch, height * width, channels)
    image = np.arange(batch)[:, np.newaxis, np.newaxis, np.newaxis]
    channel = np.arange(channels)[np.newaxis, np.newaxis, np.newaxis, :]
    # np.add.at, not planes[...] += dy: a pixel that wins several windows must receive every contribution.
    np.add.at(planes, (image, argmax_index, channel), dy)
    return dx
