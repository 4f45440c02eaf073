"""AveragePooling2D: the mean of each window, with a gradient shared equally by the window's pixels."""

from __future__ import annotations

import numpy as np

from tinynet.layers._pooling2d import Pooling2D


class AveragePooling2D(Pooling2D):
    r"""2-D average pooling over channels-last images, Keras 2's ``AveragePooling2D``.

    Shapes: ``(N, H, W, C) -> (N, Ho, Wo, C)``. ``strides=None`` means ``strides = pool_size``; 'valid' drops
    windows that do not fit, 'same' pads so that ``Ho = ceil(H / sh)`` (the geometry of ``_geometry``).

    Forward, per sample and channel, with ``V(i, j)`` the pixels of window ``(i, j)`` that lie inside the image
    and ``count[i, j] = |V(i, j)|``::

        y[i, j] = (1 / count[i, j]) * sum_{(h, w) in V(i, j)} x[h, w]

    Padding is *not* counted: a corner window of a 'same' pooling that covers 2 real pixels and 2 padded ones is
    the mean of the 2 real pixels. That is what TensorFlow's ``avg_pool`` does, and so Keras 2 on TensorFlow
    (PyTorch's ``AvgPool2d`` counts the zeros by default; there the corner would be half as large). With
    'valid' padding every window is whole and ``count = pool_h * pool_w`` everywhere.

    Backward: ``y[i, j]`` is linear in the pixels of its window with weight ``1 / count[i, j]`` each, so every
    pixel receives that share of the window's gradient, summed over the windows it belongs to (more than one
    when ``stride < pool``)::

        dx[h, w] = sum over windows (i, j) containing (h, w) of dy[i, j] / count[i, j]

    Implementation, as in *Deep Learning from Scratch*'s im2col: loop only over the ``pool_h * pool_w`` offsets
    inside a window; each offset is one strided slice of the whole zero-padded batch, added to the sum
    (forward) or added into (backward). ``count`` depends on the geometry only, so it is computed once in
    ``build`` by pooling a plane of ones that is 1 inside the image and 0 in the padding.

    Cache: only the batch size (the map is linear with fixed weights: backward needs no input values).
    """

    def build(self, input_shape: tuple[int, ...]) -> None:
        super().build(input_shape)  # the window geometry: out_h, out_w, pad_top, pad_left
        input_shape = self._built_input_shape
        height, width, _ = input_shape
        (pool_h, pool_w), (stride_h, stride_w) = self.pool_size, self.strides
        # The padded plane must hold the last window; 'valid' may leave rows past it unread (never padded).
        self.padded_h = max(height + self.pad_top, (self.out_h - 1) * stride_h + pool_h)
        self.padded_w = max(width + self.pad_left, (self.out_w - 1) * stride_w + pool_w)
        inside = np.zeros((1, self.padded_h, self.padded_w, 1), dtype=np.float64)
        inside[:, self.pad_top:self.pad_top + height, self.pad_left:self.pad_left + width] = 1.0
        self.count = self._window_sums(inside)[0, :, :, 0]  # (Ho, Wo), >= 1: every window holds a real pixel
        self._inverse_count = (1.0 / self.count)[None, :, :, None]

    def _window_slice(self, offset_h: int, offset_w: int) -> tuple[slice, slice, slice, slice]:
        """The strided slice of the padded batch that holds pixel ``(offset_h, offset_w)`` of every window."""
        (stride_h, stride_w) = self.strides
        rows = slice(offset_h, offset_h + (self.out_h - 1) * stride_h + 1, stride_h)
        cols = slice(offset_w, offset_w + (self.out_w - 1) * stride_w + 1, stride_w)
        return (slice(None), rows, cols, slice(None))

    def _window_sums(self, padded: np.ndarray) -> np.ndarray:
        sums = np.zeros((padded.shape[0], self.out_h, self.out_w, padded.shape[3]), dtype=padded.dtype)
        for offset_h in range(self.pool_size[0]):
            for offset_w in range(self.pool_size[1]):
                sums += padded[self._window_slice(offset_h, offset_w)]
        return sums

    def _pad(self, x: np.ndarray) -> np.ndarray:
        height, width, _ = self._built_input_shape
        if (self.padded_h, self.padded_w) == (height, width):
            return x
        padded = np.zeros((x.shape[0], self.padded_h, self.padded_w, x.shape[3]), dtype=x.dtype)
        padded[:, self.pad_top:self.pad_top + height, self.pad_left:self.pad_left + width] = x
        return padded

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        sums = self._window_sums(self._pad(x))
        sums *= self._inverse_count.astype(self.dtype)
        self._cache = x.shape[0]
        return sums

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        batch = self._take_cache()
        dy = self._check_output_gradient(dy, (batch, *self._built_output_shape))
        if not self.needs_input_gradient:
            return None
        share = dy * self._inverse_count.astype(self.dtype)
        height, width, channels = self._built_input_shape
        dpadded = np.zeros((batch, self.padded_h, self.padded_w, channels), dtype=self.dtype)
        for offset_h in range(self.pool_size[0]):
            for offset_w in range(self.pool_size[1]):
                dpadded[self._window_slice(offset_h, offset_w)] += share
        # Gradients that landed on padding belong to no input pixel: cut them off.
        return np.ascontiguousarray(dpadded[:, self.pad_top:self.pad_top + height, self.pad_left:self.pad_left + width])
