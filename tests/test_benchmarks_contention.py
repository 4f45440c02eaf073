"""The ``contention`` benchmark suite: its competitors never outlive it, and its code path runs (no timing asserted)."""

from __future__ import annotations

import json

import pytest

import benchmarks
from benchmarks.suites import contention


def test_busy_competitors_run_inside_the_block_and_are_killed_after_it_even_on_error():
    with pytest.raises(RuntimeError, match="measurement failed"), contention.busy_competitors(2) as processes:
        assert len(processes) == 2 and all(process.poll() is None for process in processes)
        raise RuntimeError("measurement failed")
    assert all(process.returncode is not None for process in processes)


def test_the_suite_measures_idle_and_loaded_steps_with_and_without_adaptive_threads(tmp_path, capsys):
    code = benchmarks.main(["contention", "--smoke", "--no-charts", "--output-dir", str(tmp_path)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "loaded / idle" in printed
    results = json.loads((tmp_path / "contention.json").read_text())["results"]
    assert results["competitors"] >= 1 and results["cpu"]["model"]
    assert [row["adaptive"] for row in results["step"]] == [True, False]
    for row in results["step"]:
        assert row["idle_ms"] > 0 and row["loaded_ms"] > 0
        assert row["ratio"] == pytest.approx(row["loaded_ms"] / row["idle_ms"])
        assert row["loaded_decision"]["threads"] >= 1 and row["loaded_decision"]["reason"]
    assert "epoch" not in results  # a full run only
