"""NumPy's PCG64 stream in compiled code: jump to any place in it and draw dropout words there, without the GIL.

A dropout mask is drawn as raw 64-bit numbers of the layer's ``numpy.random.PCG64`` generator, four 16-bit words
each (:func:`tinynet.kernels.dropout.draw_random_words`). The engine's threads each draw the rows of their own
images from a copy of the generator advanced to them (:class:`tinynet.engine.mask_words.RowsDrawnLater`); doing
that from Python makes the threads take turns at the GIL. These functions compute the same numbers in compiled
code, from the generator's 128-bit state and increment, split into 64-bit halves.

PCG64 (O'Neill's PCG XSL RR 128/64, as NumPy implements it)::

    step:    state = state * M + inc            (mod 2^128, M = 0x2360ED051FC65DA44385DF649FCCF645)
    output:  rotr64(hi(state) ^ lo(state), state >> 122)       (the state after the step)
    advance: n steps at once by squaring the affine map (Brown, "Random number generation with arbitrary
             strides", 1994): O(log n) 128-bit multiplications.

128-bit products are made of 64-bit halves (the high half of a 64 x 64 product by one widening multiply). A
test compares the words with ``random_raw`` and the advanced state with ``PCG64.advance``, bit for bit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numba
import numpy as np
from llvmlite import ir
from numba.extending import intrinsic

__all__ = ["pcg64_advance", "pcg64_fill_words", "split_state"]

_MULTIPLIER_HIGH = np.uint64(0x2360ED051FC65DA4)
_MULTIPLIER_LOW = np.uint64(0x4385DF649FCCF645)
_32, _58, _64, _16, _1, _0 = np.uint64(32), np.uint64(58), np.uint64(64), np.uint64(16), np.uint64(1), np.uint64(0)
_63, _48 = np.uint64(63), np.uint64(48)


def split_state(value: int) -> tuple[np.uint64, np.uint64]:
    """A 128-bit Python int as its high and low 64-bit halves."""
    return np.uint64(value >> 64), np.uint64(value & ((1 << 64) - 1))


if TYPE_CHECKING:
    def _multiply_high(a: np.uint64, b: np.uint64) -> np.uint64: ...
else:
    @intrinsic
    def _multiply_high(typingctx, a, b):  # noqa: ARG001 (Numba's intrinsic signature)
        """The high 64 bits of the 128-bit product of two uint64: one widening multiply, as C's ``__uint128_t``."""

        def codegen(context, builder, signature, args):
            wide = ir.IntType(128)
            product = builder.mul(builder.zext(args[0], wide), builder.zext(args[1], wide))
            return builder.trunc(builder.lshr(product, ir.Constant(wide, 64)), ir.IntType(64))

        return numba.types.uint64(numba.types.uint64, numba.types.uint64), codegen


@numba.njit(cache=True, nogil=True, inline="always")
def _multiply(a_high, a_low, b_high, b_low):
    """``a * b mod 2^128``, each as (high, low) halves."""
    return _multiply_high(a_low, b_low) + a_high * b_low + a_low * b_high, a_low * b_low


@numba.njit(cache=True, nogil=True, inline="always")
def _add(a_high, a_low, b_high, b_low):
    """``a + b mod 2^128``."""
    low = a_low + b_low
    carry = _1 if low < a_low else _0
    return a_high + b_high + carry, low


@numba.njit(cache=True, nogil=True)
def pcg64_advance(state_high, state_low, increment_high, increment_low, steps):
    """The state ``steps`` (a non-negative int64) draws later, as (high, low)."""
    multiply_high, multiply_low = _0, _1  # the accumulated map x -> multiply * x + plus
    plus_high, plus_low = _0, _0
    current_high, current_low = _MULTIPLIER_HIGH, _MULTIPLIER_LOW
    current_plus_high, current_plus_low = increment_high, increment_low
    remaining = np.uint64(steps)
    while remaining > _0:
        if remaining & _1:
            multiply_high, multiply_low = _multiply(multiply_high, multiply_low, current_high, current_low)
            plus_high, plus_low = _multiply(plus_high, plus_low, current_high, current_low)
            plus_high, plus_low = _add(plus_high, plus_low, current_plus_high, current_plus_low)
        one_more_high, one_more_low = _add(current_high, current_low, _0, _1)
        current_plus_high, current_plus_low = _multiply(one_more_high, one_more_low, current_plus_high,
                                                        current_plus_low)
        current_high, current_low = _multiply(current_high, current_low, current_high, current_low)
        remaining = remaining >> _1
    high, low = _multiply(multiply_high, multiply_low, state_high, state_low)
    return _add(high, low, plus_high, plus_low)


