"""``peers``: the tutorial CNN on tinynet and the strongest CPU engines, interleaved in one process (issue 15).

Engines (:mod:`benchmarks.peer_engines`), all started from the same tinynet weights and given the same thread count
(``--threads``, default the usable CPUs):

* **tinynet**: ``model.train_step(x, y)`` and ``model.predict(x, batch_size=batch, verbose=0)``;
* **PyTorch eager**, **PyTorch channels_last** (model and input in ``torch.channels_last`` memory order) and
  **torch.compile** (inductor, one static graph per batch size, compiled while the suite sets up, untimed):
  :mod:`benchmarks.torch_port`, ``torch.set_num_threads(threads)``;
* **JAX jit (XLA)**: the whole training step as one jitted ``jax.lax`` program with Keras 2's Nesterov SGD and
  decay, parameters and velocities donated (:mod:`benchmarks.jax_port`), XLA held to ``threads`` threads;
* **ONNX Runtime** (inference only) on the graph tinynet exports, ``intra_op_num_threads = threads``, sequential.

Measurements: a training step at batch 32 and 128, inference at batch 1, 100, 500 and 1000 (``--smoke``: tiny
batches). Protocol, as issue 15 sets it: in rounds (7; 3 with ``--quick``; 1 with ``--smoke``), every engine in
turn, the order rotated by one each round, first **pauses 50 ms** (``time.sleep``: the previous engine's spinning
worker threads, OpenMP's, OpenBLAS's, Eigen's, go idle and leave the cores free), then runs its call **untimed
for 0.15 s** (on this virtual machine an idle core stays slow for a while once work returns, see
:mod:`benchmarks.suites.torch_compare`), then makes its timed calls. An engine's time for a round is the median of
that round's calls; its figure is the **median over the rounds**. Any slow spell of the shared machine then lands
on every engine alike, and no engine always runs right after the same neighbour.

Before timing, every peer's probabilities on the same images are compared with tinynet's ``predict`` (max abs
difference, printed and saved), so every column computes the same network. The sgemm peak is measured in the
same process just before the rounds (:func:`benchmarks.suites.peak.measure_peak`, a short version) so that the
report can give tinynet's batch-32 step as a share of it.

Issue 15's targets, checked at the end (PASS/FAIL): the training step at batch 32 and at batch 128 takes at most
0.6x the fastest peer's time; inference at batch 100 and 1000 at most 0.9x; the batch-32 step reaches at least
40 % of the sgemm peak.

Order in a run: last. Importing PyTorch loads its OpenMP runtime and MKL, and JAX its XLA runtime and Eigen thread
pool, into the process for good; the other in-process suites (``torch`` included, which imports only PyTorch)
must measure tinynet before either arrives, and the JAX thread limit (set through ``XLA_FLAGS`` before the first
import of JAX) only works if this suite is the first to import it.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks import environment, isa
from benchmarks.context import RunContext
from benchmarks.flops import forward_flops_per_image, training_flops_per_image
from benchmarks.peer_engines import LABELS, PEERS, Engine, build_engines
from benchmarks.report import format_markdown_table, format_number
from benchmarks.suites.peak import measure_peak
from benchmarks.timing import Summary
from benchmarks.tutorial import build_tutorial_model, synthetic_images

PAUSE_SECONDS = 0.05
RAMP_SECONDS = 0.15
WARMUP_CALLS = 3  # after the first (compiling) call: oneDNN and XLA settle their kernels over the first calls
CROSS_CHECK_IMAGES = 8
PEAK_PAUSE_SECONDS = 0.5  # before the sgemm peak: longer than any engine's worker threads keep spinning

TARGETS = (
    # (kind, batch, at most this fraction of the fastest peer's time)
    ("train", 32, 0.6),
    ("train", 128, 0.6),
    ("predict", 100, 0.9),
    ("predict", 1000, 0.9),
)
PEAK_TARGET_PERCENT = 40.0  # the batch-32 step's share of the sgemm peak


def rotated(names: list[str], round_index: int) -> list[str]:
    """The engines' order in round ``round_index``: shifted by one place per round."""
    shift = round_index % len(names)
    return names[shift:] + names[:shift]


