"""``onnxruntime``: tinynet's inference against ONNX Runtime running the very model tinynet exported.

The tutorial CNN is exported with ``model.export(path, format='onnx')`` (:mod:`tinynet.interop.onnx_export`)
and run by ONNX Runtime's CPU provider with the same thread count as tinynet (``intra_op_num_threads``; one
inter-op thread, as the graph is a chain). The two engines take turns in rounds as in the ``torch`` suite
(:func:`benchmarks.suites.torch_compare.interleave`), at each inference batch size, so a slow spell of the
machine hits both; the ratio is ``tinynet time / ONNX Runtime time`` (above 1: tinynet is slower). Before timing,
the suite checks that both give the same probabilities (1e-4), so it never times a wrong graph.

Skipped, with the reason, when ``onnx`` or ``onnxruntime`` is not importable (``pip install 'tinynet[bench]'``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.context import RunContext
from benchmarks.flops import forward_flops_per_image
from benchmarks.peer_engines import onnxruntime_session
from benchmarks.report import format_table
from benchmarks.suites.step import throughput
from benchmarks.suites.torch_compare import MINIMUM_WARMUP, interleave
from benchmarks.tutorial import build_tutorial_model, synthetic_images

ENGINES = ("tinynet", "onnxruntime")


def import_error() -> str | None:
    """``None`` when onnx and onnxruntime import, else the reason they do not."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except Exception as error:  # an ImportError, or a broken install raising something else
        return f"{type(error).__name__}: {error}"
    return None


def run(context: RunContext) -> dict[str, Any]:
    reason = import_error()
    if reason is not None:
        print(f"onnxruntime: skipped, ONNX Runtime is not importable ({reason}); install it with "
              "pip install 'tinynet[bench]'")
        return {"skipped": True, "reason": reason}
    import onnxruntime

    settings = context.settings
    thread_count = context.threads
    model = build_tutorial_model()
    forward_cost = forward_flops_per_image(model)
    session = onnxruntime_session(model, thread_count)  # the same session the peers suite runs

    check = synthetic_images(3)
    difference = float(np.abs(session.run(None, {"input": check})[0] - model.predict_on_batch(check)).max())
    if difference > 1e-4:
        raise AssertionError(f"onnxruntime: the exported graph differs from tinynet by {difference:.3g}")

    measurements = []
    for batch in settings.inference_batches:
        images = synthetic_images(batch)
        calls = {"tinynet": lambda images=images: model.predict_on_batch(images),
                 "onnxruntime": lambda images=images: session.run(None, {"input": images})}
        warmup = max(settings.step_warmup, MINIMUM_WARMUP) if settings.torch_rounds > 1 else 0
        summaries = interleave(calls, settings.torch_rounds, settings.torch_repeats_per_round, warmup)
        entry: dict[str, Any] = {"kind": "predict", "batch": batch}
        for engine in ENGINES:
            entry[engine] = throughput("predict", batch, summaries[engine].median, forward_cost, context) | {
                "timing": summaries[engine].as_dict()}
        entry["ratio_tinynet_over_onnxruntime"] = summaries["tinynet"].median / summaries["onnxruntime"].median
        measurements.append(entry)

    print(format_table(
        ["measurement", "batch", "tinynet ms", "onnxruntime ms", "ratio", "tinynet img/s", "onnxruntime img/s"],
        [[row["kind"], row["batch"], row["tinynet"]["ms"], row["onnxruntime"]["ms"],
          row["ratio_tinynet_over_onnxruntime"], row["tinynet"]["images_per_s"], row["onnxruntime"]["images_per_s"]]
         for row in measurements],
        title=f"onnxruntime: tinynet vs ONNX Runtime {onnxruntime.__version__} on tinynet's exported graph, "
              f"interleaved, {settings.torch_rounds} rounds x {settings.torch_repeats_per_round} repeats each, "
              f"{thread_count} threads (ratio = tinynet time / ONNX Runtime time)",
    ))
    print()
    return {"skipped": False, "onnxruntime_version": onnxruntime.__version__, "threads": thread_count,
            "max_difference": difference, "measurements": measurements}
