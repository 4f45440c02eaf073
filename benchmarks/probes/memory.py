"""Probe: peak resident memory of one training epoch of the tutorial CNN over 60,000 images.

Run as ``python -m benchmarks.probes.memory '{"images": 60000, "max_steps": null, "validation_images": 10000,
"use_mnist": true}'``; prints JSON. The data are real MNIST when it is already in tinynet's dataset cache
(read from there, never downloaded), else synthetic images of the same shape. As in the tutorial the pixels are
divided by 255, but into float32 (the tutorial's NumPy division gives float64, twice the bytes: 188 MB more
for the training set), which is what a memory-conscious user of tinynet would do.

Resident memory (RSS) is read from ``/proc/self/status`` after each phase; the peak is ``ru_maxrss`` (the most
the process ever held, in KiB on Linux), which includes the import of NumPy and Numba and the data itself.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _rss_mib() -> float | None:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024


def _load_cached_mnist():
    """MNIST from tinynet's cache folder if all its files are there; ``None`` otherwise (never downloads)."""
    try:
        from tinynet.datasets import cache_dir, mnist

        folder = cache_dir("mnist")
        if not folder.is_dir():
            return None
        return mnist.load_data(path=folder)
    except Exception:  # an incomplete or unreadable cache: fall back to synthetic data
        return None


def main(arguments: dict) -> dict:
    phases = {"start": _rss_mib()}
    import numpy as np

    from benchmarks.tutorial import build_tutorial_model, one_hot, synthetic_images, synthetic_labels
    from tinynet.callbacks import Callback

    phases["after_import"] = _rss_mib()
    images, validation_images = arguments["images"], arguments["validation_images"]
    mnist = _load_cached_mnist() if arguments.get("use_mnist", True) else None
    if mnist is not None and len(mnist[0][0]) >= images:
        (x_train, y_train), (x_test, y_test) = mnist
        source = "MNIST from the tinynet cache"
        x = x_train[:images, :, :, None].astype(np.float32) / np.float32(255)
        y = one_hot(y_train[:images].astype(np.int64))
        x_val = x_test[:validation_images, :, :, None].astype(np.float32) / np.float32(255)
        y_val = one_hot(y_test[:validation_images].astype(np.int64))
    else:
        source = "synthetic"
        x, y = synthetic_images(images), one_hot(synthetic_labels(images))
        x_val, y_val = synthetic_images(validation_images, seed=1), one_hot(synthetic_labels(validation_images, 1))
    data_mib = (x.nbytes + y.nbytes + x_val.nbytes + y_val.nbytes) / 2**20
    phases["after_data"] = _rss_mib()

    model = build_tutorial_model()
    phases["after_build"] = _rss_mib()

    class StopAfter(Callback):
        """Ends ``fit`` after ``steps`` batches (the --quick run trains on part of the epoch)."""

        def __init__(self, steps: int) -> None:
            super().__init__()
            self.steps = steps
            self.done = 0

        def on_batch_end(self, batch, logs=None):
            self.done += 1
            if self.done >= self.steps:
                self.model.stop_training = True

    max_steps = arguments.get("max_steps")
    callbacks = [StopAfter(max_steps)] if max_steps else []
    start = time.perf_counter()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=True, callbacks=callbacks,
              validation_data=(x_val, y_val) if validation_images else None)
    seconds = time.perf_counter() - start
    phases["after_epoch"] = _rss_mib()
    steps_run = callbacks[0].done if callbacks else -(-images // 32)
    return {
        "data_source": source, "images": images, "validation_images": validation_images,
        "steps_run": steps_run, "full_epoch": not callbacks or steps_run >= -(-images // 32),
        "epoch_s": seconds, "data_mib": data_mib, "rss_mib": phases,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "vm_hwm_mib": None if _status_kib("VmHWM") is None else _status_kib("VmHWM") / 1024,
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
