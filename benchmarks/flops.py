r"""Analytic FLOP counts of tinynet layers: the work a layer must do, whatever the implementation.

Conventions (the usual ones for GEMM-based layers, so "% of peak" compares with an sgemm):

* A multiply-add counts as 2 FLOPs. Only the matrix products count; bias adds, activations, pooling, dropout
  and im2col/col2im copies are not FLOPs here (they are memory traffic, reported as elements instead).
* Conv2D, forward: ``2 * N * Ho * Wo * (kh * kw * Cin) * F`` (one dot product of length ``kh*kw*Cin`` per output
  value). Backward: the same again for ``dW = cols^T @ dZ`` and again for ``dcols = dZ @ W^T``, i.e. 2x forward;
  1x forward when the layer hands no gradient to its input (the model's first layer, whose input is data).
* Dense, forward: ``2 * N * in * units``; backward 2x forward (``dW`` and ``dx``), 1x without ``dx``.
* MaxPooling2D, Activation, ReLU, Dropout, Flatten: FLOPs ``None`` (n/a). They are still timed; their
  throughput is given in elements per second, counting the input elements ``N * prod(input_shape)``.

For the tutorial CNN this gives, per image, forward::

    conv2d_1  2 * 26*26 * 9 * 64          =   778,752
    conv2d_2  2 * 11*11 * 576 * 32        = 4,460,544
    dense     2 * (800*512 + 512*256 + 256*10) = 1,086,464
    total                                   6,325,760

and a training step costs 3x forward minus the first convolution's ``dx``: 18,198,528 FLOPs per image.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from tinynet.layers import Conv2D, Dense

TUTORIAL_FORWARD_FLOPS_PER_IMAGE = 6_325_760
"""The tutorial CNN's forward FLOPs per image under these conventions (checked by the tests)."""


@dataclass(frozen=True)
class LayerCost:
    """What one layer costs for a batch: GEMM FLOPs (``None`` when n/a) and the elements it reads."""

    name: str
    kind: str
    forward_flops: int | None
    backward_flops: int | None
    input_elements: int
    computes_input_gradient: bool

    @property
    def training_flops(self) -> int | None:
        if self.forward_flops is None:
            return None
        return self.forward_flops + (self.backward_flops or 0)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"training_flops": self.training_flops}


def conv2d_forward_flops(batch: int, out_h: int, out_w: int, kernel_h: int, kernel_w: int,
                         in_channels: int, filters: int) -> int:
    """``2 * N * Ho * Wo * kh * kw * Cin * F``: one multiply-add per kernel weight per output value."""
    return 2 * batch * out_h * out_w * kernel_h * kernel_w * in_channels * filters


def dense_forward_flops(rows: int, in_features: int, units: int) -> int:
    """``2 * rows * in * units`` (``rows`` is the batch times any extra leading axes)."""
    return 2 * rows * in_features * units


def gemm_backward_flops(forward_flops: int, computes_input_gradient: bool) -> int:
    """``dW`` costs one forward's worth of multiply-adds, ``dx`` another."""
    return forward_flops * (2 if computes_input_gradient else 1)


def layer_cost(layer: Any, batch: int, computes_input_gradient: bool = True) -> LayerCost:
    """The cost of one built tinynet layer on a batch of ``batch`` samples."""
    if not getattr(layer, "built", False):
        raise ValueError(f"layer_cost: layer {getattr(layer, 'name', layer)!r} must be built (its shapes known)")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"layer_cost: batch must be a positive int, got {batch!r}")
    forward = None
    if isinstance(layer, Conv2D):
        out_h, out_w, filters = layer.output_shape
        kernel_h, kernel_w = layer.kernel_size
        forward = conv2d_forward_flops(batch, out_h, out_w, kernel_h, kernel_w, layer.input_shape[-1], filters)
    elif isinstance(layer, Dense):
        rows = batch * math.prod(layer.input_shape[:-1])
        forward = dense_forward_flops(rows, layer.input_shape[-1], layer.units)
    backward = None if forward is None else gemm_backward_flops(forward, computes_input_gradient)
    return LayerCost(
        name=layer.name,
        kind=type(layer).__name__,
        forward_flops=forward,
        backward_flops=backward,
        input_elements=batch * math.prod(layer.input_shape),
        computes_input_gradient=computes_input_gradient,
    )


def input_gradient_flags(model: Any) -> list[bool]:
    """Which layers compute ``dx`` in a training step: none up to and including the first layer with
    parameters (its input is data), every one after it, as ``Sequential`` does."""
    first_trainable = next(
        (index for index, layer in enumerate(model.layers) if layer.params and layer.trainable), len(model.layers)
    )
    return [index > first_trainable for index in range(len(model.layers))]


def model_costs(model: Any, batch: int) -> list[LayerCost]:
    """Per-layer costs of a built model, with ``dx`` skipped where a training step skips it."""
    flags = input_gradient_flags(model)
    return [layer_cost(layer, batch, flag) for layer, flag in zip(model.layers, flags, strict=True)]


def forward_flops_per_image(model: Any) -> int:
    """Sum of the GEMM FLOPs of one image's forward pass."""
    return sum(cost.forward_flops or 0 for cost in model_costs(model, 1))


def training_flops_per_image(model: Any) -> int:
    """Forward plus backward GEMM FLOPs of one image in a training step."""
    return sum(cost.training_flops or 0 for cost in model_costs(model, 1))
