"""Probe: how long a fresh process takes to import tinynet, build the tutorial CNN and run its first step.

Run as ``python -m benchmarks.probes.coldstart``; prints JSON with seconds per phase. The first training step
includes Numba's work for every kernel it calls: loading the compiled code from the on-disk cache when the cache
is warm, compiling it from scratch when ``NUMBA_CACHE_DIR`` points at an empty folder. The second step, which
never compiles, is reported beside it so the difference shows what the first call costs.
"""

from __future__ import annotations

import json
import time


def main() -> None:
    start = time.perf_counter()
    import tinynet.layers  # noqa: F401  (the import being timed: NumPy, Numba and the kernels' module code)
    import tinynet.models  # noqa: F401
    import tinynet.optimizers  # noqa: F401

    imported = time.perf_counter()
    from benchmarks.tutorial import build_tutorial_model, synthetic_batch

    model = build_tutorial_model()
    x, y = synthetic_batch(32)
    built = time.perf_counter()
    model.train_on_batch(x, y)
    first_step = time.perf_counter()
    model.train_on_batch(x, y)
    second_step = time.perf_counter()
    print(json.dumps({
        "import_s": imported - start,
        "build_s": built - imported,
        "first_step_s": first_step - built,
        "second_step_s": second_step - first_step,
        "first_call_s": first_step - start,
    }))


if __name__ == "__main__":
    main()
