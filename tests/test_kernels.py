"""Tests for tinynet.kernels: the Numba kernels against their NumPy references, and both against the math.

Hypothesis draws batch sizes, image sizes, channels, window sizes, strides and paddings ('valid', Keras
'same', and arbitrary explicit pads), in float32 and float64. Fast == reference exactly where the kernel only
copies or compares values (im2col, maxpool forward), and to rounding where it adds them in another order
(col2im, maxpool backward).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.kernels import (
    col2im,
    col2im_reference,
    im2col,
    im2col_reference,
    maxpool_backward,
    maxpool_backward_reference,
    maxpool_forward,
    maxpool_forward_reference,
)

# Numba compiles on the first call of each dtype, so no per-example deadline.
KERNEL_SETTINGS = settings(deadline=None, max_examples=40)

IM2COL_FAST = [pytest.param(im2col, id="serial")]
COL2IM_FAST = [pytest.param(col2im, id="serial")]
MAXPOOL_FORWARD_FAST = [
    pytest.param(maxpool_forward, id="serial"),
]
MAXPOOL_BACKWARD_FAST = [
    pytest.param(maxpool_backward, id="serial"),
]
MAXPOOL_FORWARD_ALL = [*MAXPOOL_FORWARD_FAST, pytest.param(maxpool_forward_reference, id="reference")]

# Summing in another order changes float32 results by a few ulps of the largest partial sum.
SUM_TOLERANCE = {
    np.dtype(np.float32): dict(rtol=1e-5, atol=1e-5),
    np.dtype(np.float64): dict(rtol=1e-12, atol=1e-12),
}


def keras_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(pad_before, out) for Keras 'same': out = ceil(size/stride), the smaller half of the pad first."""
    out = -(-size // stride)
    total_pad = max((out - 1) * stride + kernel - size, 0)
    return total_pad // 2, out


@dataclasses.dataclass(frozen=True)
class WindowProblem:
    """One drawn sliding-window problem: an input batch and the geometry of its windows."""

    x: np.ndarray
    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    out_h: int
    out_w: int
    padding: str

    @property
    def window(self) -> tuple[int, ...]:
        """The eight window arguments, in the order every kernel takes them."""
        return (
            self.kernel_h,
            self.kernel_w,
            self.stride_h,
            self.stride_w,
            self.pad_top,
            self.pad_left,
            self.out_h,
            self.out_w,
        )

    @property
    def cols_shape(self) -> tuple[int, int]:
        batch, _, _, channels = self.x.shape
        return batch * self.out_h * self.out_w, self.kernel_h * self.kernel_w * channels

    @property
    def pooled_shape(self) -> tuple[int, ...]:
        batch, _, _, channels = self.x.shape
        return batch, self.out_h, self.out_w, channels


def _draw_axis(draw, padding: str) -> tuple[int, int, int, int, int]:
    """(size, kernel, stride, pad_before, out) along one spatial axis."""
    kernel = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 3))
    if padding == "valid":
        size = draw(st.integers(kernel, kernel + 6))
        return size, kernel, stride, 0, (size - kernel) // stride + 1
    if padding == "same":
        size = draw(st.integers(1, 9))
        return (size, kernel, stride, *keras_same_padding(size, kernel, stride))
    # Explicit pads below the window size, so that every pooling window still overlaps the image.
    pad_before = draw(st.integers(0, kernel - 1))
    pad_after = draw(st.integers(0, kernel - 1))
    size = draw(st.integers(max(1, kernel - pad_before - pad_after), 9))
    return size, kernel, stride, pad_before, (size + pad_before + pad_after - kernel) // stride + 1


@st.composite
def window_problems(draw, dtypes=(np.float32, np.float64)) -> WindowProblem:
    padding = draw(st.sampled_from(["valid", "same", "explicit"]))
    height, kernel_h, stride_h, pad_top, out_h = _draw_axis(draw, padding)
    width, kernel_w, stride_w, pad_left, out_w = _draw_axis(draw, padding)
    batch = draw(st.integers(1, 3))
    channels = draw(st.integers(1, 4))
    dtype = draw(st.sampled_from(dtypes))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        x = rng.standard_normal((batch, height, width, channels))
    else:
        # Few distinct values: many ties inside each pooling window.
        x = rng.integers(-2, 3, size=(batch, height, width, channels)).astype(float)
    return WindowProblem(
        x.astype(dtype), kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w, padding
    )


