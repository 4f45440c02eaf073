"""``step``: the whole training step and inference, as a user calls them, and where a step's time goes.

* Training: ``model.train_on_batch(x, y)`` at batch 32 (the tutorial's) and 128.
* Inference: ``model.predict_on_batch(x)`` at batch 1, 100, 500 and 1000 (one forward pass over the batch).

Derived figures: images/s = batch / median time; projected seconds per epoch = time to process 60,000 images
(``ceil(60000 / batch)`` steps for training); GFLOP/s = batch x analytic FLOPs per image / median time, with
6,325,760 FLOPs per image forward and 18,198,528 per image in a training step (see :mod:`benchmarks.flops`);
% of peak = that over the run's sgemm peak.

When the model fuses runs of layers into single stages (``Sequential.fuse``, on by default), training is also
measured with ``model.fuse = False`` ("train (fuse off)"), every layer on its own.

Time shares: the model's own public step (``train_step``) with a stopwatch around each of its pieces
(:mod:`benchmarks.step_profile`): each stage's forward and backward (the engine's stages with ``fuse`` on, the
layers with it off), the loss and its gradient, the optimizer update; a piece's share is its median over the sum
of all medians, printed beside ``train_on_batch``'s median.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from benchmarks.context import RunContext
from benchmarks.flops import forward_flops_per_image, training_flops_per_image
from benchmarks.report import format_table, new_figure, save_figure
from benchmarks.step_profile import stage_kinds, training_step_by_piece
from benchmarks.timing import Stopwatch, Summary, time_call
from benchmarks.tutorial import build_tutorial_model, synthetic_batch, synthetic_images

EPOCH_IMAGES = 60000


def throughput(kind: str, batch: int, seconds: float, flops_per_image: int, context: RunContext) -> dict[str, Any]:
    """Images/s, projected s/epoch, GFLOP/s and % of peak for one measurement of ``seconds`` per batch."""
    gflops = batch * flops_per_image / seconds / 1e9
    steps = math.ceil(EPOCH_IMAGES / batch)
    return {
        "kind": kind, "batch": batch, "ms": seconds * 1e3, "images_per_s": batch / seconds,
        "projected_s_per_epoch": steps * seconds if kind == "train" else EPOCH_IMAGES * seconds / batch,
        "gflops": gflops, "percent_of_peak": context.percent_of_peak(gflops),
    }


def measure_training(model: Any, batch: int, repeats: int, warmup: int) -> Summary:
    x, y = synthetic_batch(batch)
    return time_call(lambda: model.train_on_batch(x, y), repeats, warmup)


def measure_inference(model: Any, batch: int, repeats: int, warmup: int) -> Summary:
    x = synthetic_images(batch)
    return time_call(lambda: model.predict_on_batch(x), repeats, warmup)


def profile_step(model: Any, batch: int, repeats: int, warmup: int) -> dict[str, Any]:
    """Median seconds of every piece of a training step, and each layer's share of their sum."""
    x, y = synthetic_batch(batch)
    for _ in range(warmup):
        training_step_by_piece(model, x, y, Stopwatch())
    watch = Stopwatch()
    for _ in range(repeats):
        training_step_by_piece(model, x, y, watch)
    medians = {key: summary.median for key, summary in watch.summaries().items()}
    total = sum(medians.values())
    pieces: dict[str, dict[str, float]] = defaultdict(dict)
    for key, seconds in medians.items():
        name, phase = key.split("|")
        pieces[name][phase] = seconds
    kinds = stage_kinds(model)
    rows = []
    for name, phases in pieces.items():
        seconds = sum(phases.values())
        rows.append({"piece": name, "kind": kinds[name], "forward_s": phases.get("forward"),
                     "backward_s": phases.get("backward") or phases.get("update"),
                     "total_s": seconds, "share_percent": 100.0 * seconds / total})
    by_kind: dict[str, float] = defaultdict(float)
    for row in rows:
        by_kind[row["kind"]] += row["share_percent"]
    return {"batch": batch, "sum_of_medians_s": total, "pieces": rows,
            "share_by_kind_percent": dict(sorted(by_kind.items(), key=lambda item: -item[1]))}


