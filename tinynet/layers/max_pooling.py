"""MaxPooling2D: the maximum of each window, with a gradient that flows only to the winner."""

from __future__ import annotations

import numpy as np

from tinynet.kernels import maxpool_backward, maxpool_forward
from tinynet.layers._pooling2d import Pooling2D


class MaxPooling2D(Pooling2D):
    r"""2-D max pooling over channels-last images, Keras 2's ``MaxPooling2D``.

    Shapes: ``(N, H, W, C) -> (N, Ho, Wo, C)``; ``strides=None`` means ``strides = pool_size``; 'valid' padding
    drops windows that do not fit, 'same' pads so ``Ho = ceil(H / sh)`` and padded positions never win.

    Forward, per sample and channel::

        y[i,j] = max_{di,dj} x[i*sh + di - pt, j*sw + dj - pl]
        a[i,j] = the flat position h*W + w of that maximum        (``argmax_index``)

    Backward: ``y[i,j]`` equals one input element, so ``dy/dx`` is 1 for the winner and 0 for the rest of the
    window::

        dx[h, w] = sum over windows (i,j) whose winner is (h, w) of dy[i, j]

    (a sum, because overlapping windows, ``stride < pool``, can share a winner). Ties go to the first maximum in
    row-major window order, as TensorFlow and Caffe do; the true derivative is undefined at a tie. Cache: the
    ``argmax_index`` array, int32, shape of ``y``.
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        y, argmax_index = maxpool_forward(x, *self.window)
        self._cache = argmax_index
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        argmax_index = self._take_cache()
        dy = self._check_output_gradient(dy, argmax_index.shape)
        if not self.needs_input_gradient:
            return None
        height, width, _ = self._built_input_shape
        return maxpool_backward(dy, argmax_index, height, width)