def run_rounds(calls: dict[str, Callable[[], Any]], rounds: int, repeats_per_round: int,
               pause_seconds: float = PAUSE_SECONDS, ramp_seconds: float = RAMP_SECONDS) -> dict[str, dict[str, Any]]:
    """Issue 15's protocol for one measurement; per engine, the median over rounds of each round's median, the
    per-round figures and a summary of every timed call."""
    names = list(calls)
    if not names:  # every engine failed to prepare this measurement: nothing to time
        return {}
    samples: dict[str, list[float]] = {name: [] for name in names}
    per_round: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        for name in rotated(names, round_index):
            call = calls[name]
            time.sleep(pause_seconds)
            ramp_end = time.perf_counter() + ramp_seconds
            while time.perf_counter() < ramp_end:
                call()
            timed = []
            for _ in range(repeats_per_round):
                start = time.perf_counter()
                call()
                timed.append(time.perf_counter() - start)
            samples[name].extend(timed)
            per_round[name].append(statistics.median(timed))
    return {name: {"seconds": statistics.median(per_round[name]), "round_seconds": per_round[name],
                   "calls": Summary.of(samples[name]).as_dict()} for name in names}


def prepare_calls(engines: list[Engine], kind: str, batch: int) -> tuple[dict[str, Callable[[], Any]], dict[str, str]]:
    """Each engine's call for one measurement, run once (compiling it) and warmed up, untimed; engines that
    cannot make it (inference-only for training, or a failure) are returned with the reason."""
    calls, missing = {}, {}
    for engine in engines:
        factory = engine.training if kind == "train" else engine.inference
        if factory is None:
            missing[engine.name] = "inference only"
            continue
        try:
            call = factory(batch)
            for _ in range(1 + WARMUP_CALLS):
                call()
        except Exception as error:  # a peer failing on one shape must not stop the others
            missing[engine.name] = f"failed: {type(error).__name__}: {error}"
            continue
        calls[engine.name] = call
    return calls, missing


def cross_check(engines: list[Engine]) -> dict[str, float]:
    """Max abs difference of each peer's probabilities from tinynet's, on the same images and weights."""
    images = synthetic_images(CROSS_CHECK_IMAGES, seed=7)
    reference = engines[0].probabilities(images)
    return {engine.name: float(abs(engine.probabilities(images) - reference).max())
            for engine in engines[1:] if engine.probabilities is not None}


def short_peak_settings(context: RunContext) -> Any:
    """The ``peak`` suite's measurement, shortened: two sizes, four calls each (the smoke settings as they are)."""
    settings = context.settings
    if settings.mode == "smoke":
        return settings
    return dataclasses.replace(settings, peak_sizes=(1024, 2048), peak_repeats=4)


