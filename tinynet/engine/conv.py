"""The engine's Conv2D: the layer's im2col equations with its matrix products shared by the engine's threads."""

from __future__ import annotations

import numpy as np

from tinynet.engine import threads
from tinynet.engine.scratch import Scratch
from tinynet.engine.stage import StandIn
from tinynet.kernels import col2im, im2col
from tinynet.layers.conv import Conv2D


class ThreadedConv2D(StandIn):
    """Stands in for a :class:`tinynet.layers.Conv2D` that no fused block absorbs (one with an activation, or
    not followed by max pooling and ReLU): the layer's forward and backward, im2col + one product, with the
    products computed by :func:`tinynet.engine.threads.matmul`.

    That product cuts each matrix into the blocks the layer's own :func:`tinynet.kernels.blocked_matmul` cuts
    and hands them to two threads, so the results are the layer's bit for bit. The weights, gradients and
    activation are the layer's; the stage keeps its cache (the im2col matrix and the output) and its work
    arrays.
    """

    def __init__(self, conv: Conv2D) -> None:
        super().__init__(conv)
        self.conv = conv
        self._scratch = Scratch(conv.dtype)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        conv = self.conv
        x = conv.check_input(x)
        batch = x.shape[0]
        kh, kw = conv.kernel_size
        rows, depth = batch * conv.out_h * conv.out_w, kh * kw * conv._built_input_shape[-1]
        cols = im2col(x, *conv.window, out=self._scratch.get("cols", (rows, depth)))
        z = threads.matmul(cols, conv.params["kernel"].reshape(depth, conv.filters))
        if conv.use_bias:
            z += conv.params["bias"]
        y = conv.activation.forward(z.reshape(batch, conv.out_h, conv.out_w, conv.filters))
        self._cache = (cols, y, batch)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        cols, y, batch = self._take_cache()
        dy = self.conv.check_output_gradient(dy, y.shape)
        return self._backward_from_z(self.conv.activation.backward(dy, y), cols, batch)

    def backward_preactivation(self, dz: np.ndarray) -> np.ndarray | None:
        """Backward from ``dL/dz`` (the gradient before the activation), used by the fused softmax loss."""
        cols, y, batch = self._take_cache()
        return self._backward_from_z(self.conv.check_output_gradient(dz, y.shape), cols, batch)

    def _backward_from_z(self, dz: np.ndarray, cols: np.ndarray, batch: int) -> np.ndarray | None:
        conv = self.conv
        dz_rows = dz.reshape(-1, conv.filters)
        kernel = conv.params["kernel"].reshape(-1, conv.filters)
        threads.matmul(cols.T, dz_rows, out=conv.grads["kernel"].reshape(kernel.shape))
        if conv.use_bias:
            # db = 1^T dZ as a BLAS matrix-vector product, as the layer computes it.
            np.matmul(self._scratch.get("ones", (len(dz_rows),), fill=1.0), dz_rows, out=conv.grads["bias"])
        if not self.needs_input_gradient:
            return None
        dcols = threads.matmul(dz_rows, kernel.T, out=self._scratch.get("dcols", cols.shape))
        height, width, channels = conv._built_input_shape
        return col2im(dcols, batch, height, width, channels, *conv.window)
