"""The engine's worker threads and the OpenBLAS control under them."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.engine import blas, startup
from tinynet.engine import threads as parallel
from tinynet.kernels import blocked_matmul


@given(count=st.integers(0, 50), parts=st.integers(1, 8))
def test_split_range_covers_the_range_in_order_without_empty_pieces(count, parts):
    pieces = parallel.split_range(count, parts)
    assert [index for start, stop in pieces for index in range(start, stop)] == list(range(count))
    assert all(stop > start for start, stop in pieces) or count == 0
    assert len(pieces) == max(1, min(parts, count))


@pytest.mark.skipif(not blas.controllable(), reason="needs an OpenBLAS whose threads tinynet can set")
def test_parallel_ranges_runs_every_index_once_on_two_threads(two_threads):
    seen: list[tuple[int, int, int, str]] = []
    lock = threading.Lock()

    def task(slot, start, stop):
        with lock:
            seen.append((slot, start, stop, threading.current_thread().name))

    parallel.parallel_ranges(10, task)
    assert sorted((slot, start, stop) for slot, start, stop, _ in seen) == [(0, 0, 5), (1, 5, 10)]
    names = {slot: name for slot, _, _, name in seen}
    assert names[0] == threading.current_thread().name and names[1].startswith("tinynet-worker")


@pytest.mark.skipif(not blas.controllable(), reason="needs an OpenBLAS whose threads tinynet can set")
def test_a_worker_exception_reaches_the_caller_and_the_pool_keeps_working(two_threads):
    def failing(slot, start, stop):
        if slot == 1:
            raise ValueError("piece 1 failed")

    with pytest.raises(ValueError, match="piece 1 failed"):
        parallel.parallel_ranges(4, failing)
    out = np.zeros(4)
    parallel.parallel_ranges(4, lambda slot, start, stop: out.__setitem__(slice(start, stop), slot + 1))
    assert out.tolist() == [1, 1, 2, 2]


@pytest.mark.skipif(not blas.controllable(), reason="needs an OpenBLAS whose threads tinynet can set")
def test_a_worker_leaves_its_compiled_code_once_the_caller_waits_without_the_gil(two_threads):
    # wait_for_closing returns when the calling thread has finished its own piece and waits for the workers
    # (gate[1]); without that signal it would watch for its whole budget, several seconds here.
    times: dict[str, float] = {}

    def task(slot, start, stop):
        if slot == 0:
            time.sleep(0.05)
            times["caller done"] = time.perf_counter()
        else:
            parallel.wait_for_closing(parallel.region_gate(), 4_000_000_000)
            times["worker left"] = time.perf_counter()

    parallel.parallel_ranges(2, task)
    assert times["caller done"] <= times["worker left"] < times["caller done"] + 0.5
    assert parallel.region_gate().tolist() == [1, 1]  # open outside a region: nobody waits there
    started = time.perf_counter()
    parallel.wait_for_closing(parallel.region_gate(), 4_000_000_000)
    assert time.perf_counter() - started < 0.5


@pytest.mark.skipif(not blas.controllable(), reason="needs an OpenBLAS whose threads tinynet can set")
def test_nested_parallel_work_runs_in_place(two_threads):
    inner_slots: list[int] = []

    def outer(slot, start, stop):
        parallel.parallel_ranges(3, lambda inner, a, b: inner_slots.append(inner))

    parallel.parallel_ranges(2, outer)
    assert inner_slots == [0, 0]  # each outer piece ran its inner work itself, in one piece


@pytest.mark.skipif(not blas.controllable(), reason="needs an OpenBLAS whose threads tinynet can set")
def test_engine_scope_makes_openblas_single_threaded_and_restores_it(two_threads):
    before = blas.get_threads()
    blas.set_threads(2)
    try:
        with startup.engine_scope():
            assert blas.get_threads() == 1
            with startup.engine_scope():
                assert blas.get_threads() == 1
            assert blas.get_threads() == 1
        assert blas.get_threads() == 2
    finally:
        blas.set_threads(before)


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 300), inner=st.integers(1, 200), columns=st.integers(1, 120),
       transposed=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]))
def test_matmul_matches_numpy(rows, inner, columns, transposed, dtype):
    rng = np.random.default_rng(rows * 7 + inner)
    a = rng.standard_normal((inner, rows) if transposed else (rows, inner)).astype(dtype)
    a = a.T if transposed else a  # a strided operand, as for dW = x^T @ dz
    b = rng.standard_normal((inner, columns)).astype(dtype)
    before = parallel._requested_threads
    try:
        parallel.set_num_threads(2)
        result = parallel.matmul(a, b)
        out = np.empty((rows, columns), dtype=dtype)
        assert parallel.matmul(a, b, out=out) is out
    finally:
        parallel.set_num_threads(before)
    expected = np.matmul(a, b)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(result, expected, rtol=tolerance, atol=tolerance * inner)
    np.testing.assert_array_equal(out, result)
    with blas.single_threaded():  # the layers' product, block after block on one thread: the same bits
        np.testing.assert_array_equal(blocked_matmul(a, b), result)


def test_set_num_threads_rejects_bad_counts():
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="set_num_threads: threads must be a positive int"):
            parallel.set_num_threads(bad)
    with pytest.raises(ValueError, match="blas.set_threads: threads must be a positive int"):
        blas.set_threads(0)


@pytest.mark.parametrize("shape", [(32, 800, 512), (800, 32, 512), (512, 256, 32)])
def test_matmul_cuts_wide_results_by_columns_and_tall_ones_by_rows(shape, two_threads):
    rows, inner, columns = shape  # a dense layer's forward pass, its weight gradient, a convolution's product
    rng = np.random.default_rng(1)
    a = rng.standard_normal((rows, inner)).astype(np.float32)
    b = rng.standard_normal((inner, columns)).astype(np.float32)
    np.testing.assert_allclose(parallel.matmul(a, b), a @ b, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(parallel.matmul(a, b.T.copy().T), a @ b, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not hasattr(os, "fork") or not blas.controllable(), reason="needs fork and OpenBLAS")
def test_a_forked_child_gets_threads_of_its_own(two_threads):
    parallel.parallel_ranges(2, lambda slot, start, stop: None)  # the parent's worker exists now
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:  # the child would wait forever on the parent's (absent) worker thread
        result = pool.apply_async(_sum_in_two_pieces, (1000,))
        assert result.get(timeout=60) == sum(range(1000))


def _sum_in_two_pieces(count):
    parts = [0, 0]

    def task(slot, start, stop):
        for piece in range(start, stop):
            first, last = parallel.split_range(count, 2)[piece]
            parts[piece] = sum(range(first, last))

    parallel.parallel_ranges(2, task)
    return sum(parts)


def test_thread_count_from_the_environment(monkeypatch):
    monkeypatch.setenv("TINYNET_NUM_THREADS", "3")
    assert parallel._default_threads() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("TINYNET_NUM_THREADS", bad)
        with pytest.raises(ValueError, match="TINYNET_NUM_THREADS must be a positive integer"):
            parallel._default_threads()
    monkeypatch.delenv("TINYNET_NUM_THREADS")
    assert parallel._default_threads() >= 1


@pytest.mark.parametrize("sizes", [[1], [7, 1, 1000], [2, 3], [1 << 16, 5, (1 << 17) + 3, 40_000]])
def test_parallel_elementwise_gives_each_element_to_one_call_and_sums_their_results(sizes, two_threads):
    arrays = [np.zeros(size) for size in sizes]
    seen = [np.zeros(size, dtype=int) for size in sizes]
    groups = [(array, None, counter) for array, counter in zip(arrays, seen, strict=True)]

    def task(piece, missing, counter):
        assert missing is None
        counter += 1
        piece += 2.0
        return piece.size

    assert parallel.parallel_elementwise(groups, task) == sum(sizes)
    for array, counter in zip(arrays, seen, strict=True):
        assert (counter == 1).all() and (array == 2.0).all()


def test_parallel_elementwise_cuts_only_large_arrays_and_balances_the_rest(two_threads):
    pieces = []
    sizes = [parallel.MIN_SPLIT_ELEMENTS, 10, 300, 20, parallel.MIN_SPLIT_ELEMENTS + 1]
    groups = [(np.zeros(size),) for size in sizes]
    parallel.parallel_elementwise(groups, lambda piece: pieces.append(piece.size) or 0)
    # The two large arrays in two pieces each, every small one whole: 7 calls, not 10.
    assert sorted(pieces) == sorted([10, 300, 20, *(parallel.MIN_SPLIT_ELEMENTS // 2,) * 2,
                                     parallel.MIN_SPLIT_ELEMENTS // 2 + 1, parallel.MIN_SPLIT_ELEMENTS // 2])
