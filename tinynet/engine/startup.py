"""What the engine changes in its host process, and when: on first use, never at import.

A library must not change the process that imports it. The engine needs two process-wide settings, so it makes
them the first time a model runs through it (:func:`engine_scope`), or when :func:`start` is called:

- glibc's allocator keeps large freed blocks for reuse (:func:`tinynet.engine.allocator.tune_allocator`);
- the worker threads, and the fork handler that lets a forked child start its own, are made when work is
  first handed to them (:mod:`tinynet.engine.threads`).

Around each step the engine also holds OpenBLAS to one thread (:func:`tinynet.engine.blas.single_threaded`),
restored when the step ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tinynet.engine import allocator, blas

_started = False


def start() -> None:
    """Apply the engine's process-wide settings now (once; later calls do nothing)."""
    global _started
    if not _started:
        _started = True
        allocator.tune_allocator()


def started() -> bool:
    """Whether :func:`start` has run in this process."""
    return _started


@contextlib.contextmanager
def engine_scope() -> Iterator[None]:
    """The engine at work: started (the first time), OpenBLAS single-threaded until the scope is left.

    Re-entrant and cheap; the model holds it around a whole training step or prediction with the engine on.
    """
    if not _started:
        start()
    with blas.single_threaded():
        yield
