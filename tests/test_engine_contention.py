"""The engine's threads on a shared machine: the contention detector's decisions, its controls, and that giving
way to other processes changes no number a model computes."""

from __future__ import annotations

import gc
import math
import threading
import time
import weakref

import numpy as np
import pytest

from tinynet import engine
from tinynet.engine import blas, contention
from tinynet.engine import threads as parallel
from tinynet.engine.contention import ContentionDetector

needs_openblas = pytest.mark.skipif(not blas.controllable(), reason="needs an OpenBLAS whose threads tinynet can set")


@pytest.fixture
def two_threads(two_threads):
    """conftest's two threads, with a fresh adaptive detector (the process's may have found this machine busy)."""
    parallel.set_adaptive_threads(True)
    yield


def _regions(detector, threaded_seconds, alone_seconds, start, seconds=0.12):
    """Feed ``detector`` regions from ``start`` for ``seconds``, each taking ``threaded_seconds`` when it uses
    the threads and ``alone_seconds`` when the calling thread works alone; return the time then."""
    now = start
    while now - start < seconds:
        threaded = detector.use_threads(now)
        took = threaded_seconds if threaded else alone_seconds
        now += took
        detector.region(took, threaded, now)
    return now


def _share_windows(detector, cpu_seconds, wanted_seconds=0.06, count=contention.CONTENDED_WINDOWS):
    for _ in range(count):
        detector.worker_window(cpu_seconds, wanted_seconds)


def test_a_worker_sharing_its_core_shortens_the_watch_and_a_quiet_window_restores_it():
    detector = ContentionDetector()
    assert not detector.contended and detector.watch_iterations == contention.QUIET_WATCH
    _share_windows(detector, 0.03, count=contention.CONTENDED_WINDOWS - 1)  # half its core, but not for long yet
    assert not detector.contended
    detector.worker_window(cpu_seconds=0.03, wanted_seconds=0.06)  # a busy process shares it: the run is complete
    assert detector.contended and detector.watch_iterations == contention.CONTENDED_WATCH
    detector.worker_window(cpu_seconds=0.042, wanted_seconds=0.06)  # 70 %: between the thresholds, no change
    assert detector.contended
    detector.worker_window(cpu_seconds=0.059, wanted_seconds=0.06)
    assert not detector.contended and detector.watch_iterations == contention.QUIET_WATCH


def test_passing_dips_on_a_quiet_machine_keep_the_long_watch():
    detector = ContentionDetector()
    for _ in range(10):  # one low window now and then (the host, a neighbour's threads finishing): no run of them
        detector.worker_window(0.03, 0.06)
        detector.worker_window(0.05, 0.06)
    assert not detector.contended and detector.watch_iterations == contention.QUIET_WATCH


def test_a_window_too_short_to_tell_changes_nothing():
    detector = ContentionDetector()
    detector.worker_window(cpu_seconds=0.0001, wanted_seconds=0.001)
    assert not detector.contended and detector.last_share is None


def test_contended_regions_are_timed_both_ways_and_the_faster_way_is_kept():
    detector = ContentionDetector()
    _share_windows(detector, 0.03)
    assert detector.contended and detector.use_threads(0.0)
    now = _regions(detector, threaded_seconds=0.004, alone_seconds=0.002, start=0.0, seconds=0.2)
    assert detector.trial is None and detector.choice == contention.ALONE  # alone was faster: kept
    assert detector.region_means == pytest.approx({contention.THREADS: 0.004, contention.ALONE: 0.002})
    assert not detector.use_threads(now) and detector.decision(2, now).threads == 1
    assert "the calling thread alone for" in detector.decision(2, now).reason
    assert 0 < detector.serial_until - now <= contention.SHORTEST_PAUSE  # kept for SHORTEST_PAUSE from the choice
    now = _regions(detector, 0.004, 0.002, start=now, seconds=contention.SHORTEST_PAUSE + 0.2)  # timed again
    assert detector.choice == contention.ALONE and detector.pause == 2 * contention.SHORTEST_PAUSE
    for _ in range(8):  # the same way keeps winning: the pause doubles, never beyond LONGEST_PAUSE
        now = _regions(detector, 0.004, 0.002, start=now, seconds=detector.pause + 0.2)
    assert detector.pause == contention.LONGEST_PAUSE
    now = _regions(detector, 0.002, 0.003, start=now, seconds=detector.serial_until - now + 0.15)  # threads win
    assert detector.choice == contention.THREADS and detector.pause == contention.SHORTEST_PAUSE
    assert detector.use_threads(now) and detector.decision(2, now).threads == 2
    detector.worker_window(0.06, 0.06)  # the competitors left
    assert not detector.contended and detector.decision(2, now).reason.startswith("quiet")


def test_the_calling_thread_alone_must_be_clearly_faster_to_be_kept():
    detector = ContentionDetector()
    _share_windows(detector, 0.03)
    now = _regions(detector, threaded_seconds=0.004, alone_seconds=0.0035, start=0.0, seconds=0.15)
    assert detector.region_means[contention.ALONE] < detector.region_means[contention.THREADS]
    assert detector.choice == contention.THREADS and detector.use_threads(now)  # a noisy edge is no reason


