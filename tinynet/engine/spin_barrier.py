"""A barrier for compiled code: the engine's threads meet inside one ``nogil`` call, without the GIL.

A parallel region (:func:`tinynet.engine.threads.parallel_ranges`) ends when every thread is done, and each new
region costs a handoff of the GIL (20-90 us on a virtual machine). Work whose phases depend on each other (a
dense layer needs all of the previous layer's rows) can instead stay inside one compiled call per thread, the
threads meeting between phases here: each arrival adds one to a shared counter, then watches it (an atomic load,
no GIL) until every participant of that phase has arrived. The watch yields the CPU (``sched_yield``) after a
short spin, so a participant that the machine has descheduled is not kept from running by the one waiting for it.

``abort`` (any non-zero value) releases every waiter at once: the Python side raises it when a participant failed
before reaching its compiled call, so no thread waits for one that will never come (the region then raises the
error). The counter must start at zero for each region, and every participant must pass the same barriers.
"""

from __future__ import annotations

import ctypes
import functools
from typing import TYPE_CHECKING, Any

import numba
import numpy as np
from numba.core import cgutils
from numba.extending import intrinsic

from tinynet.engine.threads import _load_acquire

__all__ = ["arrive_and_wait", "yield_function", "SPINS_BEFORE_YIELD"]

# Looks at the counter before each sched_yield: about a microsecond of spinning, far less than a phase's work.
SPINS_BEFORE_YIELD = 256


if TYPE_CHECKING:
    def _fetch_add(array: np.ndarray, index: int, value: int) -> int: ...
else:
    @intrinsic
    def _fetch_add(typingctx, array, index, value):  # noqa: ARG001 (Numba's intrinsic signature)
        """``array[index] += value`` as one atomic read-modify-write (acquire and release); returns the old value."""

        def codegen(context, builder, signature, args):
            array_type = signature.args[0]
            array_struct = context.make_array(array_type)(context, builder, args[0])
            pointer = cgutils.get_item_pointer(context, builder, array_type, array_struct, [args[1]])
            added = context.cast(builder, args[2], signature.args[2], array_type.dtype)
            return builder.atomic_rmw("add", pointer, added, "acq_rel")

        return array.dtype(array, index, value), codegen


@numba.njit(cache=True, nogil=True)
def arrive_and_wait(counter, target, abort, yield_cpu):
    """Add one to ``counter[0]`` and return once it reaches ``target`` (this phase's number times the number of
    participants) or ``abort[0]`` is set; ``yield_cpu`` is :func:`yield_function`'s ``sched_yield``."""
    _fetch_add(counter, 0, 1)
    spins = 0
    while _load_acquire(counter, 0) < target and _load_acquire(abort, 0) == 0:
        spins += 1
        if spins >= SPINS_BEFORE_YIELD:
            yield_cpu()
            spins = 0


@functools.cache
def yield_function() -> Any:
    """The C library's ``sched_yield`` as a function compiled code can call (without the GIL)."""
    function = ctypes.CDLL(None).sched_yield
    address = ctypes.cast(function, ctypes.c_void_p).value
    if not address:
        raise RuntimeError("spin_barrier: the C library's sched_yield has no address")
    return ctypes.CFUNCTYPE(ctypes.c_int)(address)
