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
  time it got with the time in which it wanted the CPU: on Linux both as the scheduler counts them (time on a
  CPU, and on it plus time runnable but waiting for one), elsewhere its ``time.thread_time`` against the wall
  time it was not sleeping on its queue. (The wall clock cannot see a sleep inside compiled code, at a barrier:
  counting those as wanted time made a quiet machine look shared, and the short watches then kept it slow, 4.0
  -> 6.3 ms a step.) A worker alone on its core gets about all of it; one sharing its core with a busy process
  about half. Below ``CONTENDED_BELOW`` in ``CONTENDED_WINDOWS`` windows
  in a row the machine is *contended* and threads watch only ``CONTENDED_WATCH`` looks (about 10 us) before
  sleeping; above ``QUIET_ABOVE`` it is quiet again and they watch ``QUIET_WATCH`` looks (about 2 ms). The gap
  between the two thresholds keeps the state from flapping, and the run of windows keeps a passing dip from
  costing a quiet machine its long watches.
- **timing both ways** (:meth:`ContentionDetector.region`): while contended, whether the threads still pay is
  not something a model of the machine can tell well (it depends on how the scheduler lines up the threads' time
  slices, on how much of the work is split, and on what else runs), so the detector measures it. Each parallel
  region reports its wall time and how it ran; a *trial* times a window of regions (``WINDOW_SECONDS`` and
  ``TRIAL_REGIONS`` at least) on every thread, then a window on the calling thread alone
  (:meth:`ContentionDetector.use_threads` is False), and the faster way is kept for a while (the calling
  thread alone only when clearly faster, ``ALONE_MARGIN``). Then both are timed
  again, the pause doubling, up to ``LONGEST_PAUSE``, while the same way keeps winning, and shrinking back to
  ``SHORTEST_PAUSE`` when the other wins. A trial's windows see the same mix of regions (a training step repeats
  its regions many times a window), so their mean region times compare like with like.

Measured on the 2-core machine (AMD EPYC, AVX2/FMA, 2 MiB L2), batch-32 tutorial step trained stage by stage, one
busy process per core: two threads watching briefly 20-21 ms a step, one thread 38-60 ms. On a Xeon guest with
the step compiled into one call per thread (threads meeting at barriers, :mod:`tinynet.engine.barrier`), the same
load gave two threads 7.3-12 ms a step from run to run and one thread a steady 10.1 ms, against 4.0 ms idle:
neither way wins everywhere, which is why the detector times them rather than guessing.

Nothing here reads a file or the clock itself: the threads hand it their measurements (a few floats), which
keeps it cheap (well under a microsecond per region) and lets tests drive it with synthetic numbers. How work is
cut never depends on these decisions: a piece computes the same numbers whichever thread runs it.
"""

from __future__ import annotations

import math
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
SHORTEST_PAUSE = 0.5  # seconds a trial's choice is kept before both ways are timed again
LONGEST_PAUSE = 2.0  # short: while the calling thread works alone, only a trial can see the others leave
TRIAL_REGIONS = 8  # a trial's window holds at least this many regions (a few training steps' worth)
# The calling thread alone is kept only when a trial finds its regions this much faster. Windows on a shared
# machine are noisy, and a wrong choice of the calling thread alone costs far more than a wrong choice of the
# threads: choosing the faster by any margin, an epoch of `tinynet train` with one busy process per core took
# 2.45-2.48x its idle time, always keeping the threads 1.77x (Xeon guest; the batch-32 step 2.84-2.87x either way).
ALONE_MARGIN = 0.75
THREADS, ALONE = "every thread", "the calling thread alone"


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
        self.region_means: dict[str, float] = {}  # the last trial's mean seconds a region, by way (THREADS, ALONE)
        self.trial: str | None = None  # the way a trial is timing now, or None while a choice is kept
        self.choice = THREADS
        self._keep_until = 0.0
        self._low_windows = 0  # consecutive worker windows below CONTENDED_BELOW
        self._seconds = 0.0
        self._regions = 0
        self._window_start: float | None = None

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
            self._keep_until = 0.0  # the next region begins a trial
        elif self.contended and share > QUIET_ABOVE:
            self.contended = False
            self.watch_iterations = QUIET_WATCH
            self.serial_until = self._keep_until = 0.0
            self.trial, self.choice, self.pause = None, THREADS, SHORTEST_PAUSE

    def region(self, seconds: float, threaded: bool, now: float) -> None:
        """A parallel region that took ``seconds`` of wall time ended at ``now``; ``threaded``: it ran on every
        thread (else on the calling thread alone)."""
        if not self.enabled or not self.contended:
            return  # a quiet machine always uses every thread
        if self.trial is None:
            if now >= self._keep_until:
                self._begin(THREADS)
            return
        if threaded != (self.trial == THREADS):
            return  # it began before the trial changed ways
        if self._window_start is None:
            self._window_start = now - seconds
        self._seconds += seconds
        self._regions += 1
        if now - self._window_start < WINDOW_SECONDS or self._regions < TRIAL_REGIONS:
            return
        self.region_means[self.trial] = self._seconds / self._regions
        if self.trial == THREADS:
            self._begin(ALONE)
            return
        choice = ALONE if self.region_means[ALONE] < ALONE_MARGIN * self.region_means[THREADS] else THREADS
        self.pause = min(2 * self.pause, LONGEST_PAUSE) if choice == self.choice else SHORTEST_PAUSE
        self.trial, self.choice = None, choice
        self._keep_until = now + self.pause
        self.serial_until = self._keep_until if choice == ALONE else 0.0

    def _begin(self, way: str) -> None:
        self.trial = way
        self.serial_until = math.inf if way == ALONE else 0.0
        self._seconds, self._regions, self._window_start = 0.0, 0, None

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
        if not self.contended and self.use_threads(now):
            return ThreadDecision(threads, f"quiet (workers got {share} of the CPU they asked for): every thread, "
                                           "long watches")
        used = threads if self.use_threads(now) else 1
        timed = ", ".join(f"{way} {seconds * 1e3:.2f} ms" for way, seconds in self.region_means.items())
        timed = f"a region took {timed} in the last trial" if timed else "no trial finished yet"
        if self.trial is not None:
            return ThreadDecision(used, f"contended (workers got {share} of the CPU they asked for; {timed}): "
                                        f"short watches, timing {self.trial}")
        return ThreadDecision(used, f"contended (workers got {share} of the CPU they asked for; {timed}): short "
                                    f"watches, {self.choice} for {max(self._keep_until - now, 0.0):.1f} s more, "
                                    "then both ways are timed again")