def run(context: RunContext) -> dict[str, Any]:
    settings = context.settings
    peak = context.peak_gflops()
    model = build_tutorial_model()
    forward_cost, training_cost = forward_flops_per_image(model), training_flops_per_image(model)
    measurements = []
    for batch in settings.train_batches:
        summary = measure_training(model, batch, settings.step_repeats, settings.step_warmup)
        measurements.append(throughput("train", batch, summary.median, training_cost, context)
                            | {"timing": summary.as_dict()})
    if getattr(model, "fuse", None) is True:
        # The model runs its layers as the engine's stages (Sequential.fuse); the layer-by-layer reference shows
        # what the engine gains.
        model.fuse = False
        for batch in settings.train_batches:
            summary = measure_training(model, batch, settings.step_repeats, settings.step_warmup)
            measurements.append(throughput("train", batch, summary.median, training_cost, context)
                                | {"kind": "train (fuse off)", "timing": summary.as_dict()})
        model.fuse = True
    for batch in settings.inference_batches:
        summary = measure_inference(model, batch, settings.step_repeats, settings.step_warmup)
        measurements.append(throughput("predict", batch, summary.median, forward_cost, context)
                            | {"timing": summary.as_dict()})
    print(format_table(
        ["measurement", "batch", "ms", "images/s", "s/epoch (60k)", "GFLOP/s", "% peak", "IQR %"],
        [[row["kind"], row["batch"], row["ms"], row["images_per_s"], row["projected_s_per_epoch"], row["gflops"],
          row["percent_of_peak"], 100 * row["timing"]["relative_iqr"]] for row in measurements],
        title=f"step: train_on_batch and predict_on_batch, median of {settings.step_repeats} "
              f"(FLOPs/image: forward {forward_cost:,}, training {training_cost:,}; peak {peak:.1f} GFLOP/s)",
    ))
    print()
    profiles = []
    for batch in settings.train_batches:
        profile = profile_step(model, batch, settings.profile_repeats, settings.step_warmup)
        train_ms = next(row["ms"] for row in measurements if row["kind"] == "train" and row["batch"] == batch)
        unfused_ms = next((row["ms"] for row in measurements
                           if row["kind"] == "train (fuse off)" and row["batch"] == batch), None)
        profile["train_on_batch_s"] = train_ms / 1e3
        profile["train_on_batch_fuse_off_s"] = None if unfused_ms is None else unfused_ms / 1e3
        profiles.append(profile)
        print(format_table(
            ["piece", "fwd ms", "bwd/update ms", "total ms", "share %"],
            [[row["piece"], None if row["forward_s"] is None else row["forward_s"] * 1e3,
              None if row["backward_s"] is None else row["backward_s"] * 1e3, row["total_s"] * 1e3,
              row["share_percent"]] for row in profile["pieces"]],
            title=f"step: time share per layer inside a training step at batch {batch} "
                  f"(sum of medians {profile['sum_of_medians_s'] * 1e3:.2f} ms; train_on_batch {train_ms:.2f} ms"
                  + ("" if unfused_ms is None else f", {unfused_ms:.2f} ms with fuse off") + ")",
        ))
        print("share by kind: " + ", ".join(f"{kind} {share:.1f}%"
                                            for kind, share in profile["share_by_kind_percent"].items()))
        print()
    result: dict[str, Any] = {
        "peak_gflops": peak, "forward_flops_per_image": forward_cost, "training_flops_per_image": training_cost,
        "momentum": model.optimizer.momentum, "measurements": measurements, "time_shares": profiles,
    }
    if context.charts:
        result["chart"] = str(_chart(profiles, context))
    return result


def _chart(profiles: list[dict[str, Any]], context: RunContext):
    figure, axes_list = new_figure(11, 5, columns=len(profiles))
    for axes, profile in zip(axes_list, profiles, strict=True):
        rows = profile["pieces"]
        places = np.arange(len(rows))
        axes.barh(places, [row["share_percent"] for row in rows])
        axes.set_yticks(places, [row["piece"] for row in rows], fontsize=8)
        axes.invert_yaxis()
        axes.set_xlabel("% of step time (median forward + backward)")
        axes.set_title(f"batch {profile['batch']}")
    figure.suptitle("tinynet training step: where the time goes")
    return save_figure(figure, context.output_dir / "step.png")
