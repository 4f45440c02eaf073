"""im2col and col2im: turn a convolution into one matrix product, and carry its gradient back.

Layout is channels-last: images are ``(N, H, W, C)`` and a Keras kernel is ``(kh, kw, C, filters)``.

Forward. For output pixel ``(n, i, j)`` and filter ``f``, a 2-D convolution (a cross-correlation) is::

    y[n, i, j, f] = b[f] + sum_{di,dj,c} x[n, i*sh + di - pad_top, j*sw + dj - pad_left, c] * K[di, dj, c, f]

where ``x`` reads as zero outside the image. ``im2col`` gathers every patch into one row of a matrix::

    cols[(n*out_h + i)*out_w + j, (di*kw + dj)*C + c] = x[n, i*sh + di - pad_top, j*sw + dj - pad_left, c]

A dilated (atrous) convolution spaces the kernel's taps ``dilation`` pixels apart: tap ``(di, dj)`` reads
``x[n, i*sh + di*dh - pad_top, j*sw + dj*dw - pad_left, c]``, so a ``k``-tap kernel spans ``k + (k-1)(d-1)``
pixels. Every function here takes ``dilation_h``/``dilation_w`` (default 1); the tap offset ``di*dh`` is
computed once per tap, outside the copy loops, so the undilated case runs the loops it always ran.

so the whole convolution is ``cols @ K.reshape(kh*kw*C, filters)`` reshaped to ``(N, out_h, out_w, filters)``:
one large matrix product, which BLAS does far faster than any loop over pixels.

Backward. ``im2col`` is a linear map ``A`` from images to matrices; with ``dY2 = dy.reshape(-1, filters)``::

    dK = (cols.T @ dY2).reshape(kh, kw, C, filters)    # the usual dense-layer weight gradient
    dx = col2im(dY2 @ K2.T)                            # col2im is the adjoint A^T of im2col

``col2im`` adds every entry of a column matrix back onto the pixel it was read from (a pixel that sits in
several patches collects several contributions; entries read from the zero padding are dropped), which is
exactly the transpose: ``<im2col(x), g> == <x, col2im(g)>`` for every ``x`` and ``g``.

Each fast kernel is a Numba loop over one image at a time (``_im2col_one_image``, ``_col2im_one_image``),
compiled ``nogil``, so a caller may hand different images to different threads (the engine,
:mod:`tinynet.engine`, runs slices of a batch side by side). Work is split over images on purpose: two kernel
offsets of one image can write the same pixel of ``dx`` in ``col2im``, and such overlapping writes would race,
whereas two images never share a pixel.

``im2col_reference`` and ``col2im_reference`` are the plain NumPy versions the tests compare against: they
loop only over the ``kh * kw`` kernel offsets, each one a strided slice of the whole zero-padded batch.
"""

from __future__ import annotations

import operator
from typing import SupportsIndex

import numba
import numpy as np

__all__ = ["im2col", "col2im", "im2col_unchecked", "col2im_unchecked", "im2col_reference", "col2im_reference"]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# ----------------------------------------------------------------------------------------------------
# Argument checks (shared with pooling.py). A Numba kernel does no bounds checking, so a wrong shape
# reaching it would corrupt memory instead of raising: every public function checks its arguments first.
# ----------------------------------------------------------------------------------------------------


def _require_int(function: str, name: str, value: object, minimum: int) -> int:
    """Return ``value`` as a Python int, raising if it is not an integer or is below ``minimum``."""
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{function}: {name} must be an integer, got bool {value!r}")
    if not isinstance(value, SupportsIndex):  # what operator.index takes: int, NumPy's integers
        raise TypeError(f"{function}: {name} must be an integer, got {type(value).__name__} {value!r}")
    as_int = operator.index(value)
    if as_int < minimum:
        raise ValueError(f"{function}: {name} must be >= {minimum}, got {as_int}")
    return as_int


