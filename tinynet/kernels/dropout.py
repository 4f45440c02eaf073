"""Dropout masks from raw random bits, and the kernels that apply them.

A mask element is kept when a uniform 16-bit word is at least ``threshold = round(rate * 2**16)``, so it is kept
with probability ``1 - threshold / 2**16``: the requested ``1 - rate`` to within 2**-17 (exact for rates that are
multiples of 1/65536, such as 0.25 or 0.5). The words come from the layer's seeded NumPy ``Generator``
(``bit_generator.random_raw``: four words per 64-bit draw, about 4x cheaper than
``Generator.random(dtype=float32)``, which spends a draw and a float conversion per element). Masks are never
drawn inside Numba: Numba's generator is per thread and cannot be saved, which would make runs unrepeatable.

The unfused Dropout layer and the fused pooling kernel (:mod:`tinynet.kernels.fused`) draw through the same
:func:`draw_random_words`, so both see identical masks for the same generator state.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["draw_random_words", "keep_threshold", "dropout_forward", "dropout_backward", "NO_WORDS"]


WORD_BITS = 16
# A typed placeholder for the words where there is no dropout: Numba compiles a kernel for array arguments, so a
# kernel that reads no words still needs an array of their type.
NO_WORDS = np.zeros((1, 1, 1, 1), np.uint16)


def keep_threshold(rate: float) -> np.uint16:
    """The 16-bit threshold below which a word means 'drop', for a drop probability ``rate`` in [0, 1)."""
    return np.uint16(min(round(rate * 2.0**WORD_BITS), 2**WORD_BITS - 1))


def keep_scale(rate: float, dtype: np.dtype | type, dropout: bool = True) -> np.floating:
    """What a kept value is multiplied by, in ``dtype``: ``1 / (1 - rate)`` (inverted dropout), or 1 when
    ``dropout`` is off (``x * 1`` is ``x``, bit for bit, so one kernel serves both)."""
    return np.dtype(dtype).type(1.0 / (1.0 - rate) if dropout else 1.0)


def draw_random_words(generator: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """``prod(shape)`` uniform uint16 words from ``generator``, shaped ``shape`` (a fresh array)."""
    count = math.prod(shape)
    raw = generator.bit_generator.random_raw((count + 3) // 4)  # uint64, four 16-bit words each
    return raw.view(np.uint16)[:count].reshape(shape)


@numba.njit(cache=True)
def _dropout_forward(x, words, threshold, scale, y, keep):
    flat_x, flat_words, flat_y, flat_keep = x.reshape(-1), words.reshape(-1), y.reshape(-1), keep.reshape(-1)
    zero = flat_x.dtype.type(0)
    for k in range(flat_x.size):
        if flat_words[k] >= threshold:
            flat_y[k] = flat_x[k] * scale
            flat_keep[k] = 1
        else:
            flat_y[k] = zero
            flat_keep[k] = 0


@numba.njit(cache=True)
def _dropout_backward(dy, keep, scale, dx):
    flat_dy, flat_keep, flat_dx = dy.reshape(-1), keep.reshape(-1), dx.reshape(-1)
    zero = flat_dy.dtype.type(0)
    for k in range(flat_dy.size):
        flat_dx[k] = flat_dy[k] * scale if flat_keep[k] else zero


def dropout_forward(x: np.ndarray, words: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """``y = x * keep / (1 - rate)`` with ``keep = words >= keep_threshold(rate)``; returns ``(y, keep)``
    (``keep`` as uint8). ``x`` and ``words`` must have the same shape; ``x`` C-contiguous float32/float64."""
    x = np.ascontiguousarray(x)
    if words.shape != x.shape:
        raise ValueError(f"dropout_forward: words has shape {words.shape}, x has {x.shape}")
    y = np.empty_like(x)
    keep = np.empty(x.shape, dtype=np.uint8)
    _dropout_forward(x, np.ascontiguousarray(words), keep_threshold(rate), keep_scale(rate, x.dtype), y, keep)
    return y, keep


def dropout_backward(dy: np.ndarray, keep: np.ndarray, rate: float) -> np.ndarray:
    """``dx = dy * keep / (1 - rate)``."""
    dy = np.ascontiguousarray(dy)
    dx = np.empty_like(dy)
    _dropout_backward(dy, keep, keep_scale(rate, dy.dtype), dx)
    return dx
