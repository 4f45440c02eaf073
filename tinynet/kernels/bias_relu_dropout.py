"""The elementwise end of a dense layer followed by ReLU and dropout, in one pass (the engine's
:class:`tinynet.engine.dense_relu_dropout.DenseReluDropout`).

Run as three layers, ``Dense -> Activation('relu') -> Dropout`` reads and writes the ``(N, units)`` activations
three times forward and three times backward, each pass a NumPy call with its own temporary arrays. Here each
element is touched once each way, with the layers' own arithmetic in the layers' order, so the values are the
same bits (a test compares them)::

    forward:   z = (x @ W)[n, u] + b[u]                         (the product is the dense layer's, blocked)
               a = z if not z < 0 else 0                        (np.maximum(z, 0): NaN and -0.0 pass through)
               y = a * scale  where words[n, u] >= threshold, else 0        (dropout; without it y = a)
               pass[n, u] = a > 0 and kept                      (what the backward pass needs: 1 byte each)

    backward:  dz = dy * scale  where pass, else 0              (dropout's mask, then ReLU's  [a > 0])

``scale`` is the dropout's ``1 / (1 - rate)``, or 1 without dropout (``dy * 1`` is ``dy``, bit for bit).
"""

from __future__ import annotations

import numba

__all__ = ["bias_relu_dropout_forward", "relu_dropout_backward"]


@numba.njit(cache=True, nogil=True)
def bias_relu_dropout_forward(z, bias, use_bias, words, use_dropout, threshold, scale, pass_mask):
    """In place: ``z (N, U)`` (the product ``x @ W``) becomes the dropout's output; ``pass_mask (N, U)`` (uint8)
    records where a gradient will flow back. ``words (N, U)`` (uint16) are read only when ``use_dropout``,
    ``bias (U,)`` only when ``use_bias``."""
    zero = z.dtype.type(0)
    for n in range(z.shape[0]):
        row, passed = z[n], pass_mask[n]
        for u in range(row.shape[0]):
            value = row[u] + bias[u] if use_bias else row[u]
            value = zero if value < zero else value
            passes = value > zero
            if use_dropout:
                kept = words[n, u] >= threshold
                passes = passes & kept
                value = value * scale if kept else zero
            row[u] = value
            passed[u] = 1 if passes else 0


@numba.njit(cache=True, nogil=True)
def relu_dropout_backward(dy, pass_mask, scale, dz):
    """``dz (N, U) = dy * scale`` where ``pass_mask`` is set, else 0."""
    zero = dz.dtype.type(0)
    for n in range(dy.shape[0]):
        gradient, passed, out = dy[n], pass_mask[n], dz[n]
        for u in range(gradient.shape[0]):
            out[u] = gradient[u] * scale if passed[u] else zero