def _require_float_array(function: str, name: str, array: object, ndim: int) -> np.ndarray:
    """Return ``array`` as a C-contiguous float32/float64 ndarray of rank ``ndim`` (a copy only if needed)."""
    array = np.asarray(array)
    if array.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{function}: {name} must have dtype float32 or float64, got {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"{function}: {name} must be {ndim}-D, got shape {array.shape}")
    return np.ascontiguousarray(array)


def _prepare_out(function: str, name: str, out: np.ndarray | None, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """Return ``out`` after checking it can take the result, or a freshly allocated (uninitialised) array."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{function}: {name} must be a numpy.ndarray or None, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{function}: {name} must have dtype {np.dtype(dtype)}, got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{function}: {name} must have shape {tuple(shape)}, got {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"{function}: {name} must be a writeable C-contiguous array")
    return out


def _window_geometry(
    function: str,
    kernel_h: object,
    kernel_w: object,
    stride_h: object,
    stride_w: object,
    pad_top: object,
    pad_left: object,
    out_h: object,
    out_w: object,
    size_names: tuple[str, str] = ("kernel_h", "kernel_w"),
) -> tuple[int, int, int, int, int, int, int, int]:
    """Check the sliding-window parameters and return them as Python ints, in the order given."""
    return (
        _require_int(function, size_names[0], kernel_h, 1),
        _require_int(function, size_names[1], kernel_w, 1),
        _require_int(function, "stride_h", stride_h, 1),
        _require_int(function, "stride_w", stride_w, 1),
        _require_int(function, "pad_top", pad_top, 0),
        _require_int(function, "pad_left", pad_left, 0),
        _require_int(function, "out_h", out_h, 1),
        _require_int(function, "out_w", out_w, 1),
    )


def _dilation(function: str, dilation_h: object, dilation_w: object) -> tuple[int, int]:
    return _require_int(function, "dilation_h", dilation_h, 1), _require_int(function, "dilation_w", dilation_w, 1)


def _check_im2col_args(function, x, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w, out):
    x = _require_float_array(function, "x", x, 4)
    geometry = _window_geometry(function, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w)
    kernel_h, kernel_w, _, _, _, _, out_h, out_w = geometry
    batch, _, _, channels = x.shape
    cols_shape = (batch * out_h * out_w, kernel_h * kernel_w * channels)
    cols = _prepare_out(function, "out", out, cols_shape, x.dtype)
    return x, geometry, cols


def _check_col2im_args(
    function,
    cols,
    batch,
    height,
    width,
    channels,
    kernel_h,
    kernel_w,
    stride_h,
    stride_w,
    pad_top,
    pad_left,
    out_h,
    out_w,
    out,
):
    cols = _require_float_array(function, "cols", cols, 2)
    image_shape = (
        _require_int(function, "batch", batch, 1),
        _require_int(function, "height", height, 1),
        _require_int(function, "width", width, 1),
        _require_int(function, "channels", channels, 1),
    )
    geometry = _window_geometry(function, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w)
    kernel_h, kernel_w, _, _, _, _, out_h, out_w = geometry
    expected = (image_shape[0] * out_h * out_w, kernel_h * kernel_w * image_shape[3])
    if cols.shape != expected:
        raise ValueError(
            f"{function}: cols must have shape (batch*out_h*out_w, kernel_h*kernel_w*channels) = {expected}, "
            f"got {cols.shape}"
        )
    dx = _prepare_out(function, "out", out, image_shape, cols.dtype)
    return cols, geometry, dx


# ----------------------------------------------------------------------------------------------------
# Fast kernels: one image per call, so that a caller may hand different images to different threads.
# ----------------------------------------------------------------------------------------------------


@numba.njit(cache=True)
def _inside_output_range(out_size, stride, offset, size):
    """The outputs ``[first, stop)`` whose input position ``o*stride + offset`` lies inside ``[0, size)``.

    Solving for the range once per kernel offset keeps the bounds test out of the innermost loop.
    """
    first = 0 if offset >= 0 else (-offset + stride - 1) // stride
    stop = 0 if size - 1 - offset < 0 else min((size - 1 - offset) // stride + 1, out_size)
    return min(first, stop), stop


@numba.njit(cache=True)
def _im2col_one_image(x, n, cols, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w,
                      dilation_h, dilation_w):
    """Fill the ``out_h * out_w`` rows of ``cols`` that belong to image ``n``.

    The loops run kernel offset first, like the NumPy reference: for a fixed ``(di, dj)`` the inside part of
    each output row is one strided run of pixels, and the padding part is a block of zeros.
    """
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    first_row = n * out_h * out_w
    for di in range(kernel_h):
        tap_h = di * dilation_h - pad_top  # the input row of output row 0 for this tap
        i_first, i_stop = _inside_output_range(out_h, stride_h, tap_h, height)
        for dj in range(kernel_w):
            tap_w = dj * dilation_w - pad_left
            j_first, j_stop = _inside_output_range(out_w, stride_w, tap_w, width)
            # Columns run (di, dj, c) with c fastest, matching both x's channels-last pixels and the Keras
            # kernel's reshape(kh*kw*C, filters).
            column = (di * kernel_w + dj) * channels
            column_stop = column + channels
            for i in range(out_h):
                row = first_row + i * out_w
                # Zeros where the window hangs over the padding. Plain loops, not slice assignments: those build
                # an array view each, which for a 3x3 kernel on 26 rows cost more than the copy itself.
                if i < i_first or i >= i_stop:
                    for j in range(out_w):
                        for c in range(column, column_stop):
                            cols[row + j, c] = 0
                    continue
                for j in range(j_first):
                    for c in range(column, column_stop):
                        cols[row + j, c] = 0
                for j in range(j_stop, out_w):
                    for c in range(column, column_stop):
                        cols[row + j, c] = 0
                h = i * stride_h + tap_h
                w = j_first * stride_w + tap_w
                if channels == 1:
                    # Single-channel input (a network's first layer): a one-trip channel loop costs more
                    # than the copy it wraps, so it gets a loop of its own.
                    for j in range(j_first, j_stop):
                        cols[row + j, column] = x[n, h, w, 0]
                        w += stride_w
                else:
                    for j in range(j_first, j_stop):
                        for c in range(channels):
                            cols[row + j, column + c] = x[n, h, w, c]
                        w += stride_w


@numba.njit(cache=True, nogil=True)  # nogil: tinynet's threads run it side by side
def _im2col_serial(x, cols, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w,
                   dilation_h, dilation_w):
    for n in range(x.shape[0]):
        _im2col_one_image(x, n, cols, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w,
                          dilation_h, dilation_w)



@numba.njit(cache=True)
def _col2im_one_image(cols, n, dx, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w,
                      dilation_h, dilation_w):
    """Zero image ``n`` of ``dx``, then add onto it every entry of its ``out_h * out_w`` rows of ``cols``.

    The same loops as ``_im2col_one_image`` with ``+=``; entries read from the padding have no pixel to go
    back to, so the rows and columns outside ``[first, stop)`` are simply skipped.
    """
    height, width, channels = dx.shape[1], dx.shape[2], dx.shape[3]
    dx[n, :, :, :] = 0
    first_row = n * out_h * out_w
    for di in range(kernel_h):
        tap_h = di * dilation_h - pad_top
        i_first, i_stop = _inside_output_range(out_h, stride_h, tap_h, height)
        for dj in range(kernel_w):
            tap_w = dj * dilation_w - pad_left
            j_first, j_stop = _inside_output_range(out_w, stride_w, tap_w, width)
            column = (di * kernel_w + dj) * channels
            for i in range(i_first, i_stop):
                row = first_row + i * out_w
                h = i * stride_h + tap_h
                w = j_first * stride_w + tap_w
                if channels == 1:
                    for j in range(j_first, j_stop):
                        dx[n, h, w, 0] += cols[row + j, column]
                        w += stride_w
                else:
                    for j in range(j_first, j_stop):
                        for c in range(channels):
                            dx[n, h, w, c] += cols[row + j, column + c]
                        w += stride_w


@numba.njit(cache=True, nogil=True)  # nogil: tinynet's threads run it side by side
def _col2im_serial(cols, dx, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w,
                   dilation_h, dilation_w):
    for n in range(dx.shape[0]):
        _col2im_one_image(cols, n, dx, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w,
                          dilation_h, dilation_w)



# ----------------------------------------------------------------------------------------------------
# Public fast API
# ----------------------------------------------------------------------------------------------------


def im2col(
    x, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w, out=None, dilation_h=1, dilation_w=1,
) -> np.ndarray:
    """Gather every ``kernel_h x kernel_w`` patch of ``x`` into one row of a matrix (serial Numba kernel).

    Args:
        x: images ``(N, H, W, C)``, float32 or float64, unpadded. Positions outside the image read as zero; no
            padded copy of ``x`` is made.
        kernel_h, kernel_w: window size. stride_h, stride_w: window step (>= 1).
        pad_top, pad_left: zero rows above / columns left of the image (>= 0). Padding at the bottom/right is
            implied by ``out_h`` / ``out_w``.
        out_h, out_w: number of window positions down / across.
        out: optional C-contiguous buffer of the result's shape and dtype; it is filled and returned, so a
            layer can reuse one buffer across steps.
        dilation_h, dilation_w: spacing of the kernel's taps (>= 1; 1 is an ordinary convolution).

    Returns:
        ``cols`` of shape ``(N*out_h*out_w, kernel_h*kernel_w*C)``, dtype of ``x``, with
        ``cols[(n*out_h + i)*out_w + j, (di*kernel_w + dj)*C + c] = x[n, i*stride_h + di*dilation_h - pad_top,
        j*stride_w + dj*dilation_w - pad_left, c]`` (zero outside the image).
    """
    x, geometry, cols = _check_im2col_args(
        "im2col", x, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w, out
    )
    _im2col_serial(x, cols, *geometry, *_dilation("im2col", dilation_h, dilation_w))  # type: ignore[call-arg]  # a Numba dispatcher takes the kernel's own arguments
    return cols



def col2im(
    cols, batch, height, width, channels, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left,
    out_h, out_w, out=None, dilation_h=1, dilation_w=1,
) -> np.ndarray:
    """The adjoint of :func:`im2col`: add every entry of ``cols`` back onto the pixel it was read from.

    ``dx[n, h, w, c] = sum of cols[(n*out_h + i)*out_w + j, (di*kernel_w + dj)*C + c]`` over all
    ``(i, j, di, dj)`` with ``i*stride_h + di*dilation_h - pad_top == h`` and
    ``j*stride_w + dj*dilation_w - pad_left == w``.
    Entries that were read from the padding are dropped. The window arguments are those given to
    :func:`im2col`; ``(batch, height, width, channels)`` is the shape of the image it was given.

    Returns ``dx`` of shape ``(batch, height, width, channels)``, dtype of ``cols``. ``out``, if given, must
    have that shape and dtype and be C-contiguous; it is zeroed, filled and returned.
    """
    cols, geometry, dx = _check_col2im_args(
        "col2im", cols, batch, height, width, channels, kernel_h, kernel_w, stride_h, stride_w,
        pad_top, pad_left, out_h, out_w, out,
    )
    _col2im_serial(cols, dx, *geometry, *_dilation("col2im", dilation_h, dilation_w))  # type: ignore[call-arg]  # (see im2col)
    return dx



def im2col_unchecked(
    x, cols, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w, dilation_h=1, dilation_w=1,
) -> None:
    """:func:`im2col` into ``cols`` without the argument checks, for callers that checked the geometry once
    (a fused stage calls it per slice of a batch, where the checks would cost more than the copy). Releases the
    GIL. Wrong shapes here write out of bounds: pass only what :func:`im2col` would accept."""
    _im2col_serial(x, cols, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w, dilation_h,
                   dilation_w)


def col2im_unchecked(
    cols, dx, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w, dilation_h=1, dilation_w=1,
) -> None:
    """:func:`col2im` into ``dx`` (zeroed first) without the argument checks; the same caveats as
    :func:`im2col_unchecked`."""
    _col2im_serial(cols, dx, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w, dilation_h,
                   dilation_w)


# ----------------------------------------------------------------------------------------------------
# Plain NumPy references, for the tests
# ----------------------------------------------------------------------------------------------------


def _padded_size(size: int, pad_before: int, kernel: int, stride: int, out: int, dilation: int = 1) -> int:
    """Rows (or columns) of a padded image big enough for the image itself and for every (dilated) window."""
    return max(pad_before + size, (out - 1) * stride + (kernel - 1) * dilation + 1)


def im2col_reference(
    x, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w, out=None, dilation_h=1, dilation_w=1,
):
    """Plain NumPy :func:`im2col`: zero-pad the batch, then copy one strided slice per kernel offset."""
    x, geometry, cols = _check_im2col_args(
        "im2col_reference", x, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w, out
    )
    kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w = geometry
    dilation_h, dilation_w = _dilation("im2col_reference", dilation_h, dilation_w)
    batch, height, width, channels = x.shape
    padded = np.zeros(
        (
            batch,
            _padded_size(height, pad_top, kernel_h, stride_h, out_h, dilation_h),
            _padded_size(width, pad_left, kernel_w, stride_w, out_w, dilation_w),
            channels,
        ),
        dtype=x.dtype,
    )
    padded[:, pad_top : pad_top + height, pad_left : pad_left + width, :] = x
    patches = cols.reshape(batch, out_h, out_w, kernel_h, kernel_w, channels)
    for di in range(kernel_h):
        for dj in range(kernel_w):
            # Tap (di, dj) of every window at once: rows di*dh, di*dh + stride_h, ..., columns likewise.
            top, left = di * dilation_h, dj * dilation_w
            patches[:, :, :, di, dj, :] = padded[
                :, top : top + stride_h * out_h : stride_h, left : left + stride_w * out_w : stride_w, :
            ]
    return cols


def col2im_reference(
    cols, batch, height, width, channels, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left,
    out_h, out_w, out=None, dilation_h=1, dilation_w=1,
) -> np.ndarray:
    """Plain NumPy :func:`col2im`: the same loop over kernel offsets as the reference im2col, with ``+=``."""
    cols, geometry, dx = _check_col2im_args(
        "col2im_reference", cols, batch, height, width, channels, kernel_h, kernel_w, stride_h, stride_w,
        pad_top, pad_left, out_h, out_w, out,
    )
    kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w = geometry
    dilation_h, dilation_w = _dilation("col2im_reference", dilation_h, dilation_w)
    batch, height, width, channels = dx.shape
    padded = np.zeros(
        (
            batch,
            _padded_size(height, pad_top, kernel_h, stride_h, out_h, dilation_h),
            _padded_size(width, pad_left, kernel_w, stride_w, out_w, dilation_w),
            channels,
        ),
        dtype=cols.dtype,
    )
    patches = cols.reshape(batch, out_h, out_w, kernel_h, kernel_w, channels)
    for di in range(kernel_h):
        for dj in range(kernel_w):
            # Within one offset the strided slice holds distinct pixels, so a vectorised += is safe here.
            top, left = di * dilation_h, dj * dilation_w
            padded[:, top : top + stride_h * out_h : stride_h, left : left + stride_w * out_w : stride_w, :] += \
                patches[:, :, :, di, dj, :]
    dx[...] = padded[:, pad_top : pad_top + height, pad_left : pad_left + width, :]
    return dx
