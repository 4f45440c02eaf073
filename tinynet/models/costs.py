"""What a layer costs: forward FLOPs per sample and the bytes of its output (used by ``summary(batch_size=)``
and by the learner's tools)."""

from __future__ import annotations

import math

from tinynet.layers import AveragePooling2D, Conv2D, Dense, Flatten, GlobalAveragePooling2D, MaxPooling2D, Reshape
from tinynet.layers.base import Layer

__all__ = ["activation_bytes", "format_bytes", "forward_flops"]


def _require_built(layer: Layer, function: str) -> None:
    if not isinstance(layer, Layer):
        raise TypeError(f"{function}: expected a tinynet layer, got {type(layer).__name__}")
    if not layer.built:
        raise RuntimeError(f"{function}: {layer.name} is not built yet (its shapes are unknown)")


def forward_flops(layer: Layer) -> int:
    """Floating-point operations of one forward pass of ``layer`` for ONE sample (a multiply-add counts 2).

    ============================  ============================================================================
    Conv2D                        ``2 * Ho * Wo * kh * kw * C_in * F``: each output value is a dot product of
                                  length ``kh*kw*C_in``
    Dense                         ``2 * in * units`` (times any leading axes)
    MaxPooling2D, AveragePooling  ``Ho * Wo * C * ph * pw``: one comparison or addition per window element
    GlobalAveragePooling2D        ``H * W * C`` additions
    Flatten, Reshape              0 (a reshape moves no data)
    anything else                 one operation per output element (activations, dropout, normalisation)
    ============================  ============================================================================

    Bias additions and activations fused into Conv2D/Dense are left out, as is usual (they are one
    operation per output, tiny beside the products). A layer of your own can define ``flops_per_sample()``.
    """
    _require_built(layer, "forward_flops")
    own_count = getattr(layer, "flops_per_sample", None)
    if callable(own_count):
        return int(own_count())
    outputs = math.prod(layer._built_output_shape)
    if isinstance(layer, Conv2D):
        kernel_h, kernel_w = layer.kernel_size
        return 2 * layer.out_h * layer.out_w * kernel_h * kernel_w * layer._built_input_shape[-1] * layer.filters
    if isinstance(layer, Dense):
        return 2 * math.prod(layer._built_input_shape) * layer.units
    if isinstance(layer, MaxPooling2D | AveragePooling2D):
        return outputs * layer.pool_size[0] * layer.pool_size[1]
    if isinstance(layer, GlobalAveragePooling2D):
        return math.prod(layer._built_input_shape)
    if isinstance(layer, Flatten | Reshape):
        return 0
    return outputs


def activation_bytes(layer: Layer, batch_size: int) -> int:
    """Bytes of ``layer``'s output for a batch: ``batch_size * prod(output_shape) * itemsize``.

    That is what flows to the next layer. What a layer *caches* for its backward pass can be more (Conv2D keeps
    its im2col matrix, ``kh*kw*C_in / F`` times the size of its output) or less. Flatten and Reshape count 0: their
    output is a view of their input, no new memory.
    """
    _require_built(layer, "activation_bytes")
    if isinstance(layer, Flatten | Reshape):
        return 0
    return int(batch_size) * math.prod(layer._built_output_shape) * layer.dtype.itemsize


def format_bytes(count: int) -> str:
    """``1536 -> '1.5 KiB'``: binary units, three significant digits."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
