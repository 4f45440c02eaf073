"""Low-level Numba kernels for convolution and pooling, each beside a plain NumPy reference.

Everything here works on channels-last arrays ``(N, H, W, C)`` of float32 or float64 (the result keeps the
input's dtype) and imports nothing from the rest of tinynet, so a layer can call it and a performance engineer
can read it on its own.

- :mod:`tinynet.kernels.im2col`: ``im2col`` / ``col2im`` (convolution as one matrix product, and its adjoint).
- :mod:`tinynet.kernels.pooling`: ``maxpool_forward`` / ``maxpool_backward`` (with int32 ``argmax_index``).
- :mod:`tinynet.kernels.fused`: max pooling, ReLU and dropout in one pass (the planner's fused stages).
- :mod:`tinynet.kernels.winograd`: Winograd's F(2x2, 3x3) convolution (the fused convolution block's forward).
- :mod:`tinynet.kernels.dropout`: dropout masks from raw words.
- the optimizers' one-pass updates, one file each: :mod:`~tinynet.kernels.sgd`, :mod:`~tinynet.kernels.rmsprop`,
  :mod:`~tinynet.kernels.adagrad`, :mod:`~tinynet.kernels.adadelta`, :mod:`~tinynet.kernels.adam` (with AMSGrad and
  AdamW's decay), :mod:`~tinynet.kernels.adamax`, :mod:`~tinynet.kernels.nadam`; each counts the non-finite values
  it wrote and has a ``*_reference`` NumPy twin that gives the same bits.

Each im2col and pooling kernel has a ``*_parallel`` twin (``prange`` over the batch; same signature, same result) and a
``*_reference`` twin (plain NumPy, for tests).
"""

from .im2col import (
    col2im,
    col2im_parallel,
    col2im_reference,
    im2col,
    im2col_parallel,
    im2col_reference,
)
from .pooling import (
    maxpool_backward,
    maxpool_backward_parallel,
    maxpool_backward_reference,
    maxpool_forward,
    maxpool_forward_parallel,
    maxpool_forward_reference,
)

__all__ = [
    "im2col",
    "col2im",
    "im2col_parallel",
    "col2im_parallel",
    "im2col_reference",
    "col2im_reference",
    "maxpool_forward",
    "maxpool_backward",
    "maxpool_forward_parallel",
    "maxpool_backward_parallel",
    "maxpool_forward_reference",
    "maxpool_backward_reference",
]
