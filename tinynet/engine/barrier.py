"""A barrier for compiled code: the engine's threads meet inside one ``nogil`` call, without the GIL.

A parallel region (:func:`tinynet.engine.threads.parallel_ranges`) ends when every thread is done, and each new
region costs a handoff of the GIL (20-90 us on a virtual machine). Work whose phases depend on each other (a
dense layer needs all of the previous layer's rows) can instead stay inside one compiled call per thread, the
threads meeting between phases here.

Each arrival adds one to a shared count of arrivals and then watches it (an atomic load, no GIL) until every
participant of that phase has arrived (:func:`arrive_and_wait`). The two halves also serve apart: the training
passes count finished pieces of work (:func:`arrive` once a piece) and wait for a phase's total (:func:`wait_for`),
so that no thread waits for another that holds no piece.

A watch that lasts too long goes to sleep in the kernel (Linux's futex, on the count itself), and the last arrival
wakes the sleepers. How long to watch first is the caller's choice: the
engine passes what its contention detector says a wait should watch (:mod:`tinynet.engine.contention`), about
2 ms on a quiet machine, where the partner is running and will arrive soon, and about 10 us when the cores are
shared. There the partner may be descheduled for a whole time slice, and a waiter that kept the CPU, even one
calling ``sched_yield`` in a loop, would burn the slice the other process's scheduler share gives back to it:
sleeping lets the busy process run now, and the wake-up puts this thread back as soon as the partner arrives
(batch-32 tutorial step with one busy process per core, Xeon guest: 32 ms with ``sched_yield``, see
``docs/performance.md`` for the figures with sleeping).

``abort`` (any non-zero value) releases every waiter: the Python side raises it when a participant failed before
reaching its compiled call, so no thread waits for one that will never come (the region then raises the error).
A sleeper sees it within ``SLEEP_NANOSECONDS``. The barrier (:func:`new_barrier`) must start at zero for each
region, and every participant must pass the same barriers.

Where the futex system call is not known (a system other than Linux on x86-64, ARM64, RISC-V or POWER), a long
watch yields the CPU (``sched_yield``) instead of sleeping.
"""

from __future__ import annotations

import ctypes
import functools
import platform
import sys
from typing import Any

import numba
import numpy as np

from tinynet.engine.atomics import fetch_add, load_acquire

__all__ = ["new_barrier", "arrive", "wait_for", "arrive_and_wait", "system_calls", "waits", "SLEEP_NANOSECONDS"]

ARRIVALS, SLEEPERS = 0, 1  # the barrier's two counts (int32: the futex word is the count of arrivals)
# waits' fields: the futex system call's number (-1: none, yield instead), sched_yield's, how many looks before
# sleeping, the address of the sleep's timeout, and that timeout (a struct timespec: seconds, nanoseconds).
FUTEX, SCHED_YIELD, WATCH, TIMEOUT, TIMESPEC = 0, 1, 2, 3, 4
_FUTEX_WAIT_PRIVATE, _FUTEX_WAKE_PRIVATE = 128, 129  # FUTEX_WAIT / FUTEX_WAKE | FUTEX_PRIVATE_FLAG
_WAKE_ALL = 2**31 - 1
# A sleeper looks at the abort flag at least this often (and no wake-up is ever waited for longer).
SLEEP_NANOSECONDS = 1_000_000
# Linux's system call numbers (futex, sched_yield) by machine: the generic table (ARM64, RISC-V) and two others.
_LINUX_CALLS = {"x86_64": (202, 24), "aarch64": (98, 124), "arm64": (98, 124), "riscv64": (98, 124),
                "ppc64le": (221, 158), "ppc64": (221, 158)}


def new_barrier() -> np.ndarray:
    """A barrier at zero: the counts of arrivals and of sleepers."""
    return np.zeros(2, dtype=np.int32)


