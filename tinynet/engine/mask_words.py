"""Dropout mask words drawn by the engine's threads: the same words, in half the time.

A dropout mask is drawn from the layer's NumPy generator as raw 64-bit numbers, four 16-bit words each
(:func:`tinynet.kernels.dropout.draw_random_words`). For the tutorial's first block that is 346,000 words a
batch-32 step, 0.3 ms on one thread while the other waits: the longest piece of a step that ran on one thread.

The generator's stream can be cut instead of drawn in turn: PCG64, NumPy's default, can *advance* by any count
in a few steps. So the raw numbers are cut into one piece per thread; the calling thread draws the first from
the layer's generator itself, each other thread draws its piece from a copy of the generator advanced to the
piece's start, and the layer's generator is then advanced past all of them. The words, and where the generator
stands afterwards, are exactly the one-thread draw's (a test compares them), whatever the number of threads;
``random_raw`` releases the GIL, so the pieces really are drawn side by side.

Any other generator (a user's ``MT19937`` or ``Philox``) and any small draw is drawn in one piece.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from tinynet.engine import threads
from tinynet.kernels.dropout import draw_random_words

# The bit generators whose advance(n) lands exactly where n draws would (Philox's also drops the rest of its
# block of four: a piece drawn from an advanced copy differed from the same stretch drawn in turn, in a test).
_EXACT_ADVANCE = (np.random.PCG64, np.random.PCG64DXSM)
# Below this many raw numbers (4 words each) one draw is quicker than handing half of it to another thread.
MIN_SPLIT_RAW_NUMBERS = 1 << 14


_spares = threading.local()  # per calling thread: {bit generator class: [instances]}, whose state is overwritten


def _spare_generators(kind: type, count: int) -> list[Any]:
    """``count`` bit generators of class ``kind`` to load a state into, made once (seeding a new one costs more
    than the draw it would serve) and kept per calling thread, so that two threads drawing at once never share."""
    kept = getattr(_spares, "by_kind", None)
    if kept is None:
        kept = _spares.by_kind = {}
    spares = kept.setdefault(kind, [])
    while len(spares) < count:
        spares.append(kind(0))
    return spares[:count]


def draw_random_words_threaded(generator: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """:func:`~tinynet.kernels.dropout.draw_random_words`'s words for ``shape``, drawn by the engine's threads."""
    count = math.prod(shape)
    raw_count = (count + 3) // 4
    bit_generator: Any = generator.bit_generator
    pieces = threads.split_range(raw_count, threads.num_threads())
    if raw_count < MIN_SPLIT_RAW_NUMBERS or len(pieces) < 2 or not isinstance(bit_generator, _EXACT_ADVANCE):
        return draw_random_words(generator, shape)
    raw = np.empty(raw_count, dtype=np.uint64)
    # The other pieces' generators: copies of this one's state, each advanced to its piece's start.
    copies = _spare_generators(type(bit_generator), len(pieces) - 1)
    state = bit_generator.state
    for copy, (start, _) in zip(copies, pieces[1:], strict=True):
        copy.state = state
        copy.advance(start)

    def draw_pieces(slot: int, first: int, stop: int) -> None:
        for piece in range(first, stop):
            start, end = pieces[piece]
            source = bit_generator if piece == 0 else copies[piece - 1]
            raw[start:end] = source.random_raw(end - start)

    threads.parallel_ranges(len(pieces), draw_pieces)
    bit_generator.advance(raw_count - pieces[0][1])  # past the other pieces, as one draw of them all would
    return raw.view(np.uint16)[:count].reshape(shape)
