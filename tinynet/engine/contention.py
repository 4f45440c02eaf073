"""Is this machine shared right now? How long the engine's threads watch before sleeping, and whether to use them.

A thread of the engine that waits for the other (a worker for its next piece, the calling thread for a worker's
result) first watches a flag, and only then sleeps on a queue. On a quiet machine watching pays: waking a sleeping
thread costs tens of microseconds on a virtual machine, and a step hands work over about a dozen times (batch-32
tutorial step, 2 cores: 7.8 ms watching up to 2 ms, 10.6 ms watching 10 us). On a machine whose cores are all
busy with other processes it is the other way round: a thread that watches for a partner the scheduler has
descheduled burns the time slice that partner (or the next piece of work) needed (the same step with one busy
process per core: 47 ms watching up to 2 ms, 20 ms watching 10 us).

So the engine measures, from its own threads, how much of the CPU they get:

- **share** (:meth:`ContentionDetector.worker_window`): every ``WINDOW_SECONDS`` or so a worker compares the CPU
  time it got (``time.thread_time``, one system call a window) with the wall time in which it wanted the CPU
  (running a piece or watching; not sleeping on its queue). A worker alone on its core gets about all of it; one
  sharing its core with a busy process about half. Below ``CONTENDED_BELOW`` in ``CONTENDED_WINDOWS`` windows
  in a row the machine is *contended* and threads watch only ``CONTENDED_WATCH`` looks (about 10 us) before
  sleeping; above ``QUIET_ABOVE`` it is quiet again and they watch ``QUIET_WATCH`` looks (about 2 ms). The gap
  between the two thresholds keeps the state from flapping, and the run of windows keeps a passing dip from
  costing a quiet machine its long watches.
- **wait ratio** (:meth:`ContentionDetector.region`): the calling thread times its own piece of each parallel
  region and then its wait for the workers' pieces. With ``n`` threads a region takes ``own + wait``; the calling
  thread alone would take ``n * own / share``: ``n`` pieces instead of one, and, never sleeping, it would get only
  the ``share`` of its core that a worker gets (its own piece ran at nearly full speed, because a thread woken
  from sleep is scheduled ahead of a busy loop). So while contended, a window of regions with
  ``wait / own > n / share - 1`` sends the work to the calling thread alone for a while
  (:meth:`ContentionDetector.use_threads` is False); then the threads are tried again (a probe), the pause
  doubling, up to ``LONGEST_PAUSE``, while probes keep failing, and shrinking back once one succeeds.

Measured on the 2-core machine (AMD EPYC, AVX2/FMA, 2 MiB L2), batch-32 tutorial step, one busy process per
core: two threads watching briefly 20-21 ms a step, one thread 38-60 ms, two threads falling back to one whenever
``wait > own`` (the naive rule, which forgets that a thread alone gets only its share) 54 ms. So under such load
the detector keeps both threads and only shortens the watch; the fallback is for a region whose wait exceeds
even what one thread would lose, such as threads descheduled for whole time slices at every region.

Nothing here reads a file or the clock itself: the threads hand it their measurements (a few floats), which
keeps it cheap (well under a microsecond per region) and lets tests drive it with synthetic numbers. How work is
cut never depends on these decisions: a piece computes the same numbers whichever thread runs it.
"""

from __future__ import annotations

import os
from typing import NamedTuple

__all__ = ["ContentionDetector", "ThreadDecision", "adaptive_from_environment"]

QUIET_WATCH = 10_000_000  # looks at the flag, about 2 ms on the machine this was tuned on
CONTENDED_WATCH = 50_000  # about 10 us: enough for a partner that is running, far too short to burn a slice
WINDOW_SECONDS = 0.05  # long enough to hold a few time slices of a busy scheduler, short enough to react quickly
SHORTEST_WANTED = 0.005  # a worker window with less wanted-CPU time than this says nothing either way
# Share of its wanted CPU time a worker got: below CONTENDED_BELOW in CONTENDED_WINDOWS windows in a row, its core
# is shared; above QUIET_ABOVE in one window, quiet again. A core shared with one busy process gives a worker about
# half; a quiet virtual machine 84-100 % (the host takes some), and single windows dip lower when the process's
# other threads (a benchmark's peers) finish spinning. With one window below 0.75 enough, and 0.9 needed to come
# back, an interleaved benchmark on a quiet machine left the engine watching briefly: batch-32 step 10.0 ms, 6.2
# ms with the detector off; with these settings it no longer does.
CONTENDED_BELOW = 0.65
CONTENDED_WINDOWS = 3
QUIET_ABOVE = 0.8
SHORTEST_PAUSE = 0.5  # seconds on the calling thread alone before the threads are tried again
LONGEST_PAUSE = 8.0


