"""Turn a combined report (``report.json``) into the Markdown tables of docs/performance.md.

    python -m benchmarks.markdown [benchmark-results/report.json] > tables.md

Only reads the JSON, so a run can be rendered again later, or on another machine.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.cli import DEFAULT_OUTPUT_DIR
from benchmarks.environment import cache_summary
from benchmarks.report import format_markdown_table


def _environment(report: dict[str, Any]) -> str:
    environment = report["environment"]
    cpu, versions, thread_info = environment["cpu"], environment["versions"], environment["threads"]
    blas = environment["blas"]
    runtime = blas["runtime"][0] if blas["runtime"] else {}
    at_end = report.get("environment_at_end", environment)["threads"]
    variables = ", ".join(f"{name}={value}" for name, value in thread_info["environment"].items() if value)
    loads = [suite["load_average"]["before"][0] for suite in report["suites"].values()
             if suite["load_average"]["before"]]
    peak_lines = []
    if "peak_at_end" in report:
        peak_lines = [f"- sgemm peak re-measured after the suites: {report['peak_at_end']['peak_gflops']:.1f} "
                      f"GFLOP/s ({report['peak_at_end']['ratio_to_start']:.2f}x the start-of-run peak)"]
    source = environment.get("tinynet_source", {})
    engine = source.get("git_commit", "unknown") + (
        " (with uncommitted engine changes)" if source.get("uncommitted_engine_changes") else "")
    return "\n".join([
        f"- tinynet commit: {engine}",
        f"- Command: `{report['command']}` ({report['mode']} mode, started {report['started']})",
        f"- CPU: {cpu['model']}, {cpu['usable_cpus']} usable CPUs ({', '.join(cpu['vector_extensions'])}); "
        f"caches: {cache_summary(cpu.get('caches', []))}",
        f"- Python {environment['python']}, numpy {versions['numpy']}, numba {versions['numba']}, "
        f"torch {versions['torch'] or 'not installed'}",
        f"- BLAS: {blas['build'].get('name', '?')} {blas['build'].get('version', '')}, kernels "
        f"{runtime.get('corename', '?')}, {thread_info['openblas_threads']} threads",
        f"- Thread variables: {variables or 'none set'}",
        f"- Numba threading layer at the end of the run: {at_end['numba_threading_layer']}",
        f"- Load average (1 min) before each suite: {', '.join(str(load) for load in loads)}",
        *peak_lines,
    ])


def _peak(results: dict[str, Any]) -> str:
    rows = [[str(row["size"]), row["best_s"] * 1e3, row["best_gflops"], row["median_gflops"]]
            for row in results["sizes"]]
    return format_markdown_table(["n (square)", "best ms", "best GFLOP/s", "median GFLOP/s"], rows) + (
        f"\n\nPeak: **{results['peak_gflops']:.1f} GFLOP/s** with {results['blas_threads']} BLAS threads.")


def _layers(results: dict[str, Any]) -> str:
    parts = []
    for batch, rows in results["batches"].items():
        table = [[row["layer"], row["forward"]["median_s"] * 1e3, row["backward"]["median_s"] * 1e3,
                  None if row["forward_flops"] is None else row["forward_flops"] / 1e6,
                  row["forward_gflops"], row["backward_gflops"], row["forward_percent_of_peak"],
                  row["backward_percent_of_peak"]] for row in rows]
        table.append(["**total**", sum(row["forward"]["median_s"] for row in rows) * 1e3,
                      sum(row["backward"]["median_s"] for row in rows) * 1e3, None, None, None, None, None])
        parts.append(f"Batch {batch}:\n\n" + format_markdown_table(
            ["layer", "fwd ms", "bwd ms", "fwd MFLOP", "fwd GFLOP/s", "bwd GFLOP/s", "fwd % peak", "bwd % peak"],
            table))
    return "\n\n".join(parts)


def _step(results: dict[str, Any]) -> str:
    rows = [[row["kind"], row["batch"], row["ms"], row["images_per_s"], row["projected_s_per_epoch"],
             row["gflops"], row["percent_of_peak"]] for row in results["measurements"]]
    parts = [format_markdown_table(
        ["measurement", "batch", "ms", "images/s", "s/epoch (60k)", "GFLOP/s", "% of peak"], rows)]
    for profile in results["time_shares"]:
        pieces = [[piece["piece"], piece["total_s"] * 1e3, piece["share_percent"]] for piece in profile["pieces"]]
        by_kind = ", ".join(f"{kind} {share:.1f} %" for kind, share in profile["share_by_kind_percent"].items())
        summed, whole = profile["sum_of_medians_s"] * 1e3, profile["train_on_batch_s"] * 1e3
        unfused = profile.get("train_on_batch_fuse_off_s")
        unfused_text = "" if unfused is None else f", {unfused * 1e3:.2f} ms with fuse off"
        parts.append(f"Time share inside a layer-by-layer training step at batch {profile['batch']} (sum of "
                     f"medians {summed:.2f} ms; train_on_batch {whole:.2f} ms{unfused_text}). By kind: {by_kind}."
                     "\n\n"
                     + format_markdown_table(["piece", "fwd + bwd ms", "share %"], pieces))
    return "\n\n".join(parts)


def _torch(results: dict[str, Any]) -> str:
    if results.get("skipped"):
        return f"Skipped: {results['reason']}"
    rows = [[row["kind"], row["batch"], row["tinynet"]["ms"], row["torch"]["ms"], row["ratio_tinynet_over_torch"],
             row["tinynet"]["images_per_s"], row["torch"]["images_per_s"], row["tinynet"]["percent_of_peak"],
             row["torch"]["percent_of_peak"]] for row in results["measurements"]]
    return (f"PyTorch {results['torch_version']}, {results['threads']} threads for both, momentum "
            f"{results['momentum']}:\n\n" + format_markdown_table(
                ["measurement", "batch", "tinynet ms", "torch ms", "tinynet / torch", "tinynet img/s",
                 "torch img/s", "tinynet % peak", "torch % peak"], rows))


def _coldstart(results: dict[str, Any]) -> str:
    rows = [[label, results[key]["import_s"], results[key]["build_s"], results[key]["first_step_s"],
             results[key]["second_step_s"], results[key]["first_call_s"], results[key]["process_s"]]
            for label, key in (("warm Numba cache", "warm"), ("empty Numba cache", "empty"))]
    return format_markdown_table(["cache", "import s", "build s", "1st step s", "2nd step s", "first call s",
                                  "process s"], rows)


def _memory(results: dict[str, Any]) -> str:
    phases = results["rss_mib"]
    what = "the whole epoch" if results["full_epoch"] else f"the first {results['steps_run']} steps"
    return (f"{results['images']:,} training images ({results['data_source']}, {results['data_mib']:.0f} MiB as "
            f"float32 with their labels), {results['validation_images']:,} validation images, batch 32, "
            f"{what} in {results['epoch_s']:.1f} s.\n\n"
            + format_markdown_table(["phase", "RSS MiB"], [
                ["after importing tinynet", phases["after_import"]], ["after loading the data", phases["after_data"]],
                ["after building the model", phases["after_build"]], ["after the epoch", phases["after_epoch"]],
                ["**peak (ru_maxrss)**", results["peak_rss_mib"]]]))


def _peers(results: dict[str, Any]) -> str:
    from benchmarks.suites.peers import render as render_peers

    # The suite's own report, its lines of prose as a list (consecutive Markdown lines would merge into one).
    lines = render_peers(results).splitlines()
    return "\n".join(line if not line or line.startswith("|") else f"- {line}" for line in lines)


_RENDERERS = {"peak": _peak, "layers": _layers, "step": _step, "torch": _torch, "coldstart": _coldstart,
              "memory": _memory, "peers": _peers}


def render(report: dict[str, Any]) -> str:
    """Markdown for every suite in ``report`` (a parsed ``report.json``), environment first."""
    parts = ["### Machine and command", _environment(report)]
    for name, suite in report["suites"].items():
        results = suite["results"]
        parts.append(f"### `{name}`")
        if results.get("failed"):
            parts.append(f"FAILED: {results['error']}")
        elif name in _RENDERERS:
            parts.append(_RENDERERS[name](results))
        else:  # onnxruntime, distributed: their printed tables and JSON are the report
            parts.append(f"(no Markdown tables for `{name}`; see `{name}.json`)")
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    path = Path(arguments[0]) if arguments else DEFAULT_OUTPUT_DIR / "report.json"
    print(render(json.loads(path.read_text())), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
