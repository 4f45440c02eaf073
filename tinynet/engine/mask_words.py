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

:class:`RowsDrawnLater` goes one step further for a stage that cuts the batch between its threads anyway: it hands
back the mask's array unfilled, moves the layer's generator past the whole mask at once, and lets each thread draw
the rows of its own images inside the stage's parallel region: one thread handoff fewer a step (each costs 30-90
us on a virtual machine: the receiving thread must win the GIL).
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


class RowsDrawnLater:
    """A ``draw`` for :meth:`tinynet.layers.Dropout.draw_mask_words` that defers the drawing of rows.

    Called as ``draw(generator, shape)``, it returns a new, *unfilled* uint16 array of ``shape`` and advances the
    generator exactly as :func:`~tinynet.kernels.dropout.draw_random_words` would. :meth:`fill` then draws any
    rows of that array (or of a view of whole rows of it, such as a data-parallel shard's) from a copy of the
    generator advanced to their place in the stream: the words are those of the one draw, whichever thread fills
    which rows, in any order. Every row must be filled before it is read.

    A generator without an exact ``advance`` (anything but PCG64 and PCG64DXSM) is drawn at once, in the call;
    :meth:`fill` then has nothing to do.
    """

    def __init__(self) -> None:
        self._words: np.ndarray | None = None
        self._state: Any = None  # the generator's state where the mask's stream starts; None: drawn already
        self._kind: type | None = None

    def __call__(self, generator: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        bit_generator: Any = generator.bit_generator
        if not isinstance(bit_generator, _EXACT_ADVANCE):
            self._words, self._state = draw_random_words(generator, shape), None
            return self._words
        self._words = np.empty(shape, dtype=np.uint16)
        self._state, self._kind = bit_generator.state, type(bit_generator)
        bit_generator.advance((math.prod(shape) + 3) // 4)  # past the whole mask, as the one draw leaves it
        return self._words

    def pcg64_stream(self, rows: np.ndarray) -> tuple[int, int, int] | None:
        """``(state, increment, first_word)`` for drawing ``rows`` (whole rows of the array the last call
        returned, as :meth:`fill` takes them) in compiled code (:func:`tinynet.kernels.pcg64.pcg64_fill_words`):
        the 128-bit PCG64 state where the mask's stream starts, its increment, and the word of that stream
        ``rows`` starts at. ``None`` when the generator is not ``PCG64`` or the mask was drawn at once."""
        if self._state is None or self._kind is not np.random.PCG64 or self._words is None:
            return None
        inner = self._state["state"]
        return int(inner["state"]), int(inner["inc"]), self._first_word(rows)

    def _first_word(self, rows: np.ndarray) -> int:
        """Where ``rows`` starts in the mask (words), after checking that it is whole rows of it."""
        words = self._words
        assert words is not None
        first = (rows.__array_interface__["data"][0] - words.__array_interface__["data"][0]) // words.itemsize
        row_words = math.prod(words.shape[1:])
        if (not rows.flags.c_contiguous or rows.dtype != np.uint16 or rows.shape[1:] != words.shape[1:]
                or first < 0 or (row_words and first % row_words) or first + rows.size > words.size):
            raise ValueError(f"RowsDrawnLater.fill: rows must be whole rows of the mask {words.shape}, got a view "
                             f"of shape {rows.shape} at word {first}")
        return first

    def fill(self, rows: np.ndarray) -> None:
        """Draw ``rows``: a C-contiguous view of whole rows of the array the last call returned."""
        if self._state is None or self._words is None or self._kind is None:
            return
        first = self._first_word(rows)
        if rows.size == 0:
            return
        start_raw, stop_raw = first // 4, (first + rows.size + 3) // 4
        (source,) = _spare_generators(self._kind, 1)
        source.state = self._state
        source.advance(start_raw)
        raw = source.random_raw(stop_raw - start_raw)
        skip = first - 4 * start_raw  # the first raw number may also hold the previous rows' last words
        rows.reshape(-1)[:] = raw.view(np.uint16)[skip:skip + rows.size]