def run(context: RunContext) -> dict[str, Any]:
    settings = context.settings
    threads = context.threads
    load_before = environment.load_average()
    model = build_tutorial_model()
    costs = {"train": training_flops_per_image(model), "predict": forward_flops_per_image(model)}
    engines, unavailable = build_engines(model, threads)
    differences = cross_check(engines)

    plans = [("train", batch) for batch in settings.train_batches]
    plans += [("predict", batch) for batch in settings.inference_batches]
    # torch.compile and XLA compile every shape here, which can take minutes on a small machine: say so.
    print(f"peers: built {', '.join(engine.label for engine in engines)}; compiling and warming up "
          f"{len(plans)} shapes...", flush=True)
    prepared = [(kind, batch, *prepare_calls(engines, kind, batch)) for kind, batch in plans]

    # The last calls prepared were the peers' (ONNX Runtime's threads spin after each run by default, OpenMP's
    # too): the peak must not be measured against them, or every "% of peak" of the run is overstated.
    time.sleep(PEAK_PAUSE_SECONDS)
    peak = measure_peak(short_peak_settings(context))
    if context.peak is None:
        context.peak = peak
    measurements = []
    print(f"peers: timing {len(prepared)} measurements x {settings.torch_rounds} rounds...", flush=True)
    for kind, batch, calls, missing in prepared:
        timings = run_rounds(calls, settings.torch_rounds, settings.torch_repeats_per_round)
        measurements.append(measurement_entry(kind, batch, timings, missing, costs[kind], peak["peak_gflops"]))
    load_after = environment.load_average()

    environment_block = environment.describe_environment()
    cpu = environment_block["cpu"]
    runtime = environment_block["blas"]["runtime"]
    result: dict[str, Any] = {
        "skipped": False, "threads": threads,
        "protocol": {"rounds": settings.torch_rounds, "repeats_per_round": settings.torch_repeats_per_round,
                     "pause_s": PAUSE_SECONDS, "ramp_s": RAMP_SECONDS, "warmup_calls": 1 + WARMUP_CALLS,
                     "figure": "median over rounds of each round's median"},
        "cpu": {"model": cpu["model"], "vector_extensions": cpu["vector_extensions"], "caches": cpu["caches"],
                "cache_summary": environment.cache_summary(cpu["caches"]), "usable_cpus": cpu["usable_cpus"]},
        "openblas_core": runtime[0].get("corename") if runtime else None,
        "code_paths": environment_block["code_paths"],
        "peak": peak,
        "load_average": {"before": load_before, "after": load_after},
        "engines": {engine.name: {"label": engine.label, "available": True, "version": engine.version,
                                  "trains": engine.training is not None, **engine.details} for engine in engines}
        | {missing.name: {"label": missing.label, "available": False, "reason": missing.reason}
           for missing in unavailable},
        "cross_check_max_abs_difference": differences,
        "measurements": measurements,
    }
    result["targets"] = check_targets(measurements, peak["peak_gflops"], costs["train"])
    print(render(result))
    print()
    return result


def measurement_entry(kind: str, batch: int, timings: dict[str, dict[str, Any]], missing: dict[str, str],
                      flops_per_image: int, peak_gflops: float) -> dict[str, Any]:
    """One row: every engine's figures (or why it has none), the fastest peer and tinynet's ratio to it."""
    engines: dict[str, Any] = {}
    for name in LABELS:
        if name in timings:
            seconds = timings[name]["seconds"]
            gflops = batch * flops_per_image / seconds / 1e9
            engines[name] = {"ms": seconds * 1e3, "images_per_s": batch / seconds, "gflops": gflops,
                             "percent_of_peak": 100 * gflops / peak_gflops, **timings[name]}
        else:
            engines[name] = {"ms": None, "reason": missing.get(name, "not available (see engines)")}
    timed_peers = [name for name in PEERS if engines[name]["ms"] is not None]
    fastest = min(timed_peers, key=lambda name: engines[name]["ms"]) if timed_peers else None
    ratio = None
    if fastest is not None and engines["tinynet"]["ms"] is not None:
        ratio = engines["tinynet"]["ms"] / engines[fastest]["ms"]
    return {"kind": kind, "batch": batch, "engines": engines, "fastest_peer": fastest,
            "ratio_tinynet_over_fastest_peer": ratio}


def check_targets(measurements: list[dict[str, Any]], peak_gflops: float, training_flops: int) -> list[dict[str, Any]]:
    """Issue 15's targets as PASS/FAIL (``None`` when not measured in this run, or no peer ran)."""
    rows = {(row["kind"], row["batch"]): row for row in measurements}
    checks = []
    for kind, batch, limit in TARGETS:
        row = rows.get((kind, batch))
        what = f"{'train step' if kind == 'train' else 'inference'} b{batch}"
        ratio = row["ratio_tinynet_over_fastest_peer"] if row else None
        checks.append({"target": f"{what}: tinynet time <= {limit}x the fastest peer's", "limit": limit,
                       "value": ratio, "fastest_peer": row["fastest_peer"] if row else None,
                       "passed": None if ratio is None else ratio <= limit})
    step = rows.get(("train", 32))
    percent = None
    if step and step["engines"]["tinynet"]["ms"] is not None:
        percent = 100 * 32 * training_flops / (step["engines"]["tinynet"]["ms"] / 1e3) / 1e9 / peak_gflops
    checks.append({"target": f"train step b32: tinynet >= {PEAK_TARGET_PERCENT:.0f} % of the sgemm peak",
                   "limit": PEAK_TARGET_PERCENT, "value": percent, "fastest_peer": None,
                   "passed": None if percent is None else percent >= PEAK_TARGET_PERCENT})
    return checks


