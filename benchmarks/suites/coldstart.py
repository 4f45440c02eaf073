"""``coldstart``: what the first training step costs a fresh process, with Numba's cache warm and empty.

Each run is a new Python process (:mod:`benchmarks.probes.coldstart`) that imports tinynet, builds and compiles
the tutorial CNN and runs two training steps at batch 32. "First call" is import + build + first step.

* warm cache: ``NUMBA_CACHE_DIR`` as in this environment (unset means beside tinynet's sources); one untimed
  run first makes sure the cache is filled;
* empty cache: ``NUMBA_CACHE_DIR`` set to a new empty temporary folder, so every kernel the step calls is
  compiled from scratch (what a user sees on the very first run after installing).
"""

from __future__ import annotations

import os
import statistics
import tempfile
from typing import Any

from benchmarks.context import RunContext
from benchmarks.probes import run_probe
from benchmarks.report import format_table, new_figure, save_figure

FIELDS = ("process_s", "import_s", "build_s", "first_step_s", "second_step_s", "first_call_s")


def _median_run(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {field: statistics.median(run[field] for run in runs) for field in FIELDS}


def measure_coldstart(runs: int) -> dict[str, Any]:
    """Median phase times over ``runs`` fresh processes, for a warm and for an empty Numba cache."""
    run_probe("coldstart")  # fills the regular cache if this checkout never ran the kernels
    warm = [run_probe("coldstart") for _ in range(runs)]
    empty = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="tinynet-numba-cache-") as folder:
            empty.append(run_probe("coldstart", overrides={"NUMBA_CACHE_DIR": folder}))
    return {
        "runs": runs,
        "warm_cache_dir": os.environ.get("NUMBA_CACHE_DIR") or "default (beside tinynet's sources)",
        "warm": _median_run(warm), "empty": _median_run(empty),
        "warm_runs": warm, "empty_runs": empty,
    }


def run(context: RunContext) -> dict[str, Any]:
    result = measure_coldstart(context.settings.coldstart_runs)
    rows = [[label, *(result[key][field] for field in FIELDS)]
            for label, key in (("warm Numba cache", "warm"), ("empty Numba cache", "empty"))]
    print(format_table(
        ["cache", "process s", "import s", "build s", "1st step s", "2nd step s", "first call s"],
        rows,
        title=f"coldstart: fresh process, import tinynet + build + first train_on_batch(32), median of "
              f"{result['runs']} run(s) (first call = import + build + 1st step; process = whole run incl. "
              "interpreter start and 2nd step)",
    ))
    print()
    if context.charts:
        result["chart"] = str(_chart(result, context))
    return result


def _chart(result: dict[str, Any], context: RunContext):
    figure, (axes,) = new_figure(8, 3)
    labels = ["warm cache", "empty cache"]
    left = [0.0, 0.0]
    for field, name in (("import_s", "import"), ("build_s", "build"), ("first_step_s", "first step")):
        values = [result["warm"][field], result["empty"][field]]
        axes.barh(labels, values, left=left, label=name)
        left = [a + b for a, b in zip(left, values, strict=True)]
    axes.set_xlabel("seconds")
    axes.set_title("tinynet first call: import + build + first training step")
    axes.legend()
    return save_figure(figure, context.output_dir / "coldstart.png")
