"""``contention``: the training step on a shared machine, idle against one busy competing process per core.

tinynet issue 15: with other work running, the README's main command took 97-512 s an epoch against 36-40 s on a
quiet machine, because the engine's threads watched for each other for 2 ms before sleeping and a 2-thread
barrier waited for whichever thread the scheduler had descheduled. The goal: with one busy process per core, the
batch-32 step and a full epoch take at most 3x their idle time.

* Step: ``model.train_step`` at batch 32 of the tutorial CNN, idle and then with ``python -c "while True: pass"``
  running once per usable core, with the engine adapting to contention (:func:`tinynet.engine.set_adaptive_threads`,
  the default) and without it (the behaviour before issue 15), the four cases alternating in every round (so a
  drift in the machine's other load hits them all). Ratio = loaded median / idle median.
* Epoch (full runs only, a few minutes): the README's main command, ``tinynet train`` for one epoch, idle and
  loaded, in a fresh process each; the figure is the "s per epoch" it prints. It reads MNIST as the command
  does (``TINYNET_DATA_DIR``, ``TINYNET_OFFLINE``).

The competitors are killed in a ``finally``, whatever happens to the measurement.
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from benchmarks.context import RunContext
from benchmarks.environment import cpu_description
from benchmarks.probes import probe_environment
from benchmarks.report import format_table
from benchmarks.tutorial import build_tutorial_model, synthetic_batch
from tinynet.engine.machine import read_l2_bytes

BATCH = 32
SETTLE_SECONDS = 0.3  # after the competitors start: the detector's windows are 50 ms, give it a few
_EPOCH_LINE = re.compile(r"Training took [\d.]+ s \(([\d.]+) s per epoch\)")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def l2_cache() -> str | None:
    """The L2 size of CPU 0 as the kernel reports it (``"512K"``), or None where it does not: the engine's own
    reading (:func:`tinynet.engine.machine.read_l2_bytes`), which sizes its slices."""
    size = read_l2_bytes()
    return None if size is None else f"{size // 1024}K"


@contextlib.contextmanager
def busy_competitors(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` processes that each keep one core busy, for the duration of the ``with``."""
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            processes.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        yield processes
    finally:
        for process in processes:
            process.kill()
        for process in processes:
            process.wait()


def _timed_steps(model: Any, x: Any, y: Any, steps: int) -> list[float]:
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_step(x, y)
        seconds.append(time.perf_counter() - start)
    return seconds


def measure_step(rounds: int, steps: int, competitors: int) -> list[dict[str, Any]]:
    """Median seconds of a batch-32 ``train_step``, idle and under ``competitors`` busy processes, with the engine
    adapting to contention and without; the four cases alternate in every round."""
    from tinynet import engine
    from tinynet.engine import threads

    before = threads._detector
    x, y = synthetic_batch(BATCH)
    samples: dict[tuple[bool, str], list[float]] = {}
    decisions: dict[tuple[bool, str], dict[str, Any]] = {}
    models = {adaptive: build_tutorial_model() for adaptive in (True, False)}
    try:
        for _ in range(rounds):
            for adaptive, model in models.items():
                engine.set_adaptive_threads(adaptive)
                _timed_steps(model, x, y, 3)  # compiled and warm, its scratch arrays allocated
                samples.setdefault((adaptive, "idle"), []).extend(_timed_steps(model, x, y, steps))
                decisions[adaptive, "idle"] = engine.thread_decision()._asdict()
                with busy_competitors(competitors):
                    deadline = time.perf_counter() + SETTLE_SECONDS
                    while time.perf_counter() < deadline:
                        model.train_step(x, y)
                    samples.setdefault((adaptive, "loaded"), []).extend(_timed_steps(model, x, y, steps))
                    decisions[adaptive, "loaded"] = engine.thread_decision()._asdict()
                time.sleep(SETTLE_SECONDS)  # let the competitors' cores go quiet before the next idle round
    finally:
        threads._detector = before
    rows = []
    for adaptive in (True, False):
        idle, loaded = statistics.median(samples[adaptive, "idle"]), statistics.median(samples[adaptive, "loaded"])
        rows.append({"adaptive": adaptive, "steps": len(samples[adaptive, "idle"]), "idle_ms": idle * 1e3,
                     "loaded_ms": loaded * 1e3, "ratio": loaded / idle, "idle_decision": decisions[adaptive, "idle"],
                     "loaded_decision": decisions[adaptive, "loaded"]})
    return rows


def measure_epoch(competitors: int, adaptive: bool, limit: int | None = None) -> dict[str, Any]:
    """Seconds per epoch that ``tinynet train`` prints for one epoch, idle and under ``competitors``."""
    result: dict[str, Any] = {"adaptive": adaptive, "limit": limit}
    overrides = {"TINYNET_ADAPTIVE_THREADS": "1" if adaptive else "0"}
    for label, count in (("idle", 0), ("loaded", competitors)):
        with tempfile.TemporaryDirectory(prefix="tinynet-contention-") as output, busy_competitors(count):
            command = [sys.executable, "-m", "tinynet", "train", "--epochs", "1", "--initial-epoch", "0",
                       "--verbose", "0", "--output", output] + (["--limit", str(limit)] if limit else [])
            finished = subprocess.run(command, capture_output=True, text=True, env=probe_environment(overrides),
                                      timeout=3600)
        match = _EPOCH_LINE.search(finished.stdout)
        if finished.returncode != 0 or match is None:
            raise RuntimeError(f"contention: {' '.join(command)} failed ({finished.returncode}): "
                               f"{finished.stderr.strip()[-500:] or finished.stdout.strip()[-500:]}")
        result[f"{label}_s"] = float(match.group(1))
    result["ratio"] = result["loaded_s"] / result["idle_s"]
    return result


def run(context: RunContext) -> dict[str, Any]:
    settings = context.settings
    rounds, steps = {"smoke": (1, 2), "quick": (3, 40), "full": (5, 100)}[settings.mode]
    competitors = usable_cores()
    cpu = cpu_description()
    result: dict[str, Any] = {
        "cpu": {"model": cpu["model"], "vector_extensions": cpu["vector_extensions"], "l2": l2_cache()},
        "competitors": competitors,
        "step": measure_step(rounds, steps, competitors),
    }
    machine = f"{cpu['model']}, {', '.join(cpu['vector_extensions'])}, L2 {result['cpu']['l2']}"
    print(format_table(
        ["adaptive threads", "idle ms", "loaded ms", "loaded / idle", "threads loaded", "steps"],
        [["on" if row["adaptive"] else "off (before issue 15)", row["idle_ms"], row["loaded_ms"], row["ratio"],
          row["loaded_decision"]["threads"], row["steps"]] for row in result["step"]],
        title=f"contention: batch-{BATCH} train_step, idle vs {competitors} busy process(es) (one per core), "
              f"median; {machine}",
    ))
    print(f"  loaded, adaptive on: {result['step'][0]['loaded_decision']['reason']}")
    print()
    if settings.mode == "full":
        epoch = measure_epoch(competitors, adaptive=True)
        result["epoch"] = epoch
        print(format_table(
            ["command", "idle s/epoch", "loaded s/epoch", "loaded / idle"],
            [["tinynet train --epochs 1 --initial-epoch 0", epoch["idle_s"], epoch["loaded_s"], epoch["ratio"]]],
            title=f"contention: the README's main command, one epoch, idle vs {competitors} busy process(es)",
        ))
        print()
    return result
