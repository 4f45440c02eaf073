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
