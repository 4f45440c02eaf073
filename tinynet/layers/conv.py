"""Conv2D: a 2-D convolution (cross-correlation, as in every deep-learning library) done as im2col + one GEMM."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynet import activations
from tinynet import initializers as initializers_module
from tinynet.kernels import blocked_matmul, col2im, im2col
from tinynet.layers._geometry import check_padding, window_geometry
from tinynet.layers.base import Layer, normalize_tuple


class Conv2D(Layer):
    r"""2-D convolution over channels-last images, Keras 2's ``Conv2D``.

    Shapes: input ``x`` is ``(N, H, W, C)``, kernel ``K`` is ``(kh, kw, C, F)`` (Keras layout), bias ``b`` is
    ``(F,)``, output ``y`` is ``(N, Ho, Wo, F)`` with ``Ho, Wo`` from the padding rule (see ``_geometry``).

    Forward::

        z[n,i,j,f] = b[f] + sum_{di,dj,c} x[n, i*sh + di*dh - pt, j*sw + dj*dw - pl, c] * K[di,dj,c,f]
        y = activation(z)

    ``dilation_rate = (dh, dw)`` spaces the kernel's taps (an atrous convolution; 1 is the ordinary one). A
    ``k``-tap kernel then spans ``k + (k-1)(d-1)`` pixels, and Keras's output-size and 'same'-padding rules apply to
    that span. As in Keras 2 (TensorFlow), a dilation other than 1 together with strides other than 1 is refused.

    im2col copies every receptive field into one row, so the triple sum becomes a single matrix product::

        X_col : (N*Ho*Wo, kh*kw*C)   row = one output pixel, columns ordered (di, dj, c)
        W     : (kh*kw*C, F)         the kernel reshaped; the same (di, dj, c) order
        Z     = X_col @ W + b        (N*Ho*Wo, F) == z reshaped

    Backward, given ``dy = dL/dy``: first ``dz = activation'(dy)`` (see :mod:`tinynet.activations`), then, because
    ``Z`` is an affine function of ``X_col`` and ``W``::

        dW     = X_col^T @ dZ        each weight collects input * gradient over every place it was used
        db     = sum over rows of dZ every output pixel of channel f adds b[f] once
        dX_col = dZ @ W^T
        dx     = col2im(dX_col)      a pixel inside several receptive fields sums their gradients

    Cache: ``X_col`` (the im2col matrix) and the activation output ``y``.

    Kernels: :func:`tinynet.kernels.im2col`, :func:`tinynet.kernels.col2im` and
    :func:`tinynet.kernels.blocked_matmul` (``@`` cut into the blocks the engine's threads share, so that this
    layer and the engine's stand-in for it give the same bits). :attr:`window` is the geometry they take.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = (1, 1),
        padding: str = "valid",
        data_format: str | None = "channels_last",
        dilation_rate: int | tuple[int, int] = (1, 1),
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(filters, bool) or not isinstance(filters, int | np.integer) or filters <= 0:
            raise ValueError(f"{self.name}: filters must be a positive int, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size", self.name)
        self.strides = normalize_tuple(strides, 2, "strides", self.name)
        self.padding = check_padding(padding, self.name)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{self.name}: only data_format='channels_last' (N, H, W, C) is supported, "
                             f"got {data_format!r}")
        self.dilation_rate = normalize_tuple(dilation_rate, 2, "dilation_rate", self.name)
        if self.dilation_rate != (1, 1) and self.strides != (1, 1):
            raise ValueError(f"{self.name}: dilation_rate != 1 is incompatible with strides != 1 (as in Keras 2), "
                             f"got dilation_rate={self.dilation_rate} and strides={self.strides}")
        self.activation = activations.get(activation, owner=f"{self.name} activation")
        self.use_bias = self._flag(use_bias, "use_bias")
        self.kernel_initializer = initializers_module.get(kernel_initializer, owner=f"{self.name} kernel_initializer")
        self.bias_initializer = initializers_module.get(bias_initializer, owner=f"{self.name} bias_initializer")

    def build(self, input_shape: tuple[int, ...]) -> None:
        input_shape = self._validate_shape(input_shape, "input_shape")
        self.out_h, self.out_w, self.pad_top, self.pad_left = window_geometry(
            input_shape, self.dilated_kernel_size, self.strides, self.padding, self.name
        )
        kh, kw = self.kernel_size
        self.add_weight("kernel", (kh, kw, input_shape[-1], self.filters), self.kernel_initializer)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer)
        super().build(input_shape)

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.out_h, self.out_w, self.filters)

    @property
    def dilated_kernel_size(self) -> tuple[int, int]:
        """The span of the kernel's taps, ``k + (k-1)(d-1)`` per axis (``kernel_size`` without dilation)."""
        (kernel_h, kernel_w), (dilation_h, dilation_w) = self.kernel_size, self.dilation_rate
        return kernel_h + (kernel_h - 1) * (dilation_h - 1), kernel_w + (kernel_w - 1) * (dilation_w - 1)

    @property
    def window(self) -> tuple[int, int, int, int, int, int, int, int]:
        """``(kh, kw, sh, sw, pad_top, pad_left, out_h, out_w)``: the window arguments of im2col and col2im."""
        kh, kw = self.kernel_size
        sh, sw = self.strides
        return (kh, kw, sh, sw, self.pad_top, self.pad_left, self.out_h, self.out_w)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        batch = x.shape[0]
        kh, kw = self.kernel_size
        rows, depth = batch * self.out_h * self.out_w, kh * kw * self._built_input_shape[-1]
        # The im2col matrix is rebuilt every step into the same buffer (it is also what backward needs for dW).
        cols = im2col(x, *self.window, out=self._scratch("cols", (rows, depth)), dilation_h=self.dilation_rate[0],
                      dilation_w=self.dilation_rate[1])
        z = blocked_matmul(cols, self.params["kernel"].reshape(depth, self.filters))
        if self.use_bias:
            z += self.params["bias"]
        y = self.activation.forward(z.reshape(batch, self.out_h, self.out_w, self.filters))
        self._cache = (cols, y, batch)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        cols, y, batch = self._take_cache()
        dy = self._check_output_gradient(dy, y.shape)
        return self._backward_from_z(self.activation.backward(dy, y), cols, batch)

    def backward_preactivation(self, dz: np.ndarray) -> np.ndarray | None:
        """Backward from ``dL/dz`` (the gradient before the activation), used by the fused softmax loss."""
        cols, y, batch = self._take_cache()
        return self._backward_from_z(self._check_output_gradient(dz, y.shape), cols, batch)

    def _backward_from_z(self, dz: np.ndarray, cols: np.ndarray, batch: int) -> np.ndarray | None:
        dz_rows = dz.reshape(-1, self.filters)
        kernel = self.params["kernel"].reshape(-1, self.filters)
        # Written into the existing gradient arrays: each backward overwrites layer.grads, allocating nothing.
        blocked_matmul(cols.T, dz_rows, out=self.grads["kernel"].reshape(kernel.shape))
        if self.use_bias:
            # db = 1^T dZ as a BLAS matrix-vector product: about 3x faster than a column sum over dZ's rows.
            np.matmul(self._scratch("ones", (len(dz_rows),), fill=1.0), dz_rows, out=self.grads["bias"])
        if not self.needs_input_gradient:
            return None
        dcols = blocked_matmul(dz_rows, kernel.T, out=self._scratch("dcols", cols.shape))
        height, width, channels = self._built_input_shape
        return col2im(dcols, batch, height, width, channels, *self.window, dilation_h=self.dilation_rate[0],
                      dilation_w=self.dilation_rate[1])

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "dilation_rate": self.dilation_rate,
            "activation": self.activation.name,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers_module.serialize(self.kernel_initializer),
            "bias_initializer": initializers_module.serialize(self.bias_initializer),
        }

