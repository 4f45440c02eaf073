"""Low-level kernels for convolution, pooling and the layers' matrix products, each beside a plain reference.

Everything here works on channels-last arrays ``(N, H, W, C)`` of float32 or float64 (the result keeps the
input's dtype) and imports nothing from the rest of tinynet, so a layer can call it and a performance engineer
can read it on its own.

- :mod:`tinynet.kernels.im2col`: ``im2col`` / ``col2im`` (convolution as one matrix product, and its adjoint).
- :mod:`tinynet.kernels.pooling`: ``maxpool_forward`` / ``maxpool_backward`` (with int32 ``argmax_index``).
- :mod:`tinynet.kernels.matmul`: ``blocked_matmul``, the product Dense and Conv2D compute, cut into the blocks
  the engine's threads share (so the layers and the engine give the same bits).
- :mod:`tinynet.kernels.fused`: max pooling, ReLU and dropout in one pass (the engine's fused stages).
- :mod:`tinynet.kernels.winograd_f4`: Winograd's F(4x4, 3x3) convolution (the engine's deep 3x3 convolutions).
- :mod:`tinynet.kernels.direct_conv`: a direct 3x3 convolution of one-channel images (a greyscale CNN's first layer).
- :mod:`tinynet.kernels.dropout`: dropout masks from raw words.
- the optimizers' one-pass updates, one file each: :mod:`~tinynet.kernels.sgd`, :mod:`~tinynet.kernels.rmsprop`,
  :mod:`~tinynet.kernels.adagrad`, :mod:`~tinynet.kernels.adadelta`, :mod:`~tinynet.kernels.adam` (with AMSGrad and
  AdamW's decay), :mod:`~tinynet.kernels.adamax`, :mod:`~tinynet.kernels.nadam`; each counts the non-finite values
  it wrote and has a ``*_reference`` NumPy twin that gives the same bits.

Each im2col and pooling kernel has a ``*_reference`` twin (plain NumPy, for tests). The Numba kernels loop over
one image at a time, so a caller may give different images to different threads.
"""

from .im2col import (
    col2im,
    col2im_reference,
    im2col,
    im2col_reference,
)
from .matmul import blocked_matmul
from .pooling import (
    maxpool_backward,
    maxpool_backward_reference,
    maxpool_forward,
    maxpool_forward_reference,
)

__all__ = [
    "im2col",
    "col2im",
    "im2col_reference",
    "col2im_reference",
    "blocked_matmul",
    "maxpool_forward",
    "maxpool_backward",
    "maxpool_forward_reference",
    "maxpool_backward_reference",
]
