"""The command line: ``python -m benchmarks [suite ...] [--quick] [--json PATH] [--threads N]``.

Suites run in a fixed order whatever order they are named in (``torch`` and then ``peers`` last among the
in-process ones, as they import PyTorch and JAX; see :mod:`benchmarks.suites`). Every suite prints its tables and
writes ``<output dir>/<suite>.json`` (and a PNG where it helps); the whole run also goes to one combined JSON
(``--json``, by default ``<output dir>/report.json``). Each JSON carries the environment block and the load
average before and after.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import environment, isa, threads
from benchmarks.suites import SUITE_NAMES

# Under the working directory, never beside the code (which may sit in a read-only or shared install).
DEFAULT_OUTPUT_DIR = Path("benchmark-results")


# Not tinynet.cli_options.positive_int: importing tinynet loads NumPy, and ``--threads`` must reach the environment
# before NumPy loads (see main and benchmarks.threads).
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser(prog: str = "python -m benchmarks") -> argparse.ArgumentParser:
    """The benchmarks' argument parser; ``prog`` is how the help names the command (``tinynet bench`` runs it too)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="tinynet CPU benchmarks on the tutorial MNIST CNN. Suites: " + ", ".join(SUITE_NAMES)
        + " (default: all).",
    )
    parser.add_argument("suites", nargs="*", metavar="suite", help=f"one or more of {', '.join(SUITE_NAMES)}, all")
    parser.add_argument("--quick", action="store_true", help="fewer repeats: everything in about 1-2 minutes")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="combined JSON report of the whole run (default: <output dir>/report.json)")
    parser.add_argument("--threads", type=_positive_int, metavar="N",
                        help="threads for OpenBLAS, Numba and PyTorch (default: what the environment gives)")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR, metavar="DIR",
                        help=f"folder for per-suite JSON and PNG files (default: {DEFAULT_OUTPUT_DIR})")
    parser.add_argument("--no-charts", action="store_true", help="write no PNG charts")
    parser.add_argument("--isa", choices=isa.CHOICES, default="native",
                        help="native: each engine uses what the CPU has (default); avx2: every engine limited to "
                        "its AVX2 code paths as far as it allows, to see an AVX2 machine's paths on an AVX-512 one "
                        "(python -m benchmarks only; see benchmarks/isa.py for what each engine honours)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes and single repeats, to check that every code path runs (numbers meaningless)")
    return parser


def selected_suites(names: list[str]) -> list[str]:
    """The suites to run, in execution order; raises ValueError naming an unknown one."""
    if not names or "all" in names:
        return list(SUITE_NAMES)
    unknown = [name for name in names if name not in SUITE_NAMES]
    if unknown:
        raise ValueError(f"unknown suite(s) {', '.join(unknown)}; expected {', '.join(SUITE_NAMES)} or all")
    return [name for name in SUITE_NAMES if name in names]


def main(argv: list[str] | None = None, prog: str = "python -m benchmarks") -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog)
    options = parser.parse_args(arguments)
    try:
        names = selected_suites(options.suites)
    except ValueError as error:
        parser.error(str(error))

    # Before NumPy loads (python -m benchmarks), the environment decides every pool's size; afterwards
    # (tinynet bench), the running pools are resized.
    if options.threads is not None:
        threads.set_thread_environment(options.threads)
    try:
        isa.limit_code_paths(options.isa, environment.cpu_flags())
    except ValueError as error:
        parser.error(str(error))
    import numpy  # noqa: F401  (loads OpenBLAS, so its thread count can be read and set)

    if options.threads is not None:
        threads.set_runtime_threads(options.threads)

    from benchmarks.context import RunContext, Settings

    settings = Settings.smoke() if options.smoke else Settings.for_mode(options.quick)
    invoked_as = "tinynet bench" if Path(sys.argv[0]).name == "tinynet" else "python -m benchmarks"
    command = invoked_as + ("" if not arguments else " " + shlex.join(arguments))
    context = RunContext(
        settings=settings,
        output_dir=options.output_dir,
        threads=options.threads or threads.tinynet_threads(),
        command=command,
        charts=not options.no_charts,
    )
    return run_suites(names, context, options.json or options.output_dir / "report.json")


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _check_peak(context: Any) -> dict[str, Any]:
    """Measure the sgemm peak again after the suites: a start-of-run peak depressed by another process's burst
    would overstate every "% of peak" of the run, so the two are compared and a large gap is flagged."""
    from benchmarks.suites.peak import measure_peak

    again = measure_peak(context.settings)
    start, end = context.peak["peak_gflops"], again["peak_gflops"]
    print(f"sgemm peak re-measured after the suites: {end:.1f} GFLOP/s (start of run: {start:.1f})")
    if end > 1.1 * start:
        print(f"WARNING: the peak at the start was {100 * (1 - start / end):.0f}% lower than at the end, probably "
              "depressed by another process: this run's '% of peak' figures are overstated; rerun when the "
              "machine is quiet")
    return again | {"ratio_to_start": end / start}


def run_suites(names: list[str], context: Any, report_path: Path) -> int:
    """Run each suite, print and save it; a failing suite is reported and the others still run.

    ``context`` is a :class:`benchmarks.context.RunContext`. Returns 0, or 1 when a suite failed.
    """
    from benchmarks import environment
    from benchmarks.report import write_json
    from benchmarks.suites import load

    started = datetime.now(UTC).isoformat(timespec="seconds")
    environment_block = environment.describe_environment()
    print(f"$ {context.command}")
    print("\n".join(environment.environment_lines(environment_block)))
    print(f"mode: {context.settings.mode}; output: {context.output_dir}")
    print()
    report: dict[str, Any] = {"command": context.command, "started": started, "mode": context.settings.mode,
                              "environment": environment_block, "suites": {}}
    failures = []
    usable_cpus = environment_block["cpu"]["usable_cpus"] or 1
    for name in names:
        load_before = environment.load_average()
        if load_before and load_before[0] > usable_cpus:
            print(f"WARNING: load average {load_before[0]} on {usable_cpus} CPUs before '{name}': other processes "
                  "are competing for the cores, expect slow and noisy timings (see the IQR columns)")
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        try:
            data = load(name).run(context)
        except Exception as error:  # one broken suite must not hide the others' results
            traceback.print_exc()
            print(f"{name}: FAILED ({type(error).__name__}: {error})\n")
            data = {"failed": True, "error": f"{type(error).__name__}: {error}"}
            failures.append(name)
        suite_report = {
            "suite": name, "command": context.command, "mode": context.settings.mode,
            "seconds": round(time.perf_counter() - start, 2),
            # CPU seconds this process and its finished subprocesses used: on an idle machine close to
            # seconds x threads during BLAS-heavy work; much less means other processes had the cores.
            "cpu_seconds": round(_cpu_seconds() - cpu_start, 2),
            "load_average": {"before": load_before, "after": environment.load_average()},
            "environment": environment.describe_environment(), "results": data,
        }
        context.results[name] = suite_report
        report["suites"][name] = suite_report
        write_json(context.output_dir / f"{name}.json", suite_report)
    if context.peak is not None:
        report["peak_at_end"] = _check_peak(context)
    report["environment_at_end"] = environment.describe_environment()
    write_json(report_path, report)
    layer = report["environment_at_end"]["threads"]["numba_threading_layer"]
    print(f"Numba threading layer at the end of the run: {layer}")
    print(f"load average now: {environment.load_average()}; JSON: {report_path}")
    if failures:
        print(f"FAILED suites: {', '.join(failures)}")
        return 1
    return 0
