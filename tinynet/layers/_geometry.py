"""Output sizes and padding of sliding-window layers (convolution and pooling), as Keras 2 computes them."""

from __future__ import annotations

import math

PADDINGS = ("valid", "same")


def check_padding(padding: str, owner: str) -> str:
    if not isinstance(padding, str) or padding.lower() not in PADDINGS:
        raise ValueError(f"{owner}: padding must be 'valid' or 'same', got {padding!r}")
    return padding.lower()


def window_output_length(size: int, window: int, stride: int, padding: str) -> tuple[int, int]:
    """``(output length, padding before)`` of one spatial axis.

    'valid': ``out = floor((size - window) / stride) + 1``, no padding; the window must fit in the input.
    'same':  ``out = ceil(size / stride)``; total padding ``max((out - 1) * stride + window - size, 0)``, the
    smaller half before (top/left) and the extra pixel after (bottom/right), as TensorFlow does.
    """
    if padding == "valid":
        if window > size:
            return 0, 0
        return (size - window) // stride + 1, 0
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + window - size, 0)
    return out, total // 2


def window_geometry(
    input_shape: tuple[int, ...], window: tuple[int, int], strides: tuple[int, int], padding: str, owner: str
) -> tuple[int, int, int, int]:
    """``(out_h, out_w, pad_top, pad_left)`` for a ``(H, W, C)`` input, or a ValueError naming the layer."""
    if len(input_shape) != 3:
        raise ValueError(f"{owner}: expects inputs of shape (batch, height, width, channels), "
                         f"got per-sample shape {input_shape}")
    height, width, _ = input_shape
    out_h, pad_top = window_output_length(height, window[0], strides[0], padding)
    out_w, pad_left = window_output_length(width, window[1], strides[1], padding)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"{owner}: window {window} is larger than the input {height}x{width} "
                         f"with padding '{padding}'")
    return out_h, out_w, pad_top, pad_left
