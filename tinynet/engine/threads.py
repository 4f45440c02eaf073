"""The engine's worker threads: how one training step uses every core.

The work of a step is split into independent pieces (image ranges of a convolution block, row or column blocks of a
matrix product, halves of the update) and each thread takes a contiguous range of them. The pieces are NumPy calls
and Numba kernels compiled with ``nogil=True``, which release Python's GIL, so the threads really run side by side.

Why not the alternatives (all measured on the 2-core machine this engine is tuned on):

- OpenBLAS's own threads speed up each matrix product but leave the rest of the step (im2col, pooling, dropout,
  col2im: about half of it) on one core, and spin after every product, so nothing else can use the second core (see
  :mod:`tinynet.engine.blas`).
- Numba's ``parallel=True`` regions: the OpenMP layer's threads spun between regions and made a step 5-8x slower;
  the workqueue layer was slower than serial kernels.

So while the engine computes (:func:`tinynet.engine.engine_scope`), OpenBLAS is asked for one thread and the
engine's threads split the work themselves. How the work is cut never depends on how many threads run it (each
piece computes the same numbers whoever runs it), so a seeded run gives the same bits with 1 thread or 2.

Threads: what :func:`set_num_threads` last set, else ``TINYNET_NUM_THREADS`` as the environment had it at import,
else the CPUs this process may use. With a BLAS tinynet cannot control (not OpenBLAS), everything runs on the
calling thread and the BLAS threads itself.

On a shared machine the threads give way (:mod:`tinynet.engine.contention`): when the workers get only part of
their core they watch for each other for about 10 us instead of 2 ms before sleeping, and when the threads cannot
run side by side at all the calling thread does the work alone for a while (batch-32 step with one busy process
per core: 60 ms before, 21 ms after, against 7.5 ms on a quiet machine). :func:`thread_decision` says what the
threads do now and why; :func:`set_adaptive_threads` (or ``TINYNET_ADAPTIVE_THREADS=0``) turns this off.

Nothing starts at import: the workers start when work is first handed to them, and only then is the fork handler
registered that makes a forked child start its own (:func:`parallel_ranges`).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable

import numba
import numpy as np

from tinynet.engine import blas
from tinynet.engine.atomics import load_acquire, store_release
from tinynet.engine.contention import WINDOW_SECONDS as _WORKER_WINDOW_SECONDS
from tinynet.engine.contention import ContentionDetector, ThreadDecision, adaptive_from_environment
from tinynet.kernels.matmul import MIN_SPLIT_MULTIPLY_ADDS, matmul_blocks, multiply_block, new_product, split_range

__all__ = ["num_threads", "set_num_threads", "set_adaptive_threads", "thread_decision", "watch_looks", "split_range",
           "parallel_ranges", "parallel_elementwise", "matmul", "matmuls"]


def _default_threads() -> int:
    value = os.environ.get("TINYNET_NUM_THREADS")
    if value:
        try:
            threads = int(value)
        except ValueError:
            raise ValueError(f"TINYNET_NUM_THREADS must be a positive integer, got {value!r}") from None
        if threads < 1:
            raise ValueError(f"TINYNET_NUM_THREADS must be a positive integer, got {value!r}")
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_requested_threads = _default_threads()
_local = threading.local()  # .busy: this thread is already running a piece of parallel work
# How long waits watch before sleeping, and whether regions use the workers now (tinynet.engine.contention).
_detector = ContentionDetector(enabled=adaptive_from_environment())


def num_threads() -> int:
    """How many threads tinynet's computations use (1 when the BLAS cannot be told to stay single-threaded)."""
    return _requested_threads if blas.controllable() else 1


def set_num_threads(threads: int) -> None:
    """Use ``threads`` threads (>= 1) for tinynet's computations from now on."""
    global _requested_threads
    if isinstance(threads, bool) or not isinstance(threads, int | np.integer) or threads < 1:
        raise ValueError(f"set_num_threads: threads must be a positive int, got {threads!r}")
    _requested_threads = int(threads)