class ThreadDecision(NamedTuple):
    """How many threads the engine's parallel work uses now, and why."""

    threads: int
    reason: str


def adaptive_from_environment(environment: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """``TINYNET_ADAPTIVE_THREADS``: ``1`` (the default) adapts to a shared machine, ``0`` never does."""
    value = environment.get("TINYNET_ADAPTIVE_THREADS", "").strip()
    if value in ("", "1"):
        return True
    if value == "0":
        return False
    raise ValueError(f"TINYNET_ADAPTIVE_THREADS must be 0 or 1, got {value!r}")


class ContentionDetector:
    """The state the engine's threads read before each wait and each parallel region (see the module docstring).

    ``watch_iterations`` (how many looks at a flag before sleeping) and ``serial_until`` (a ``perf_counter`` time
    before which parallel work runs on the calling thread alone) are plain attributes, so the hot path reads them
    without a call. Workers call :meth:`worker_window`, the calling thread :meth:`region`; with ``enabled`` False
    neither changes anything and the threads always watch long and always run in parallel.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.contended = False
        self.watch_iterations = QUIET_WATCH
        self.serial_until = 0.0
        self.pause = SHORTEST_PAUSE
        self.last_share: float | None = None  # the last worker window's share, for thread_decision
        self.last_wait_ratio: float | None = None
        self._low_windows = 0  # consecutive worker windows below CONTENDED_BELOW
        self._own = 0.0
        self._wait = 0.0
        self._window_start: float | None = None
        self._threads = 2

    def worker_window(self, cpu_seconds: float, wanted_seconds: float) -> None:
        """A worker got ``cpu_seconds`` of CPU in ``wanted_seconds`` of wall time in which it was runnable."""
        if not self.enabled or wanted_seconds < SHORTEST_WANTED:
            return
        share = cpu_seconds / wanted_seconds
        self.last_share = share
        self._low_windows = self._low_windows + 1 if share < CONTENDED_BELOW else 0
        if not self.contended and self._low_windows >= CONTENDED_WINDOWS:
            self.contended = True
            self.watch_iterations = CONTENDED_WATCH
        elif self.contended and share > QUIET_ABOVE:
            self.contended = False
            self.watch_iterations = QUIET_WATCH
            self.pause = SHORTEST_PAUSE

    def region(self, own_seconds: float, wait_seconds: float, threads: int, now: float) -> None:
        """A parallel region over ``threads`` threads ended at ``now``: the calling thread's piece took
        ``own_seconds``, then it waited ``wait_seconds`` for the workers' pieces."""
        if not self.enabled:
            return
        self._threads = threads
        if self._window_start is None:
            self._window_start = now
        self._own += own_seconds
        self._wait += wait_seconds
        if now - self._window_start < WINDOW_SECONDS:
            return
        ratio = self._wait / max(self._own, 1e-9)
        self.last_wait_ratio = ratio
        self._own = self._wait = 0.0
        self._window_start = None
        if not self.contended:
            return  # an uneven split on a quiet machine is no reason to give up a core
        share = 1.0 if self.last_share is None else max(self.last_share, 0.05)
        if ratio > self._threads / share - 1.0:
            self.serial_until = now + self.pause
            self.pause = min(2 * self.pause, LONGEST_PAUSE)
        else:
            self.pause = SHORTEST_PAUSE

    def use_threads(self, now: float) -> bool:
        """Whether a parallel region starting at ``now`` should use the workers."""
        return now >= self.serial_until

    def decision(self, threads: int, now: float) -> ThreadDecision:
        """What a region starting at ``now`` with ``threads`` threads requested would do, and why."""
        if threads <= 1:
            return ThreadDecision(1, "one thread requested (set_num_threads / TINYNET_NUM_THREADS), or a BLAS "
                                     "tinynet cannot keep single-threaded")
        if not self.enabled:
            return ThreadDecision(threads, "adaptive threads off (TINYNET_ADAPTIVE_THREADS=0 or "
                                           "set_adaptive_threads(False)): always every thread, long watches")
        share = "not measured yet" if self.last_share is None else f"{self.last_share:.0%}"
        ratio = "not measured yet" if self.last_wait_ratio is None else f"{self.last_wait_ratio:.2f}"
        if not self.use_threads(now):
            return ThreadDecision(1, f"contended (workers got {share} of the CPU they asked for) and parallel "
                                     f"regions waited {ratio} x their own work: the calling thread alone for "
                                     f"{self.serial_until - now:.1f} s more, then the threads are tried again")
        if self.contended:
            return ThreadDecision(threads, f"contended (workers got {share} of the CPU they asked for; regions "
                                           f"wait {ratio} x their own work): every thread, short watches")
        return ThreadDecision(threads, f"quiet (workers got {share} of the CPU they asked for): every thread, "
                                       "long watches")