@numba.njit(cache=True, nogil=True)
def _fill_words_serial(state_high, state_low, increment_high, increment_low, first_word, out):
    """:func:`pcg64_fill_words` one raw number after another."""
    if out.shape[0] == 0:
        return
    raw_index = first_word // 4
    high, low = pcg64_advance(state_high, state_low, increment_high, increment_low, raw_index)
    skip = first_word - 4 * raw_index  # words of the first raw number that come before first_word
    size = out.shape[0]
    written = 0
    mask = np.uint64(0xFFFF)
    while written < size:
        high, low = _step(high, low, increment_high, increment_low)
        raw = _output(high, low)
        if skip == 0 and written + 4 <= size:  # a whole raw number: its four words
            _put_words(out, written, raw)
            written += 4
            continue
        for word in range(skip, 4):  # the first or the last raw number: part of it
            if written == size:
                break
            out[written] = np.uint16((raw >> (_16 * np.uint64(word))) & mask)
            written += 1
        skip = 0


# Streams stepped side by side in pcg64_fill_words: each step's 128-bit multiply waits for the one before, so one
# stream leaves the multiplier idle most of the time; four independent ones keep it busier (173k words
# on a Xeon guest: 87 -> 53 us). Below MIN_INTERLEAVED raw numbers the three extra jumps are not worth it.
_STREAMS = 4
MIN_INTERLEAVED = 256


@numba.njit(cache=True, nogil=True)
def pcg64_fill_words(state_high, state_low, increment_high, increment_low, first_word, out):
    """``out`` (uint16, 1-D) = the stream's 16-bit words ``first_word, first_word + 1, ...``: the generator at
    ``(state, increment)`` drawing raw numbers, each one's four words low to high (``random_raw().view(uint16)``
    on a little-endian machine).

    The words up to the first whole raw number and after the last are drawn one raw number at a time; the whole
    raw numbers between are cut into four runs, each run's generator jumped to its start (:func:`pcg64_advance`),
    and the four stepped side by side: the same words."""
    size = out.shape[0]
    head = min((4 - first_word % 4) % 4, size)
    whole = (size - head) // 4  # raw numbers that fall whole inside out
    run = whole // _STREAMS
    if run < MIN_INTERLEAVED // _STREAMS:
        _fill_words_serial(state_high, state_low, increment_high, increment_low, first_word, out)
        return
    _fill_words_serial(state_high, state_low, increment_high, increment_low, first_word, out[:head])
    first_raw = (first_word + head) // 4
    # Each state is the one *before* its run's first raw number: a step comes before each output.
    high0, low0 = pcg64_advance(state_high, state_low, increment_high, increment_low, first_raw)
    high1, low1 = pcg64_advance(state_high, state_low, increment_high, increment_low, first_raw + run)
    high2, low2 = pcg64_advance(state_high, state_low, increment_high, increment_low, first_raw + 2 * run)
    high3, low3 = pcg64_advance(state_high, state_low, increment_high, increment_low, first_raw + 3 * run)
    body = out[head:head + 4 * _STREAMS * run].reshape((_STREAMS, 4 * run))
    for r in range(run):
        high0, low0 = _step(high0, low0, increment_high, increment_low)
        high1, low1 = _step(high1, low1, increment_high, increment_low)
        high2, low2 = _step(high2, low2, increment_high, increment_low)
        high3, low3 = _step(high3, low3, increment_high, increment_low)
        _put_words(body[0], 4 * r, _output(high0, low0))
        _put_words(body[1], 4 * r, _output(high1, low1))
        _put_words(body[2], 4 * r, _output(high2, low2))
        _put_words(body[3], 4 * r, _output(high3, low3))
    done = head + 4 * _STREAMS * run
    _fill_words_serial(state_high, state_low, increment_high, increment_low, first_word + done, out[done:])


@numba.njit(cache=True, nogil=True, inline="always")
def _step(high, low, increment_high, increment_low):
    """The next state: ``state * M + increment``."""
    high, low = _multiply(high, low, _MULTIPLIER_HIGH, _MULTIPLIER_LOW)
    return _add(high, low, increment_high, increment_low)


@numba.njit(cache=True, nogil=True, inline="always")
def _output(high, low):
    """PCG XSL RR: the raw number a state gives."""
    value = high ^ low
    rotation = high >> _58
    return (value >> rotation) | (value << ((_64 - rotation) & _63))


@numba.njit(cache=True, nogil=True, inline="always")
def _put_words(out, at, raw):
    """A raw number's four 16-bit words, low to high, at ``out[at:at + 4]``."""
    mask = np.uint64(0xFFFF)
    out[at] = np.uint16(raw & mask)
    out[at + 1] = np.uint16((raw >> _16) & mask)
    out[at + 2] = np.uint16((raw >> _32) & mask)
    out[at + 3] = np.uint16(raw >> _48)