def set_adaptive_threads(enabled: bool) -> None:
    """Adapt to a shared machine (True, the default; ``TINYNET_ADAPTIVE_THREADS=0`` at import turns it off):
    watch briefly and, when the threads cannot run side by side, use the calling thread alone for a while.
    False: always every thread, always the long watch (the behaviour before tinynet issue 15)."""
    global _detector
    if not isinstance(enabled, bool):
        raise TypeError(f"set_adaptive_threads: enabled must be a bool, got {enabled!r}")
    _detector = ContentionDetector(enabled=enabled)


def watch_looks() -> int:
    """How many looks at a flag a thread waiting for another takes now before it sleeps (the detector's choice:
    long on a quiet machine, short on a shared one); compiled code that waits for the engine's threads uses it."""
    return _detector.watch_iterations


def thread_decision() -> ThreadDecision:
    """How many threads the next parallel region would use, and why (``ThreadDecision(threads, reason)``)."""
    return _detector.decision(num_threads(), time.perf_counter())


# Waking a sleeping thread costs tens of microseconds on a virtual machine (a parallel_ranges round trip with
# empty tasks: 47-51 us), and a step hands work over about a dozen times. So a thread that waits for the other
# first watches a flag for a while, without the GIL, and only then sleeps on the queue (round trip: 10 us;
# batch-32 step 5.50-5.68 -> 5.19-5.36 ms in A/B). How long it watches is the detector's watch_iterations: about
# 2 ms on a quiet machine (longer than the gaps inside a training step and between its steps), about 10 us when
# the cores are shared, where watching for a descheduled partner only burns the slice the partner needs.


@numba.njit(cache=True, nogil=True)
def _watch_flag(flag, iterations):
    """Return True as soon as ``flag[0]`` is non-zero, False after ``iterations`` looks (GIL released)."""
    for _ in range(iterations):
        if load_acquire(flag, 0) != 0:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _watch_posted(posted, gate, iterations):
    """:func:`_watch_flag` ``posted``; once it is up, go on watching (as long again at most) until the calling
    thread opens ``gate``: then it has let go of the GIL, and this thread takes it without sleeping."""
    if not _watch_flag(posted, iterations):
        return False
    _watch_flag(gate, iterations)
    return True


@numba.njit(cache=True, nogil=True)
def open_gate(gate):
    """Let the workers of a region run by :func:`parallel_ranges` with ``gate_opened_by_task`` take the GIL: the
    calling thread's compiled code calls this first thing, when it has just let go of the GIL."""
    store_release(gate, 0, 1)


@numba.njit(cache=True, nogil=True)
def wait_for_closing(gate, iterations):
    """What a worker's compiled code run by :func:`parallel_ranges` with ``gate_opened_by_task`` does last:
    watch (at most ``iterations`` looks) until the calling thread waits for the workers without the GIL
    (``gate[1]``, raised by :func:`_watch_done`). Returning to Python, the worker then finds the GIL free; had
    it asked while the calling thread still held it, it would sleep until woken: a training step's forward
    region ended 110 us after its compiled code, 61 us with this (Xeon guest)."""
    _watch_flag(gate[1:], iterations)


@numba.njit(cache=True, nogil=True)
def _watch_done(done, gate, iterations):
    """Raise ``gate[1]`` (this thread has let go of the GIL: see :func:`wait_for_closing`), then
    :func:`_watch_flag` ``done``."""
    store_release(gate, 1, 1)
    return _watch_flag(done, iterations)


@numba.njit(cache=True, nogil=True)
def _raise_then_watch(raised, posted, gate, iterations):
    """Set ``raised[0] = 1``, then :func:`_watch_posted` ``posted`` and ``gate``. The flag goes up only once this
    thread has let go of the GIL (a ``nogil`` function drops it on entry): a thread that sees it and takes the GIL
    finds it free; and this thread comes back for the GIL only once the gate says the calling thread let go of it.

    Why it matters: a thread that asks for the GIL while another holds it sleeps on a condition variable, and
    waking it costs 20-35 us on a virtual machine (measured on a Xeon guest: a round trip with the flag raised
    while the GIL was still held, 56 us; the worker's share of it is what this removes)."""
    store_release(raised, 0, 1)
    return _watch_posted(posted, gate, iterations)


