"""``layers``: every layer of the tutorial CNN on its own, forward and backward, at batch 32 and 256.

Each layer is fed the activations it sees in the real network (the tutorial model's own forward pass on
synthetic images, in training mode) and a random upstream gradient of its output's shape. Repeats go round the
layers (layer 1, 2, ... 15, then again) so a burst of load from another process spreads over all of them
instead of landing on one. Each backward follows its own forward, since a backward consumes the cache.

The first convolution skips ``dx`` as in a training step, and the softmax layer is backpropagated from ``dL/dz``
(the fused softmax + cross-entropy gradient), also as in a training step.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks.context import RunContext
from benchmarks.flops import input_gradient_flags, model_costs
from benchmarks.report import format_table, new_figure, save_figure
from benchmarks.timing import Summary
from benchmarks.tutorial import build_tutorial_model, synthetic_images
from tinynet.models import passes


def prepare_for_training(model: Any) -> None:
    """Set each layer's ``needs_input_gradient`` as a training step does (the first layer hands dx to no one)."""
    for layer, flag in zip(model.layers, input_gradient_flags(model), strict=True):
        layer.needs_input_gradient = flag


def layer_backward(model: Any, index: int, gradient: np.ndarray) -> np.ndarray | None:
    """Backward through layer ``index`` as a training step does (the last layer from ``dL/dz`` when the softmax
    and the cross-entropy are fused)."""
    layer = model.layers[index]
    if index == len(model.layers) - 1 and passes.uses_fused_softmax(model):
        return layer.backward_preactivation(gradient)
    return layer.backward(gradient)


def _gflops(flops: int | None, seconds: float) -> float | None:
    return None if flops is None or seconds <= 0 else flops / seconds / 1e9


def time_layers(model: Any, batch: int, repeats: int, warmup: int, seed: int = 0) -> list[dict[str, Any]]:
    """Median forward and backward seconds of each layer of ``model`` at ``batch``, with its FLOP counts."""
    prepare_for_training(model)
    generator = np.random.default_rng(seed)
    inputs, gradients = [], []
    x = synthetic_images(batch, seed)
    for layer in model.layers:
        # A copy: a layer may reuse its output buffer on its next call, and this input must stay as it was.
        inputs.append(np.array(x, copy=True))
        x = layer.forward(x, training=True)
        # Small gradients, as a real backward pass sees; the values do not change the time.
        gradients.append((generator.standard_normal(x.shape) * 1e-3).astype(x.dtype))
    forward_samples: list[list[float]] = [[] for _ in model.layers]
    backward_samples: list[list[float]] = [[] for _ in model.layers]
    for repeat in range(warmup + repeats):
        for index, layer in enumerate(model.layers):
            start = time.perf_counter()
            layer.forward(inputs[index], training=True)
            middle = time.perf_counter()
            layer_backward(model, index, gradients[index])
            end = time.perf_counter()
            if repeat >= warmup:
                forward_samples[index].append(middle - start)
                backward_samples[index].append(end - middle)
    rows = []
    for index, cost in enumerate(model_costs(model, batch)):
        forward, backward = Summary.of(forward_samples[index]), Summary.of(backward_samples[index])
        rows.append({
            "layer": cost.name, "kind": cost.kind, "batch": batch, **cost.as_dict(),
            "forward": forward.as_dict(), "backward": backward.as_dict(),
            "forward_gflops": _gflops(cost.forward_flops, forward.median),
            "backward_gflops": _gflops(cost.backward_flops, backward.median),
            "forward_melements_per_s": cost.input_elements / forward.median / 1e6,
            "backward_melements_per_s": cost.input_elements / backward.median / 1e6,
        })
    return rows


def run(context: RunContext) -> dict[str, Any]:
    settings = context.settings
    peak = context.peak_gflops()
    by_batch: dict[str, list[dict[str, Any]]] = {}
    for batch in settings.layer_batches:
        model = build_tutorial_model()
        rows = time_layers(model, batch, settings.layer_repeats, settings.layer_warmup)
        for row in rows:
            row["forward_percent_of_peak"] = context.percent_of_peak(row["forward_gflops"])
            row["backward_percent_of_peak"] = context.percent_of_peak(row["backward_gflops"])
        by_batch[str(batch)] = rows
        total_forward = sum(row["forward"]["median_s"] for row in rows)
        total_backward = sum(row["backward"]["median_s"] for row in rows)
        print(format_table(
            ["layer", "fwd ms", "bwd ms", "fwd MFLOP", "bwd MFLOP", "fwd GFLOP/s", "bwd GFLOP/s",
             "fwd %peak", "bwd %peak"],
            [[row["layer"], row["forward"]["median_s"] * 1e3, row["backward"]["median_s"] * 1e3,
              None if row["forward_flops"] is None else row["forward_flops"] / 1e6,
              None if row["backward_flops"] is None else row["backward_flops"] / 1e6,
              row["forward_gflops"], row["backward_gflops"],
              row["forward_percent_of_peak"], row["backward_percent_of_peak"]] for row in rows]
            + [["total", total_forward * 1e3, total_backward * 1e3, None, None, None, None, None, None]],
            title=f"layers: batch {batch}, median of {settings.layer_repeats} after {settings.layer_warmup} "
                  f"warm-up (peak {peak:.1f} GFLOP/s; n/a = not a GEMM layer)",
        ))
        print()
    result: dict[str, Any] = {"peak_gflops": peak, "batches": by_batch}
    if context.charts:
        result["chart"] = str(_chart(by_batch, context))
    return result


def _chart(by_batch: dict[str, list[dict[str, Any]]], context: RunContext):
    figure, axes_list = new_figure(11, 5, columns=len(by_batch))
    for axes, (batch, rows) in zip(axes_list, by_batch.items(), strict=True):
        names = [row["layer"] for row in rows]
        forward = np.array([row["forward"]["median_s"] * 1e3 for row in rows])
        backward = np.array([row["backward"]["median_s"] * 1e3 for row in rows])
        places = np.arange(len(rows))
        axes.barh(places, forward, label="forward")
        axes.barh(places, backward, left=forward, label="backward")
        axes.set_yticks(places, names, fontsize=8)
        axes.invert_yaxis()
        axes.set_xlabel("ms (median)")
        axes.set_title(f"batch {batch}")
        axes.legend(fontsize=8)
    figure.suptitle("tinynet tutorial CNN: time per layer")
    return save_figure(figure, context.output_dir / "layers.png")
