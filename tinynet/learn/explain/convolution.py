"""A convolution worked on the step's own numbers: how im2col lays out one receptive field, and how col2im sends
the gradient back to one input pixel.

Forward (see :class:`tinynet.layers.Conv2D`): im2col copies the ``kh x kw x C`` window under output position
``(i, j)`` into row ``i * Wo + j`` of ``X_col``, columns ordered ``(di, dj, c)``; the kernel reshaped to
``(kh*kw*C, F)`` has the same order, so ``z[i, j, f]`` is that row times column ``f`` plus ``b[f]``.

Backward: ``dX_col = dZ @ W^T`` gives, for every row (output position) and column ``(di, dj, c)``, the gradient
of the input value that was copied there. col2im adds each entry back onto the pixel it was copied from, so a
pixel that sat in several windows receives the sum of their gradients. Here that sum is written out term by term
for one pixel and compared with what the layer's own backward pass sent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinynet.kernels import col2im, im2col
from tinynet.layers import Conv2D

from .recording import LayerRecord


@dataclass
class ReceptiveField:
    """``z[sample 0, i, j, f]`` computed from one im2col row, next to the layer's own output."""

    position: tuple[int, int]
    filter: int
    window: tuple[int, ...]
    origin: tuple[int, int]                  # the input pixel under the window's top-left corner (may be padding)
    patch: np.ndarray                         # (kh, kw, C) input values under the window (zeros in the padding)
    row_index: int
    row: np.ndarray                           # the im2col row, as the kernel wrote it
    columns: list[tuple[int, int, int]]      # (di, dj, c) of each column
    kernel_column: np.ndarray                # K[:, :, :, f] in the same order
    bias: float
    z: float                                  # row . kernel_column + bias, in float64
    y_computed: float                         # activation(z)
    y_layer: float                            # what the layer output there
    activation: str


@dataclass
class GradientBack:
    """``dx[sample 0, h, w, c]`` as col2im sums it, term by term."""

    pixel: tuple[int, int, int]
    terms: list[tuple[int, int, int, int, float]]   # (i, j, di, dj, dX_col entry = dz[i, j, :] . K[di, dj, c, :])
    total: float
    col2im_value: float                              # col2im of the whole dX_col, at the pixel
    layer_value: float | None                        # the layer's own dx there (None: not computed, first layer)
    filters: int
    kernel_entry: tuple[int, int, int, int]
    kernel_gradient: float                           # X_col[:, column] . dZ[:, f] over the whole batch
    kernel_gradient_layer: float
    kernel_terms: int
    bias_gradient: float | None
    bias_gradient_layer: float | None


def applies_to(record: LayerRecord) -> bool:
    return isinstance(record.layer, Conv2D)


def _convolution(record: LayerRecord) -> Conv2D:
    if not isinstance(record.layer, Conv2D):
        raise TypeError(f"{record.layer.name}: im2col and col2im are shown for Conv2D layers only")
    return record.layer


def receptive_field(record: LayerRecord) -> ReceptiveField:
    layer = _convolution(record)
    kh, kw, sh, sw, pad_top, pad_left, out_h, out_w = layer.window
    x = np.ascontiguousarray(record.x[:1], dtype=np.float64)
    kernel = np.asarray(record.params_before["kernel"], dtype=np.float64)
    bias = np.asarray(record.params_before["bias"], dtype=np.float64) if "bias" in record.params_before else None
    i, j = out_h // 2, out_w // 2
    f = int(np.argmax(np.abs(record.y[0, i, j])))  # the filter that answers most strongly there
    cols = im2col(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w)
    row_index = i * out_w + j
    channels = x.shape[-1]
    top, left = i * sh - pad_top, j * sw - pad_left
    patch = np.zeros((kh, kw, channels))
    for di in range(kh):
        for dj in range(kw):
            if 0 <= top + di < x.shape[1] and 0 <= left + dj < x.shape[2]:
                patch[di, dj] = x[0, top + di, left + dj]
    column = kernel[:, :, :, f].reshape(-1)
    z = float(cols[row_index] @ column + (bias[f] if bias is not None else 0.0))
    y_computed = float(layer.activation.forward(np.array([z]))[0])
    columns = [(di, dj, c) for di in range(kh) for dj in range(kw) for c in range(channels)]
    return ReceptiveField(position=(i, j), filter=f, window=layer.window, origin=(top, left), patch=patch,
                          row_index=row_index, row=cols[row_index].copy(), columns=columns, kernel_column=column,
                          bias=float(bias[f]) if bias is not None else 0.0, z=z, y_computed=y_computed,
                          y_layer=float(record.y[0, i, j, f]), activation=layer.activation.name)


def gradient_back(record: LayerRecord) -> GradientBack:
    layer = _convolution(record)
    kh, kw, sh, sw, pad_top, pad_left, out_h, out_w = layer.window
    kernel = np.asarray(record.params_before["kernel"], dtype=np.float64)
    filters = kernel.shape[-1]
    dy = np.asarray(record.dy, dtype=np.float64)
    # dz: the gradient before the activation (the fused loss hands it over directly).
    dz = dy if record.fused else np.asarray(layer.activation.backward(dy, np.asarray(record.y, np.float64)))
    _, height, width, channels = record.x.shape
    h, w, c = height // 2, width // 2, 0
    terms = []
    for i in range(out_h):
        di = h - (i * sh - pad_top)
        if not 0 <= di < kh:
            continue
        for j in range(out_w):
            dj = w - (j * sw - pad_left)
            if 0 <= dj < kw:
                terms.append((i, j, di, dj, float(dz[0, i, j] @ kernel[di, dj, c])))
    dcols = np.ascontiguousarray(dz[0].reshape(-1, filters) @ kernel.reshape(-1, filters).T)
    back = col2im(dcols, 1, height, width, channels, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w)
    # One weight's gradient over the whole batch: every output position where that weight was used.
    f = int(np.argmax(np.abs(dz.reshape(-1, filters)).sum(axis=0)))
    di, dj = kh // 2, kw // 2
    cols = im2col(np.ascontiguousarray(record.x, dtype=np.float64), kh, kw, sh, sw, pad_top, pad_left, out_h,
                  out_w)
    column = (di * kw + dj) * channels + c
    dz_rows = dz.reshape(-1, filters)
    has_bias = "bias" in record.grads
    return GradientBack(
        pixel=(h, w, c), terms=terms, total=float(sum(term[-1] for term in terms)),
        col2im_value=float(back[0, h, w, c]),
        layer_value=None if record.dx is None else float(record.dx[0, h, w, c]), filters=filters,
        kernel_entry=(di, dj, c, f), kernel_gradient=float(cols[:, column] @ dz_rows[:, f]),
        kernel_gradient_layer=float(record.grads["kernel"][di, dj, c, f]), kernel_terms=len(dz_rows),
        bias_gradient=float(dz_rows[:, f].sum()) if has_bias else None,
        bias_gradient_layer=float(record.grads["bias"][f]) if has_bias else None)
