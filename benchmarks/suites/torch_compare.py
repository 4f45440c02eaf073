"""``torch``: the ``step`` suite's measurements for tinynet and a PyTorch port, interleaved in one process.

For each measurement (training at batch 32 and 128, inference at 1, 100, 500 and 1000) the two engines take
turns: a round of tinynet repeats, a round of PyTorch repeats, tinynet again, and so on. Any slow spell of this
shared machine then hits both engines alike, and the ratio ``tinynet time / torch time`` (above 1: tinynet is
slower) is taken from the medians of all their rounds.

Both engines use the same thread count (``torch.set_num_threads`` = tinynet's threads) and the same update
(SGD, Nesterov, momentum 0.9: PyTorch's Nesterov needs a non-zero momentum, the tutorial's is 0). Between rounds
the suite sleeps briefly (:data:`SETTLE_SECONDS`, untimed): OpenBLAS's and PyTorch's OpenMP worker threads both
spin for a while after their last job, and a round must not start while the other engine's threads still hold
a core. Then each round first runs its engine untimed for :data:`RAMP_SECONDS`: on this virtual machine a core
that sat idle stays slow for a while once work comes back (measured: after a 0.2 s pause, tinynet's 2-thread
step took 9.4 ms for its first six steps, about 60 ms, then 6.0 ms; with 1 thread, or without the pause, no such
dip), so without the ramp a round would time the machine waking up, not the engine. Training runs its steps back
to back, so the steady state is what a user sees.

Importing torch loads its own OpenMP runtime and MKL into the process, so ``run`` (the command line) runs this
suite after the other in-process suites.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.context import RunContext
from benchmarks.flops import forward_flops_per_image, training_flops_per_image
from benchmarks.report import format_table, new_figure, save_figure
from benchmarks.suites.step import throughput
from benchmarks.timing import Summary
from benchmarks.torch_port import TorchTutorial, torch_import_error
from benchmarks.tutorial import build_tutorial_model, one_hot, synthetic_images, synthetic_labels

SETTLE_SECONDS = 0.05
RAMP_SECONDS = 0.15
MINIMUM_WARMUP = 3  # PyTorch (oneDNN) builds and caches its kernels for each new shape over the first calls
ENGINES = ("tinynet", "torch")


def interleave(calls: dict[str, Any], rounds: int, repeats_per_round: int, warmup: int) -> dict[str, Summary]:
    """Alternate rounds of ``repeats_per_round`` timed calls per engine; one summary per engine."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            time.sleep(SETTLE_SECONDS)
            ramp_end = time.perf_counter() + RAMP_SECONDS
            while time.perf_counter() < ramp_end:
                call()
            for _ in range(repeats_per_round):
                start = time.perf_counter()
                call()
                samples[name].append(time.perf_counter() - start)
    return {name: Summary.of(values) for name, values in samples.items()}


def run(context: RunContext) -> dict[str, Any]:
    reason = torch_import_error()
    if reason is not None:
        print(f"torch: skipped, PyTorch is not importable ({reason}); install it with pip install 'torch==2.13.0'")
        return {"skipped": True, "reason": reason}
    import torch

    settings = context.settings
    peak = context.peak_gflops()
    thread_count = context.threads  # tinynet's own (--threads, or every usable CPU)
    ported = TorchTutorial(threads=thread_count)
    model = build_tutorial_model()
    forward_cost, training_cost = forward_flops_per_image(model), training_flops_per_image(model)

    plans = []
    for batch in settings.train_batches:
        images, labels = synthetic_images(batch), synthetic_labels(batch)
        x_torch, labels_torch = ported.tensors(images, labels)
        targets = one_hot(labels)
        plans.append(("train", batch, training_cost, {
            "tinynet": lambda images=images, targets=targets: model.train_on_batch(images, targets),
            "torch": lambda x=x_torch, y=labels_torch: ported.train_step(x, y),
        }))
    for batch in settings.inference_batches:
        images = synthetic_images(batch)
        x_torch, _ = ported.tensors(images, synthetic_labels(batch))
        plans.append(("predict", batch, forward_cost, {
            "tinynet": lambda images=images: model.predict_on_batch(images),
            "torch": lambda x=x_torch: ported.predict(x),
        }))

    measurements = []
    for kind, batch, flops, calls in plans:
        warmup = max(settings.step_warmup, MINIMUM_WARMUP) if settings.torch_rounds > 1 else 0
        summaries = interleave(calls, settings.torch_rounds, settings.torch_repeats_per_round, warmup)
        entry: dict[str, Any] = {"kind": kind, "batch": batch}
        for engine in ENGINES:
            entry[engine] = throughput(kind, batch, summaries[engine].median, flops, context) | {
                "timing": summaries[engine].as_dict()}
        entry["ratio_tinynet_over_torch"] = summaries["tinynet"].median / summaries["torch"].median
        measurements.append(entry)

    print(format_table(
        ["measurement", "batch", "tinynet ms", "torch ms", "ratio", "tinynet img/s", "torch img/s",
         "tinynet %peak", "torch %peak"],
        [[row["kind"], row["batch"], row["tinynet"]["ms"], row["torch"]["ms"], row["ratio_tinynet_over_torch"],
          row["tinynet"]["images_per_s"], row["torch"]["images_per_s"], row["tinynet"]["percent_of_peak"],
          row["torch"]["percent_of_peak"]] for row in measurements],
        title=f"torch: tinynet vs PyTorch {torch.__version__}, interleaved, {settings.torch_rounds} rounds x "
              f"{settings.torch_repeats_per_round} repeats each, {thread_count} threads, SGD Nesterov momentum 0.9 "
              "(ratio = tinynet time / torch time)",
    ))
    print()
    result: dict[str, Any] = {
        "skipped": False, "torch_version": torch.__version__, "threads": thread_count,
        "torch_threads": torch.get_num_threads(), "torch_parallel_info": torch.__config__.parallel_info(),
        "momentum": ported.optimizer.defaults["momentum"], "peak_gflops": peak, "measurements": measurements,
        "settle_seconds": SETTLE_SECONDS,
        "parameters": {"tinynet": model.count_params(),
                       "torch": sum(parameter.numel() for parameter in ported.model.parameters())},
    }
    if context.charts:
        result["chart"] = str(_chart(measurements, context))
    return result


def _chart(measurements: list[dict[str, Any]], context: RunContext):
    import numpy as np

    figure, (axes,) = new_figure(10, 4.5)
    labels = [f"{row['kind']} {row['batch']}" for row in measurements]
    places = np.arange(len(measurements))
    width = 0.4
    for offset, engine in ((-width / 2, "tinynet"), (width / 2, "torch")):
        axes.bar(places + offset, [row[engine]["images_per_s"] for row in measurements], width, label=engine)
    for place, row in zip(places, measurements, strict=True):
        top = max(row[engine]["images_per_s"] for engine in ENGINES)
        axes.annotate(f"x{row['ratio_tinynet_over_torch']:.2f}", (place, top), xytext=(0, 3),
                      textcoords="offset points", ha="center", va="bottom", fontsize=8)
    axes.set_xticks(places, labels)
    axes.margins(y=0.12)
    axes.set_ylabel("images / s (median)")
    axes.set_title("tinynet vs PyTorch, interleaved (x = tinynet time / torch time)")
    axes.legend()
    return save_figure(figure, context.output_dir / "torch.png")
