"""Dropout mask words drawn by the engine's threads are the one-thread draw's, and leave the generator there too."""

from __future__ import annotations

import numpy as np
import pytest

from tinynet.engine import mask_words
from tinynet.engine import threads as parallel
from tinynet.kernels.dropout import draw_random_words


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("shape", [(32, 13, 13, 64), (7, 5, 5, 3), (3, 70001), (65537,)])
def test_threaded_words_are_the_sequential_words(shape, threads, monkeypatch):
    monkeypatch.setattr(mask_words, "MIN_SPLIT_RAW_NUMBERS", 1)  # split even the small shapes
    before = parallel._requested_threads
    parallel.set_num_threads(threads)
    try:
        for seed in range(3):
            sequential, threaded = np.random.default_rng(seed), np.random.default_rng(seed)
            sequential.random(seed)  # not at the start of the stream
            threaded.random(seed)
            expected = draw_random_words(sequential, shape)
            words = mask_words.draw_random_words_threaded(threaded, shape)
            assert words.dtype == np.uint16 and words.shape == shape
            assert np.array_equal(words, expected)
            assert threaded.bit_generator.state == sequential.bit_generator.state
            assert np.array_equal(threaded.random(5), sequential.random(5))  # and the stream goes on alike
    finally:
        parallel.set_num_threads(before)


@pytest.mark.parametrize("bit_generator", [np.random.MT19937, np.random.Philox, np.random.SFC64, np.random.PCG64DXSM])
def test_other_generators_give_the_same_words_too(bit_generator, monkeypatch):
    monkeypatch.setattr(mask_words, "MIN_SPLIT_RAW_NUMBERS", 1)
    before = parallel._requested_threads
    parallel.set_num_threads(2)
    try:
        sequential, threaded = np.random.Generator(bit_generator(4)), np.random.Generator(bit_generator(4))
        sequential.random(3)  # Philox: not at the start of a block of four
        threaded.random(3)
        assert np.array_equal(mask_words.draw_random_words_threaded(threaded, (9, 1001)),
                              draw_random_words(sequential, (9, 1001)))
        assert np.array_equal(threaded.random(7), sequential.random(7))
    finally:
        parallel.set_num_threads(before)


def _same_state(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_state(a[key], b[key]) for key in a)
    return bool(np.array_equal(a, b))


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.PCG64DXSM, np.random.MT19937])
@pytest.mark.parametrize("shape", [(32, 13, 13, 64), (7, 5, 5, 3), (9, 3), (5,), (4, 0)])
def test_rows_drawn_later_in_any_pieces_and_order_are_the_one_draw(bit_generator, shape, two_threads):
    """Rows filled a few at a time, in shuffled order, by two threads, whatever their alignment to the
    generator's 64-bit numbers (7x5x5x3 rows hold 75 words): the words and the generator's state are one draw's."""
    rng = np.random.default_rng(1)
    for seed in range(3):
        sequential, deferred = np.random.Generator(bit_generator(seed)), np.random.Generator(bit_generator(seed))
        sequential.random(seed)
        deferred.random(seed)
        expected = draw_random_words(sequential, shape)
        later = mask_words.RowsDrawnLater()
        words = later(deferred, shape)
        assert words.shape == shape and words.dtype == np.uint16
        assert _same_state(deferred.bit_generator.state, sequential.bit_generator.state)  # past the mask at once
        cuts = np.unique(np.r_[0, rng.integers(0, shape[0] + 1, 3), shape[0]])
        pieces = list(zip(cuts[:-1], cuts[1:], strict=True))
        rng.shuffle(pieces)

        def fill(slot, first, stop, later=later, words=words, pieces=pieces):
            for start, end in pieces[first:stop]:
                later.fill(words[start:end])

        parallel.parallel_ranges(len(pieces), fill)
        assert np.array_equal(words, expected)
        assert np.array_equal(deferred.random(5), sequential.random(5))


def test_rows_drawn_later_refuse_what_is_not_whole_rows_of_the_mask():
    later = mask_words.RowsDrawnLater()
    words = later(np.random.default_rng(0), (6, 10))
    for wrong in (words[:, :5], words.reshape(-1)[3:13].reshape(1, 10), np.empty((2, 10), np.uint16)):
        with pytest.raises(ValueError, match="whole rows of the mask"):
            later.fill(wrong)