class _CpuShare:
    """How much of the CPU the calling thread got of the time it wanted it, window by window (``WINDOW_SECONDS``).

    On Linux both as the scheduler counts them (``/proc/thread-self/schedstat``: time on a CPU, and time runnable
    but waiting for one; one ``pread`` of a file kept open, under a microsecond), so no sleep of any kind counts
    as wanted time: neither on the thread's queue nor at a barrier inside compiled code, which the wall clock
    cannot tell from waiting for a CPU. Elsewhere ``time.thread_time`` against the wall time the thread did not
    spend sleeping on its queue (:meth:`slept`)."""

    def __init__(self) -> None:
        try:
            self._descriptor: int | None = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        except OSError:
            self._descriptor = None
        self._counts = self._read()
        self._start, self._cpu, self._slept = time.perf_counter(), time.thread_time(), 0.0

    def _read(self) -> tuple[float, float] | None:
        if self._descriptor is None:
            return None
        try:
            fields = os.pread(self._descriptor, 128, 0).split()
            return int(fields[0]) * 1e-9, int(fields[1]) * 1e-9
        except (OSError, ValueError, IndexError):
            return None

    def slept(self, seconds: float) -> None:
        """The thread slept ``seconds`` on its queue (only the wall-clock measure needs telling)."""
        self._slept += seconds

    def due(self, now: float) -> bool:
        return now - self._start >= _WORKER_WINDOW_SECONDS

    def window(self, now: float) -> tuple[float, float]:
        """``(CPU seconds, wanted seconds)`` since the last window, which ends at ``now``."""
        counts, cpu = self._read(), time.thread_time()
        if counts is not None and self._counts is not None:
            on_cpu = counts[0] - self._counts[0]
            wanted = on_cpu + counts[1] - self._counts[1]
        else:
            on_cpu, wanted = cpu - self._cpu, now - self._start - self._slept
        self._counts, self._cpu, self._start, self._slept = counts, cpu, now, 0.0
        return on_cpu, wanted


class _Worker:
    """One daemon thread that runs the pieces put on its queue, one after another.

    ``tasks`` carries ``(task, slot, start, stop)``, ``results`` what each raised (or None): both live as long as
    the worker, so a region allocates no queue. ``posted`` and ``done`` are hints beside the queues: ``posted`` is
    set after a piece is queued, ``done`` after its result is. Every ``WINDOW_SECONDS`` or so the worker tells the
    detector how much CPU it got of the wall time it wanted it (running pieces or watching, not sleeping).
    """

    def __init__(self, index: int) -> None:
        self.tasks: queue.SimpleQueue[tuple[Callable[[int, int, int], None], int, int, int]] = queue.SimpleQueue()
        self.results: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        self.posted = np.zeros(1, dtype=np.int64)
        self.done = np.zeros(1, dtype=np.int64)
        self.thread = threading.Thread(target=self._run, name=f"tinynet-worker-{index}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        _local.busy = True  # a piece of work that itself asks for parallel work runs it in place
        share = _CpuShare()
        posted = _watch_posted(self.posted, _gate, _detector.watch_iterations)
        while True:
            if not posted:
                sleep_start = time.perf_counter()
                task, slot, start, stop = self.tasks.get()
                share.slept(time.perf_counter() - sleep_start)
            else:
                task, slot, start, stop = self.tasks.get()
            self.posted[0] = 0
            outcome: BaseException | None = None
            try:
                task(slot, start, stop)
            except BaseException as error:  # handed to the calling thread, which re-raises it
                outcome = error
            # Drop the piece before reporting: the caller may free what it holds as soon as the result is in.
            task = None  # type: ignore[assignment]
            self.results.put(outcome)
            outcome = None
            now = time.perf_counter()
            if share.due(now):
                _detector.worker_window(*share.window(now))
            # "done" goes up after the GIL is let go, so the calling thread, which watches for it, takes the GIL
            # at once instead of sleeping until this thread drops it; then watch for the next piece.
            posted = _raise_then_watch(self.done, self.posted, _gate, _detector.watch_iterations)


# [0]: closed (0) while the calling thread of a region that asked for it still holds the GIL before its compiled
# code (parallel_ranges' gate_opened_by_task); open (1) otherwise. A worker that sees its piece posted waits for it
# to open before it takes the GIL: it then never sleeps waiting for the GIL, which costs 20-35 us a wake on a
# virtual machine (a region's worker started 85 us late, 10-15 us with the gate). [1]: the same at the region's
# end, raised once the calling thread waits for the workers without the GIL (wait_for_closing).
_gate = np.ones(2, dtype=np.int64)


def region_gate() -> np.ndarray:
    """The gate that compiled code run by :func:`parallel_ranges` with ``gate_opened_by_task`` opens
    (:func:`open_gate`)."""
    return _gate


_workers: list[_Worker] = []
_workers_lock = threading.Lock()
_fork_handler_registered = False


def _get_workers(count: int) -> list[_Worker]:
    """The first ``count`` workers, started on first demand (with the fork handler, registered once)."""
    global _fork_handler_registered
    with _workers_lock:
        if not _fork_handler_registered and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_forget_threads_after_fork)
            _fork_handler_registered = True
        while len(_workers) < count:
            _workers.append(_Worker(len(_workers) + 1))
        return _workers[:count]