def _random_like(shape, dtype, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ----------------------------------------------------------------------------------------------------
# im2col / col2im
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fast_im2col", IM2COL_FAST)
@KERNEL_SETTINGS
@given(problem=window_problems())
def test_im2col_equals_reference_exactly(fast_im2col, problem):
    cols = fast_im2col(problem.x, *problem.window)
    expected = im2col_reference(problem.x, *problem.window)
    assert cols.dtype == problem.x.dtype
    assert cols.shape == problem.cols_shape
    np.testing.assert_array_equal(cols, expected)


@pytest.mark.parametrize("fast_col2im", COL2IM_FAST)
@KERNEL_SETTINGS
@given(problem=window_problems(), seed=st.integers(0, 2**32 - 1))
def test_col2im_matches_reference(fast_col2im, problem, seed):
    cols = _random_like(problem.cols_shape, problem.x.dtype, seed)
    dx = fast_col2im(cols, *problem.x.shape, *problem.window)
    expected = col2im_reference(cols, *problem.x.shape, *problem.window)
    assert dx.dtype == problem.x.dtype
    assert dx.shape == problem.x.shape
    np.testing.assert_allclose(dx, expected, **SUM_TOLERANCE[problem.x.dtype])


@pytest.mark.parametrize(
    ("im2col_function", "col2im_function"),
    [
        pytest.param(im2col, col2im, id="serial"),
        pytest.param(im2col_reference, col2im_reference, id="reference"),
    ],
)
@KERNEL_SETTINGS
@given(problem=window_problems(dtypes=(np.float64,)), seed=st.integers(0, 2**32 - 1))
def test_col2im_is_the_adjoint_of_im2col(im2col_function, col2im_function, problem, seed):
    # <A x, g> == <x, A^T g>: the identity that makes col2im the right backward pass for im2col.
    upstream = _random_like(problem.cols_shape, np.float64, seed)
    left = np.vdot(im2col_function(problem.x, *problem.window), upstream)
    right = np.vdot(problem.x, col2im_function(upstream, *problem.x.shape, *problem.window))
    assert left == pytest.approx(right, rel=1e-12, abs=1e-12)


def naive_convolution(x, kernel, stride_h, stride_w, pad_top, pad_left, out_h, out_w):
    """The textbook definition, one multiply-add at a time: y[n,i,j,f] = sum x[n,h,w,c] K[di,dj,c,f]."""
    batch, height, width, channels = x.shape
    kernel_h, kernel_w, _, filters = kernel.shape
    y = np.zeros((batch, out_h, out_w, filters))
    for n in range(batch):
        for i in range(out_h):
            for j in range(out_w):
                for f in range(filters):
                    for di in range(kernel_h):
                        for dj in range(kernel_w):
                            h = i * stride_h + di - pad_top
                            w = j * stride_w + dj - pad_left
                            if 0 <= h < height and 0 <= w < width:
                                for c in range(channels):
                                    y[n, i, j, f] += x[n, h, w, c] * kernel[di, dj, c, f]
    return y


@pytest.mark.parametrize("fast_im2col", IM2COL_FAST)
@pytest.mark.parametrize(
    ("height", "width", "kernel_h", "kernel_w", "stride_h", "stride_w", "padding"),
    [
        (5, 6, 3, 3, 1, 1, "valid"),
        (5, 6, 3, 2, 1, 1, "same"),
        (7, 6, 3, 3, 2, 2, "same"),
        (6, 5, 2, 3, 2, 1, "valid"),
    ],
)
def test_im2col_matmul_equals_naive_convolution(
    fast_im2col, height, width, kernel_h, kernel_w, stride_h, stride_w, padding
):
    rng = np.random.default_rng(0)
    channels, filters = 3, 4
    x = rng.standard_normal((2, height, width, channels))
    kernel = rng.standard_normal((kernel_h, kernel_w, channels, filters))  # Keras layout (kh, kw, in, out)
    if padding == "valid":
        pad_top = pad_left = 0
        out_h, out_w = (height - kernel_h) // stride_h + 1, (width - kernel_w) // stride_w + 1
    else:
        pad_top, out_h = keras_same_padding(height, kernel_h, stride_h)
        pad_left, out_w = keras_same_padding(width, kernel_w, stride_w)
    cols = fast_im2col(x, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w)
    y = (cols @ kernel.reshape(-1, filters)).reshape(2, out_h, out_w, filters)
    expected = naive_convolution(x, kernel, stride_h, stride_w, pad_top, pad_left, out_h, out_w)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_im2col_reads_zero_in_the_padding():
    x = np.arange(1.0, 5.0).reshape(1, 2, 2, 1)  # [[1, 2], [3, 4]]
    cols = im2col(x, 3, 3, 1, 1, 1, 1, 2, 2)
    # The window of output (0, 0) is centred on pixel (0, 0): its first row and column are padding.
    np.testing.assert_array_equal(cols[0], [0, 0, 0, 0, 1, 2, 0, 3, 4])
    np.testing.assert_array_equal(cols[3], [1, 2, 0, 3, 4, 0, 0, 0, 0])


@pytest.mark.parametrize(
    ("im2col_function", "col2im_function"),
    [pytest.param(im2col, col2im, id="serial")],
)
def test_windows_past_the_image_edge_read_zero_and_give_back_nothing(im2col_function, col2im_function):
    # More outputs than the image holds (and a pad as large as the kernel): whole windows in the padding.
    x = np.random.default_rng(5).standard_normal((2, 4, 3, 2))
    window = (2, 3, 2, 1, 2, 3, 5, 7)
    cols = im2col_function(x, *window)
    np.testing.assert_array_equal(cols, im2col_reference(x, *window))
    assert np.all(cols.reshape(2, 5, 7, -1)[:, 0] == 0) and np.all(cols.reshape(2, 5, 7, -1)[:, 4] == 0)
    upstream = np.random.default_rng(6).standard_normal(cols.shape)
    np.testing.assert_allclose(
        col2im_function(upstream, 2, 4, 3, 2, *window),
        col2im_reference(upstream, 2, 4, 3, 2, *window),
        rtol=1e-12,
        atol=1e-12,
    )


def test_im2col_accepts_non_contiguous_input():
    x = np.random.default_rng(1).standard_normal((2, 6, 5, 3))[:, ::-1, :, ::2]
    np.testing.assert_array_equal(
        im2col(x, 2, 2, 1, 1, 0, 0, 5, 4), im2col_reference(x, 2, 2, 1, 1, 0, 0, 5, 4)
    )


@pytest.mark.parametrize("im2col_function", [*IM2COL_FAST, pytest.param(im2col_reference, id="reference")])
def test_im2col_out_buffer_is_filled_and_returned(im2col_function):
    x = np.random.default_rng(2).standard_normal((2, 5, 5, 2)).astype(np.float32)
    window = (3, 3, 1, 1, 1, 1, 5, 5)
    buffer = np.full((2 * 5 * 5, 3 * 3 * 2), 7.0, dtype=np.float32)
    result = im2col_function(x, *window, out=buffer)
    assert result is buffer
    np.testing.assert_array_equal(buffer, im2col_reference(x, *window))


@pytest.mark.parametrize("col2im_function", [*COL2IM_FAST, pytest.param(col2im_reference, id="reference")])
def test_col2im_out_buffer_is_zeroed_filled_and_returned(col2im_function):
    cols = np.random.default_rng(3).standard_normal((2 * 4 * 4, 3 * 3 * 2))
    window = (3, 3, 1, 1, 0, 0, 4, 4)
    buffer = np.full((2, 6, 6, 2), 7.0)  # stale values must not leak into the sum
    result = col2im_function(cols, 2, 6, 6, 2, *window, out=buffer)
    assert result is buffer
    np.testing.assert_allclose(buffer, col2im_reference(cols, 2, 6, 6, 2, *window), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------------------------
# Max pooling
# ----------------------------------------------------------------------------------------------------


def brute_force_first_maximum(x, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w):
    """For each window and channel, the flat index of the first maximum in row-major order, pixel by pixel."""
    batch, height, width, channels = x.shape
    argmax_index = np.empty((batch, out_h, out_w, channels), dtype=np.int64)
    for n in range(batch):
        for i in range(out_h):
            for j in range(out_w):
                for c in range(channels):
                    best_value, best_index = -np.inf, None
                    for di in range(pool_h):
                        for dj in range(pool_w):
                            h, w = i * stride_h + di - pad_top, j * stride_w + dj - pad_left
                            if 0 <= h < height and 0 <= w < width:
                                if best_index is None or x[n, h, w, c] > best_value:
                                    best_value, best_index = x[n, h, w, c], h * width + w
                    argmax_index[n, i, j, c] = best_index
    return argmax_index


@pytest.mark.parametrize("fast_forward", MAXPOOL_FORWARD_FAST)
@KERNEL_SETTINGS
@given(problem=window_problems())
def test_maxpool_forward_equals_reference_exactly(fast_forward, problem):
    y, argmax_index = fast_forward(problem.x, *problem.window)
    expected_y, expected_index = maxpool_forward_reference(problem.x, *problem.window)
    assert y.dtype == problem.x.dtype and argmax_index.dtype == np.int32
    assert y.shape == argmax_index.shape == problem.pooled_shape
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(argmax_index, expected_index)


@settings(deadline=None, max_examples=25)
@given(problem=window_problems())
def test_maxpool_argmax_is_the_first_maximum_of_its_window(problem):
    # Checked against a pixel-by-pixel scan, independently of the NumPy reference.
    y, argmax_index = maxpool_forward(problem.x, *problem.window)
    np.testing.assert_array_equal(argmax_index, brute_force_first_maximum(problem.x, *problem.window))
    batch, height, width, channels = problem.x.shape
    planes = problem.x.reshape(batch, height * width, channels)
    winners = np.take_along_axis(planes, argmax_index.reshape(batch, -1, channels).astype(np.intp), axis=1)
    np.testing.assert_array_equal(winners.reshape(y.shape), y)


@pytest.mark.parametrize("forward", MAXPOOL_FORWARD_ALL)
def test_maxpool_ties_go_to_the_first_maximum_in_row_major_order(forward):
    x = np.zeros((1, 4, 4, 2), dtype=np.float32)
    # Channel 0: the window of output (0, 0) holds 5 at (0, 1) and at (1, 0): (0, 1) comes first.
    x[0, 0, 1, 0] = x[0, 1, 0, 0] = 5
    # Channel 1 is all zeros: every window is one big tie, won by its top-left pixel.
    y, argmax_index = forward(x, 2, 2, 2, 2, 0, 0, 2, 2)
    assert argmax_index[0, 0, 0, 0] == 0 * 4 + 1
    assert y[0, 0, 0, 0] == 5
    np.testing.assert_array_equal(argmax_index[0, :, :, 1], [[0, 2], [8, 10]])
    # Overlapping windows (stride 1) tie too: each picks its own top-left pixel.
    _, overlapping_index = forward(x[..., 1:], 2, 2, 1, 1, 0, 0, 3, 3)
    np.testing.assert_array_equal(overlapping_index[0, :, :, 0], [[0, 1, 2], [4, 5, 6], [8, 9, 10]])


@pytest.mark.parametrize("forward", MAXPOOL_FORWARD_ALL)
def test_maxpool_padding_never_wins(forward):
    # All pixels negative (or -inf), 'same' padding: a zero-padded max would wrongly return 0 at the border.
    x = -np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    y, argmax_index = forward(x, 2, 2, 2, 2, 0, 0, 2, 2)  # 'same' for 3x3, pool 2, stride 2: pad 0 / 1
    np.testing.assert_array_equal(y[0, :, :, 0], [[-1, -3], [-7, -9]])
    np.testing.assert_array_equal(argmax_index[0, :, :, 0], [[0, 2], [6, 8]])
    y, argmax_index = forward(np.full((1, 3, 3, 1), -np.inf), 3, 3, 1, 1, 1, 1, 3, 3)
    assert np.all(y == -np.inf)
    # Even a window of -inf reports a pixel inside the image: the top-left real pixel of the window.
    np.testing.assert_array_equal(argmax_index[0, :, :, 0], [[0, 0, 1], [0, 0, 1], [3, 3, 4]])


@pytest.mark.parametrize("forward", MAXPOOL_FORWARD_ALL)
def test_maxpool_nan_propagates_and_first_nan_wins(forward):
    x = np.array([[1.0, np.nan], [np.nan, 9.0]]).reshape(1, 2, 2, 1)
    y, argmax_index = forward(x, 2, 2, 2, 2, 0, 0, 1, 1)
    assert np.isnan(y[0, 0, 0, 0])
    assert argmax_index[0, 0, 0, 0] == 1


@pytest.mark.parametrize("forward", MAXPOOL_FORWARD_ALL)
def test_maxpool_forward_out_buffers_are_filled_and_returned(forward):
    x = np.random.default_rng(4).standard_normal((2, 6, 6, 3))
    y_buffer = np.full((2, 3, 3, 3), 7.0)
    index_buffer = np.full((2, 3, 3, 3), -1, dtype=np.int32)
    y, argmax_index = forward(x, 2, 2, 2, 2, 0, 0, 3, 3, out=y_buffer, argmax_out=index_buffer)
    assert y is y_buffer and argmax_index is index_buffer
    expected_y, expected_index = maxpool_forward_reference(x, 2, 2, 2, 2, 0, 0, 3, 3)
    np.testing.assert_array_equal(y_buffer, expected_y)
    np.testing.assert_array_equal(index_buffer, expected_index)


@pytest.mark.parametrize("fast_backward", MAXPOOL_BACKWARD_FAST)
@KERNEL_SETTINGS
@given(problem=window_problems(), seed=st.integers(0, 2**32 - 1))
def test_maxpool_backward_matches_reference(fast_backward, problem, seed):
    _, argmax_index = maxpool_forward_reference(problem.x, *problem.window)
    dy = _random_like(problem.pooled_shape, problem.x.dtype, seed)
    _, height, width, _ = problem.x.shape
    dx = fast_backward(dy, argmax_index, height, width)
    expected = maxpool_backward_reference(dy, argmax_index, height, width)
    assert dx.dtype == problem.x.dtype and dx.shape == problem.x.shape
    np.testing.assert_allclose(dx, expected, **SUM_TOLERANCE[problem.x.dtype])
    # Gradient is only routed, never created or lost.
    assert dx.sum() == pytest.approx(dy.sum(), rel=1e-4, abs=1e-4)


@pytest.mark.parametrize(
    "backward", [*MAXPOOL_BACKWARD_FAST, pytest.param(maxpool_backward_reference, id="reference")]
)
def test_maxpool_backward_adds_up_a_pixel_that_wins_several_windows(backward):
    x = np.zeros((1, 3, 3, 1))
    x[0, 1, 1, 0] = 1.0  # the centre wins all four overlapping 2x2 windows (stride 1)
    _, argmax_index = maxpool_forward(x, 2, 2, 1, 1, 0, 0, 2, 2)
    dy = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 2, 2, 1)
    buffer = np.full((1, 3, 3, 1), 7.0)
    dx = backward(dy, argmax_index, 3, 3, out=buffer)
    assert dx is buffer
    expected = np.zeros((1, 3, 3, 1))
    expected[0, 1, 1, 0] = 10.0
    np.testing.assert_array_equal(dx, expected)


# ----------------------------------------------------------------------------------------------------
# Argument errors: the kernels do no bounds checks, so bad arguments must be caught before them
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("im2col_function", [*IM2COL_FAST, pytest.param(im2col_reference, id="reference")])
def test_im2col_rejects_bad_arguments(im2col_function):
    x = np.zeros((2, 5, 5, 3))
    window = (3, 3, 1, 1, 0, 0, 3, 3)
    with pytest.raises(TypeError, match="x must have dtype float32 or float64, got int64"):
        im2col_function(np.zeros((2, 5, 5, 3), dtype=np.int64), *window)
    with pytest.raises(ValueError, match=r"x must be 4-D, got shape \(5, 5, 3\)"):
        im2col_function(x[0], *window)
    with pytest.raises(ValueError, match="stride_h must be >= 1, got 0"):
        im2col_function(x, 3, 3, 0, 1, 0, 0, 3, 3)
    with pytest.raises(ValueError, match="pad_left must be >= 0, got -1"):
        im2col_function(x, 3, 3, 1, 1, 0, -1, 3, 3)
    with pytest.raises(TypeError, match="kernel_w must be an integer, got float 3.0"):
        im2col_function(x, 3, 3.0, 1, 1, 0, 0, 3, 3)
    with pytest.raises(ValueError, match=r"out must have shape \(18, 27\), got \(18, 26\)"):
        im2col_function(x, *window, out=np.empty((18, 26)))
    with pytest.raises(TypeError, match="out must have dtype float64, got float32"):
        im2col_function(x, *window, out=np.empty((18, 27), dtype=np.float32))
    with pytest.raises(ValueError, match="out must be a writeable C-contiguous array"):
        im2col_function(x, *window, out=np.empty((27, 18)).T)


@pytest.mark.parametrize("col2im_function", [*COL2IM_FAST, pytest.param(col2im_reference, id="reference")])
def test_col2im_rejects_cols_of_the_wrong_shape(col2im_function):
    with pytest.raises(ValueError, match=r"cols must have shape .* = \(18, 27\), got \(18, 18\)"):
        col2im_function(np.zeros((18, 18)), 2, 5, 5, 3, 3, 3, 1, 1, 0, 0, 3, 3)


@pytest.mark.parametrize("forward", MAXPOOL_FORWARD_ALL)
def test_maxpool_forward_rejects_windows_outside_the_image(forward):
    x = np.zeros((1, 4, 4, 1))
    with pytest.raises(ValueError, match="every pooling window must overlap the image"):
        forward(x, 2, 2, 2, 2, 2, 0, 3, 2)  # pad_top == pool_h: the first row of windows is all padding
    with pytest.raises(ValueError, match="along the columns"):
        forward(x, 2, 2, 2, 2, 0, 0, 2, 3)  # a third column of windows starts past the right edge
    with pytest.raises(TypeError, match="argmax_out must have dtype int32, got int64"):
        forward(x, 2, 2, 2, 2, 0, 0, 2, 2, argmax_out=np.zeros((1, 2, 2, 1), dtype=np.int64))


@pytest.mark.parametrize(
    "backward", [*MAXPOOL_BACKWARD_FAST, pytest.param(maxpool_backward_reference, id="reference")]
)
def test_maxpool_backward_rejects_bad_argmax_index(backward):
    dy = np.ones((2, 2, 2, 1))
    with pytest.raises(
        ValueError, match=r"argmax_index must hold flat indices in \[0, height\*width\) = \[0, 16\)"
    ):
        backward(dy, np.full((2, 2, 2, 1), 16, dtype=np.int32), 4, 4)
    with pytest.raises(ValueError, match="argmax_index must hold flat indices"):
        backward(dy, np.full((2, 2, 2, 1), -1, dtype=np.int32), 4, 4)
    with pytest.raises(TypeError, match="argmax_index must have dtype int32, got int64"):
        backward(dy, np.zeros((2, 2, 2, 1), dtype=np.int64), 4, 4)
    with pytest.raises(ValueError, match=r"argmax_index must have the shape of dy \(2, 2, 2, 1\)"):
        backward(dy, np.zeros((2, 2, 2, 2), dtype=np.int32), 4, 4)