@numba.njit(cache=True, nogil=True)
def arrive(barrier, target, system_call, waits):
    """Add one to the arrivals; the arrival that brings them to ``target`` wakes whoever went to sleep. Returns
    the new count. (Compiled code that counts finished pieces of work instead of threads calls it once a piece.)"""
    count = fetch_add(barrier, ARRIVALS, 1) + 1
    if count >= target and load_acquire(barrier, SLEEPERS) > 0 and waits[FUTEX] >= 0:
        system_call(waits[FUTEX], barrier.ctypes.data, _FUTEX_WAKE_PRIVATE, _WAKE_ALL, 0, 0, 0)
    return count


@numba.njit(cache=True, nogil=True)
def wait_for(barrier, target, abort, system_call, waits):
    """Return once the arrivals reach ``target`` or ``abort[0]`` is set: watch, then sleep (see the module
    docstring)."""
    looks = 0
    while True:
        arrived = load_acquire(barrier, ARRIVALS)
        if arrived >= target or load_acquire(abort, 0) != 0:
            return
        looks += 1
        if looks < waits[WATCH]:
            continue
        looks = 0
        if waits[FUTEX] < 0:
            system_call(waits[SCHED_YIELD], 0, 0, 0, 0, 0, 0)
            continue
        # Count this thread as a sleeper before looking again: an arrival after that look sees the sleeper and
        # wakes it, and one before it changed the word, so the kernel refuses the sleep (the word is not `arrived`).
        fetch_add(barrier, SLEEPERS, 1)
        arrived = load_acquire(barrier, ARRIVALS)
        if arrived < target and load_acquire(abort, 0) == 0:
            system_call(waits[FUTEX], barrier.ctypes.data, _FUTEX_WAIT_PRIVATE, arrived, waits[TIMEOUT], 0, 0)
        fetch_add(barrier, SLEEPERS, -1)


@numba.njit(cache=True, nogil=True)
def arrive_and_wait(barrier, target, abort, system_call, waits):
    """Add one to the arrivals and return once they reach ``target`` (this phase's number times the number of
    participants) or ``abort[0]`` is set. ``system_call`` and ``waits``: :func:`system_calls` and :func:`waits`."""
    if arrive(barrier, target, system_call, waits) >= target:
        return
    wait_for(barrier, target, abort, system_call, waits)


_PROTOTYPE = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long, ctypes.c_size_t, ctypes.c_long, ctypes.c_long,
                              ctypes.c_size_t, ctypes.c_size_t, ctypes.c_long)


def _linux_calls() -> tuple[int, int] | None:
    if not sys.platform.startswith("linux"):
        return None
    return _LINUX_CALLS.get(platform.machine().lower())


@functools.cache
def system_calls() -> Any:
    """What compiled code calls to sleep, wake and yield (without the GIL): the C library's ``syscall`` on Linux;
    elsewhere its ``sched_yield`` under the same prototype (the extra arguments, in registers, are ignored)."""
    library = ctypes.CDLL(None)
    function = library.syscall if _linux_calls() is not None else library.sched_yield
    address = ctypes.cast(function, ctypes.c_void_p).value
    if not address:
        raise RuntimeError("barrier: the C library's syscall / sched_yield has no address")
    return _PROTOTYPE(address)


@functools.lru_cache(maxsize=8)  # a pass asks for the detector's watch, one of two values: no array per pass
def waits(watch_looks: int, sleep_nanoseconds: int = SLEEP_NANOSECONDS) -> np.ndarray:
    """The ``waits`` argument of :func:`arrive_and_wait`: watch ``watch_looks`` looks (at least one), then sleep
    up to ``sleep_nanoseconds`` at a time (the timeout lives in the array itself, so it lives as long). The array
    is shared between callers asking for the same waits: read it, never write it."""
    futex, sched_yield = _linux_calls() or (-1, -1)
    seconds, nanoseconds = divmod(max(int(sleep_nanoseconds), 1), 1_000_000_000)
    fields = np.array([futex, sched_yield, max(int(watch_looks), 1), 0, seconds, nanoseconds], dtype=np.int64)
    fields[TIMEOUT] = fields.ctypes.data + TIMESPEC * fields.itemsize
    return fields
