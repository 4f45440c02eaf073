"""The compiled PCG64 stream (tinynet.kernels.pcg64) against NumPy's PCG64, word for word."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.kernels.pcg64 import MIN_INTERLEAVED, pcg64_advance, pcg64_fill_words, split_state


def _halves(generator: np.random.PCG64) -> tuple[np.uint64, ...]:
    inner = generator.state["state"]
    return (*split_state(inner["state"]), *split_state(inner["inc"]))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**63), first=st.integers(0, 5000), count=st.integers(0, 3000),
       burned=st.integers(0, 50))
def test_the_words_are_numpys_random_raw_words_from_any_place(seed, first, count, burned):
    generator = np.random.PCG64(seed)
    generator.random_raw(burned)  # a stream that is not at its start
    state = _halves(generator)
    expected = generator.random_raw((first + count + 3) // 4 + 1).view(np.uint16)[first:first + count]
    out = np.full(count, 7, dtype=np.uint16)
    pcg64_fill_words(*state, first, out)
    np.testing.assert_array_equal(out, expected)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**63), steps=st.integers(0, 2**62))
def test_advance_lands_where_numpys_advance_does(seed, steps):
    generator = np.random.PCG64(seed)
    high, low = pcg64_advance(*_halves(generator), steps)
    generator.advance(steps)
    assert (int(high) << 64 | int(low)) == generator.state["state"]["state"]


def test_a_stream_split_between_two_writers_is_the_one_stream():
    generator = np.random.PCG64(11)
    state = _halves(generator)
    whole = generator.random_raw(100).view(np.uint16)[:397]
    out = np.empty(397, dtype=np.uint16)
    pcg64_fill_words(*state, 0, out[:130])  # a split inside a raw number (130 = 4 * 32 + 2)
    pcg64_fill_words(*state, 130, out[130:])
    np.testing.assert_array_equal(out, whole)


@pytest.mark.parametrize(("first", "count"), [(0, 4 * MIN_INTERLEAVED), (3, 4 * MIN_INTERLEAVED + 1), (5, 10_001),
                                              (2, 173_056), (1, 4 * MIN_INTERLEAVED - 2)])
def test_long_runs_drawn_four_streams_at_a_time_are_the_one_stream(first, count):
    generator = np.random.PCG64(2024)
    state = _halves(generator)
    expected = generator.random_raw((first + count + 3) // 4 + 1).view(np.uint16)[first:first + count]
    out = np.zeros(count, dtype=np.uint16)
    pcg64_fill_words(*state, first, out)
    np.testing.assert_array_equal(out, expected)