def _cell(kind: str, figures: dict[str, Any]) -> str:
    if figures["ms"] is None:
        reason = figures["reason"]
        return "n/a: " + (reason if len(reason) <= 48 else reason[:45] + "...")
    if kind == "train":
        return f"{format_number(figures['ms'])} ms"
    return f"{format_number(figures['images_per_s'])} img/s ({format_number(figures['ms'])} ms)"


def render(result: dict[str, Any]) -> str:
    """The preamble (machine, peak, load), the Markdown table, the cross-check and the target lines."""
    cpu, peak = result["cpu"], result["peak"]
    engines = result["engines"]
    protocol = result["protocol"]
    extensions = ", ".join(cpu["vector_extensions"]) or "no vector flags found"
    lines = [
        f"peers: the tutorial CNN on {result['threads']} threads per engine, interleaved in one process",
        f"CPU: {cpu['model']} ({cpu['usable_cpus']} usable CPUs; {extensions}); caches: {cpu['cache_summary']}; "
        f"OpenBLAS kernels: {result['openblas_core'] or 'unknown'}"
        + (f"; {result['code_paths']}" if result.get("code_paths", isa.NATIVE) != isa.NATIVE else ""),
        f"sgemm peak (same process, {peak['blas_threads']} BLAS threads): {peak['peak_gflops']:.1f} GFLOP/s; "
        f"load average (1/5/15 min) before {result['load_average']['before']}, "
        f"after {result['load_average']['after']}",
        f"protocol: {protocol['rounds']} rounds x {protocol['repeats_per_round']} timed calls per engine, order "
        f"rotated each round, {protocol['pause_s'] * 1e3:.0f} ms pause + {protocol['ramp_s']:.2f} s untimed run "
        "before each engine's calls; median over rounds",
        "versions: " + ", ".join(f"{info['label']} {info['version']}" for info in engines.values()
                                 if info["available"]),
        "",
    ]
    headers = ["tutorial CNN", *(LABELS[name] for name in LABELS), "fastest peer", "tinynet / fastest peer"]
    rows = []
    for row in result["measurements"]:
        what = f"train step b{row['batch']}" if row["kind"] == "train" else f"inference b{row['batch']}"
        fastest = row["fastest_peer"]
        rows.append([what, *(_cell(row["kind"], row["engines"][name]) for name in LABELS),
                     LABELS[fastest] if fastest else "n/a", row["ratio_tinynet_over_fastest_peer"]])
    lines.append(format_markdown_table(headers, rows))
    lines.append("")
    for info in engines.values():
        if not info["available"]:
            lines.append(f"{info['label']}: not run ({info['reason']})")
    for row in result["measurements"]:  # a peer that built but failed on one shape: its full reason
        for name, figures in row["engines"].items():
            if figures["ms"] is None and figures["reason"].startswith("failed"):
                lines.append(f"{LABELS[name]}, {row['kind']} b{row['batch']}: {figures['reason']}")
    differences = result["cross_check_max_abs_difference"]
    if differences:
        lines.append("cross-check, max abs difference of the probabilities from tinynet's predict (same weights, "
                     f"{CROSS_CHECK_IMAGES} images): "
                     + ", ".join(f"{LABELS[name]} {value:.2g}" for name, value in differences.items()))
    before, usable = result["load_average"]["before"], cpu["usable_cpus"] or 1
    if before and max(before[0], (result["load_average"]["after"] or [0])[0]) > usable:
        lines.append(f"WARNING: 1-minute load average above {usable} (the usable CPUs) during this suite: other "
                     "processes had the cores, so the figures and the PASS/FAIL lines below describe a busy "
                     "machine; rerun on a quiet one before quoting them")
    for check in result["targets"]:
        status = {True: "PASS", False: "FAIL", None: "N/A "}[check["passed"]]
        value = check["value"]
        if value is None:
            shown = "not measured in this run"
        elif check["fastest_peer"] is not None:
            shown = f"{value:.2f}x {LABELS[check['fastest_peer']]}'s time"
        else:
            shown = f"{value:.1f} %"
        lines.append(f"{status}  {check['target']}: {shown}")
    return "\n".join(lines)