def test_a_trial_times_a_whole_window_and_ignores_regions_begun_the_other_way():
    detector = ContentionDetector()
    _share_windows(detector, 0.03)
    detector.region(0.001, True, 0.001)  # begins the trial
    assert detector.trial == contention.THREADS
    now = 0.001
    for _ in range(contention.TRIAL_REGIONS + 2):  # many regions, but less than a window's time: still timing
        now += 0.001
        detector.region(0.001, True, now)
    assert detector.trial == contention.THREADS
    now = _regions(detector, 0.01, 0.02, start=now, seconds=contention.WINDOW_SECONDS)
    assert detector.trial == contention.ALONE and not detector.use_threads(now)
    detector.region(5.0, True, now + 5.0)  # a threaded region that began before the switch: not counted
    assert detector.trial == contention.ALONE
    _regions(detector, 0.01, 0.02, start=now + 5.0, seconds=0.2)
    assert detector.choice == contention.THREADS
    assert detector.region_means[contention.ALONE] == pytest.approx(0.02)


def test_a_quiet_machine_never_falls_back_whatever_the_regions_take():
    detector = ContentionDetector()
    detector.worker_window(0.06, 0.06)
    now = _regions(detector, threaded_seconds=0.01, alone_seconds=0.001, start=0.0, seconds=0.5)
    assert detector.use_threads(now) and not detector.contended and detector.trial is None


def test_disabled_detector_keeps_every_thread_and_the_long_watch():
    detector = ContentionDetector(enabled=False)
    detector.worker_window(0.01, 0.06)
    now = _regions(detector, threaded_seconds=0.05, alone_seconds=0.001, start=0.0, seconds=0.5)
    assert detector.use_threads(now) and detector.watch_iterations == contention.QUIET_WATCH
    assert detector.decision(2, now) == (2, detector.decision(2, now).reason)
    assert "off" in detector.decision(2, now).reason


def test_adaptive_threads_from_the_environment():
    assert contention.adaptive_from_environment({}) is True
    assert contention.adaptive_from_environment({"TINYNET_ADAPTIVE_THREADS": "1"}) is True
    assert contention.adaptive_from_environment({"TINYNET_ADAPTIVE_THREADS": "0"}) is False
    for bad in ("yes", "2", "off", "-1"):
        with pytest.raises(ValueError, match="TINYNET_ADAPTIVE_THREADS must be 0 or 1"):
            contention.adaptive_from_environment({"TINYNET_ADAPTIVE_THREADS": bad})


def test_set_adaptive_threads_and_thread_decision(two_threads):
    for bad in (1, "0", None):
        with pytest.raises(TypeError, match="set_adaptive_threads: enabled must be a bool"):
            engine.set_adaptive_threads(bad)
    engine.set_adaptive_threads(False)
    assert not parallel._detector.enabled
    decision = engine.thread_decision()
    assert decision.threads == parallel.num_threads() and "off" in decision.reason
    engine.set_adaptive_threads(True)
    assert parallel._detector.enabled
    parallel.set_num_threads(1)
    assert engine.thread_decision().threads == 1


@needs_openblas
def test_while_falling_back_the_calling_thread_runs_the_whole_range(two_threads):
    parallel._detector.serial_until = math.inf
    seen = []
    parallel.parallel_ranges(10, lambda slot, start, stop: seen.append((slot, start, stop, threading.get_ident())))
    assert seen == [(0, 0, 10, threading.get_ident())]
    assert engine.thread_decision().threads == 1


@needs_openblas
def test_workers_report_their_share_to_the_detector(two_threads):
    out = np.zeros(2)
    deadline = time.perf_counter() + 4 * contention.WINDOW_SECONDS
    while time.perf_counter() < deadline or parallel._detector.last_share is None:
        parallel.parallel_ranges(2, lambda slot, start, stop: out.__setitem__(slot, np.sum(np.ones(200_000))))
    time.sleep(0.01)
    parallel.parallel_ranges(2, lambda slot, start, stop: None)  # a worker reports after its piece
    assert parallel._detector.last_share is not None and parallel._detector.last_share > 0


@needs_openblas
def test_a_region_keeps_nothing_of_its_task_once_it_returns(two_threads):
    class Payload:
        pass

    payload = Payload()
    alive = weakref.ref(payload)

    def task(slot, start, stop, payload=payload):
        pass

    parallel.parallel_ranges(2, task)
    del task, payload
    gc.collect()
    assert alive() is None  # before: the worker kept its last task (and what it held) until the next region


@needs_openblas
def test_regions_start_no_more_workers_than_threads(two_threads):
    for adaptive in (True, False, True):
        parallel.set_adaptive_threads(adaptive)
        for _ in range(50):
            parallel.parallel_ranges(4, lambda slot, start, stop: None)
    workers = [thread for thread in threading.enumerate() if thread.name.startswith("tinynet-worker")]
    assert len(workers) == len(parallel._workers) <= 1 + max(0, parallel.num_threads() - 1)


def _train_tutorial_steps(threads, mode):
    from benchmarks.tutorial import build_tutorial_model, synthetic_batch

    before = parallel._requested_threads, parallel._detector
    parallel.set_num_threads(threads)
    parallel.set_adaptive_threads(mode != "adaptive off")
    if mode == "fallback":
        parallel._detector.serial_until = math.inf
    elif mode == "contended":  # both threads, short watches
        _share_windows(parallel._detector, 0.01)
    try:
        model = build_tutorial_model(seed=3)
        for step in range(3):
            x, y = synthetic_batch(32, seed=step)
            model.train_step(x, y)
        return model.get_weights()
    finally:
        parallel.set_num_threads(before[0])
        parallel._detector = before[1]


def test_giving_way_changes_no_bit_of_training():
    reference = _train_tutorial_steps(1, "adaptive off")
    for threads, mode in ((2, "adaptive off"), (2, "fallback"), (2, "contended"), (2, "quiet")):
        weights = _train_tutorial_steps(threads, mode)
        for expected, got in zip(reference, weights, strict=True):
            np.testing.assert_array_equal(got, expected, err_msg=f"{threads} threads, {mode}")
