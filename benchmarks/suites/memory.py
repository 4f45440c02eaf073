"""``memory``: peak resident memory (RSS) of one training epoch over 60,000 images, in a fresh process.

:mod:`benchmarks.probes.memory` loads the data (real MNIST if tinynet's cache already holds it, else synthetic
images of the same shape, both float32 in ``[0, 1]``), builds the tutorial CNN and calls ``fit`` for one epoch
at batch 32, with validation on 10,000 images in the full run. ``--quick`` keeps the full 60,000-image training
set in memory but stops after a few hundred steps (the peak is reached within the first steps and then stays
flat; the table says which was run).
"""

from __future__ import annotations

import json
from typing import Any

from benchmarks.context import RunContext
from benchmarks.probes import run_probe
from benchmarks.report import format_table


def measure_memory(images: int, max_steps: int | None, validation_images: int) -> dict[str, Any]:
    arguments = {"images": images, "max_steps": max_steps, "validation_images": validation_images,
                 "use_mnist": True}
    return run_probe("memory", [json.dumps(arguments)])


def run(context: RunContext) -> dict[str, Any]:
    settings = context.settings
    result = measure_memory(settings.memory_images, settings.memory_max_steps, settings.memory_validation_images)
    phases = result["rss_mib"]
    what = "whole epoch" if result["full_epoch"] else f"first {result['steps_run']} steps of the epoch"
    print(format_table(
        ["phase", "RSS MiB"],
        [["interpreter start", phases["start"]], ["after importing tinynet", phases["after_import"]],
         ["after loading the data", phases["after_data"]], ["after building the model", phases["after_build"]],
         ["after the epoch", phases["after_epoch"]], ["peak (ru_maxrss)", result["peak_rss_mib"]]],
        title=f"memory: fit, batch 32, {result['images']:,} images ({result['data_source']}) "
              f"({result['data_mib']:.0f} MiB of float32 data), {result['validation_images']:,} validation "
              f"images; {what} in {result['epoch_s']:.1f} s",
    ))
    print()
    return result