def _forget_threads_after_fork() -> None:
    """In a child made by ``fork`` only the forking thread exists: work handed to the parent's workers would
    wait forever. The child starts its own when it first needs them; locks are made anew (a thread of the
    parent may have held one at the fork)."""
    global _workers, _workers_lock, _detector
    _workers, _workers_lock = [], threading.Lock()
    _detector = ContentionDetector(enabled=_detector.enabled)  # the parent's measurements were of its threads
    blas.forget_scope_after_fork()
    _local.__dict__.clear()


def parallel_ranges(count: int, task: Callable[[int, int, int], None], gate_opened_by_task: bool = False) -> None:
    """Run ``task(slot, start, stop)`` over ``range(count)`` cut into one contiguous range per thread.

    ``gate_opened_by_task``: the calling thread's task calls compiled code that opens :func:`region_gate` first
    thing (:func:`open_gate`); the workers wait for that before taking the GIL, so none sleeps waiting for it
    (the gate is opened anyway when the task returns or raises).

    ``slot`` (0 for the calling thread) tells a task which of its per-thread scratch buffers to use. Tasks must
    write disjoint outputs; an exception in any of them is raised here after all have finished. While the detector
    finds the cores too busy for the threads to run side by side, the calling thread runs the whole range itself
    (``task(0, 0, count)``, as with one thread): the numbers are the same, since no task's results depend on how
    the range is cut.
    """
    if count <= 0:
        return
    threads = num_threads()
    detector = _detector
    if threads <= 1 or count == 1 or getattr(_local, "busy", False):
        task(0, 0, count)
        return
    region_start = time.perf_counter()
    if not detector.use_threads(region_start):
        task(0, 0, count)
        region_end = time.perf_counter()
        detector.region(region_end - region_start, False, region_end)
        return
    ranges = split_range(count, threads)
    workers = _get_workers(len(ranges) - 1)
    with blas.single_threaded():
        if gate_opened_by_task:
            _gate[0] = 0
        _gate[1] = 0
        for slot, worker in enumerate(workers, start=1):
            worker.tasks.put((task, slot, *ranges[slot]))
            worker.posted[0] = 1
        _local.busy = True
        try:
            first_error: BaseException | None = None
            try:
                task(0, *ranges[0])
            except BaseException as error:
                first_error = error
            _gate[0] = 1
            for worker in workers:
                _watch_done(worker.done, _gate, detector.watch_iterations)
                worker.done[0] = 0
                worker_error = worker.results.get()
                if first_error is None:
                    first_error = worker_error
        finally:
            _gate[:] = 1
            _local.busy = False
    region_end = time.perf_counter()
    detector.region(region_end - region_start, True, region_end)
    if first_error is not None:
        raise first_error


# An array at least this large is cut into one piece per thread; a smaller one goes whole to the thread with the
# least work so far. Each piece is one call of the task, with its Python overhead held under the GIL: cutting the
# tutorial's 10 parameters (8 of them under 20,000 values) into 20 pieces made the 2-thread update slower than the
# 1-thread one (0.57 against 0.44 ms).
MIN_SPLIT_ELEMENTS = 1 << 16


def parallel_elementwise(groups: list[tuple[np.ndarray | None, ...]],
                         task: Callable[..., int]) -> int:
    """Run ``task(*pieces)`` on pieces of the arrays of each group, the pieces spread over the threads; return
    the sum of what the calls return.

    Each group holds arrays of one size (``None`` for an array a group lacks, passed on as ``None``), each
    C-contiguous. A group of :data:`MIN_SPLIT_ELEMENTS` or more is flattened and cut into one contiguous piece
    per thread (thread ``k`` takes piece ``k`` of every array of the group); a smaller one is handed whole to the
    thread with the fewest elements so far: the work is balanced whatever the sizes. Only for work where every
    element is independent, such as an optimizer's update (``parallel_elementwise([(param, grad, velocity),
    ...], update)``): its results are then the same however the arrays are cut.
    """
    lane_count = max(1, num_threads())
    lanes: list[list[tuple[np.ndarray | None, ...]]] = [[] for _ in range(lane_count)]
    loads = [0] * lane_count
    for arrays in sorted(groups, key=lambda group: -next(a.size for a in group if a is not None)):
        size = next(array.size for array in arrays if array is not None)
        if size >= MIN_SPLIT_ELEMENTS:
            for lane, (start, stop) in enumerate(split_range(size, lane_count)):
                lanes[lane].append(tuple(None if a is None else a.reshape(-1)[start:stop] for a in arrays))
                loads[lane] += stop - start
        else:
            lane = loads.index(min(loads))
            lanes[lane].append(arrays)
            loads[lane] += size
    totals = [0] * lane_count

    def run(slot: int, first: int, stop: int) -> None:
        for lane in range(first, stop):
            for pieces in lanes[lane]:
                totals[lane] += task(*pieces)

    parallel_ranges(lane_count, run)
    lanes.clear()  # the views into the model's arrays: nothing else should keep them alive
    return sum(totals)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` for 2-D arrays: the blocks of :func:`tinynet.kernels.matmul.blocked_matmul`, shared by the threads.

    The blocks are halves of the result's rows, or of its columns when it is wider than tall (a dense layer's
    batch of 32 rows against 512 units: each thread then multiplies all 32 rows by half the weights, 10 %
    faster than half the rows by all of them), each one single-threaded BLAS call into its part of ``out``. The
    cut depends only on the shapes, never on the thread count, and it is the cut the layers make on one thread:
    the result is bit for bit the layers' own. Small products run as one call. ``out``, when given, must be
    C-contiguous of the result's shape and dtype.
    """
    out = new_product(a, b, out)
    by_columns, blocks = matmul_blocks(a.shape[0], a.shape[1], b.shape[1])
    with blas.single_threaded():
        if len(blocks) == 1:
            return np.matmul(a, b, out=out)

        def run(slot: int, first: int, stop: int) -> None:
            for start, end in blocks[first:stop]:
                multiply_block(a, b, out, by_columns, start, end)

        parallel_ranges(len(blocks), run)
    return out


def matmuls(products: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """``out = a @ b`` for each ``(a, b, out)``, all in one parallel region: each product cut into
    :func:`matmul`'s blocks (so each result is bit for bit :func:`matmul`'s), the blocks of all of them shared by
    the threads in turn. A dense layer's backward pass hands over its two products, ``x^T @ dz`` and
    ``dz @ W^T``, at once: one thread handoff instead of two (each costs 30-60 us on a virtual machine). Each
    ``out`` must be C-contiguous of its product's shape and dtype, and no two may overlap."""
    cut = []
    for a, b, out in products:
        by_columns, blocks = matmul_blocks(a.shape[0], a.shape[1], b.shape[1])
        cut.append([(a, b, out, by_columns, start, stop) for start, stop in blocks])
    # Block k of every product, then block k + 1: each thread's contiguous range then holds a share of every
    # product (x^T dz then dz W^T on one thread, their halves on two, took 516 against 400 us, the second product
    # being the slower one).
    pieces = [blocks[k] for k in range(max(map(len, cut), default=0)) for blocks in cut if k < len(blocks)]

    def run(slot: int, first: int, stop: int) -> None:
        for piece in pieces[first:stop]:
            multiply_block(*piece)

    with blas.single_threaded():
        if sum(a.shape[0] * a.shape[1] * b.shape[1] for a, b, _ in products) < MIN_SPLIT_MULTIPLY_ADDS:
            run(0, 0, len(pieces))  # products this small take less time than a handoff (dense_3's: 30 us vs 57)
        else:
            parallel_ranges(len(pieces), run)
