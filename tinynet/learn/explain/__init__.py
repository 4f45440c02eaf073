"""One real training step, every tensor and its gradient, in a page that opens offline.

``explain(model, x, y, path)`` trains a compiled ``Sequential`` for a few steps on ``(x, y)`` through its public
step and writes one self-contained HTML file showing, layer by layer down and back up: the layer's formula and
backward math (its class docstring), the shapes, the forward activations as pictures with their statistics, the
gradient arriving (``dy``), the one sent on (``dx``) and each parameter gradient as pictures and histograms, the
gradient check of each of them (central differences in float64), for a Conv2D how im2col lays out one receptive
field and how col2im sends the gradient back (on the step's own numbers), the fused softmax/cross-entropy gradient
``(p - y) / N`` on the batch, and the optimizer's update of every parameter with Keras 2's equations filled in.
``tinynet explain`` does it for the tutorial CNN on MNIST.

Any layer works, a learner's own included: the page reads only the layer contract (``forward``, ``backward``,
``params``, ``grads``) and the class docstring.

The recording is in :mod:`.recording`, the pictures in :mod:`.pictures`, the convolution's worked example in
:mod:`.convolution`, the filled-in update equations in :mod:`.updates`, the HTML in :mod:`.page`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from tinynet.fileio import atomic_write
from tinynet.models.checks import check_xy

from .page import render
from .recording import LayerRecord, LossRecord, StepRecord, record_step

__all__ = ["LayerRecord", "LossRecord", "StepRecord", "explain", "record_step", "record_steps"]


def _positive_int(value: Any, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"explain: {argument} must be a positive int, got {value!r}")
    return int(value)


def record_steps(model: Any, x: np.ndarray, y: np.ndarray, steps: int = 3, batch_size: int = 32,
                 check_samples: int = 2, check_entries: int = 12, seed: int = 0) -> list[StepRecord]:
    """``steps`` training steps on consecutive batches of ``(x, y)`` (wrapping around when the data runs out),
    each recorded by :func:`record_step`. The model is trained by them."""
    steps = _positive_int(steps, "steps")
    batch_size = _positive_int(batch_size, "batch_size")
    if getattr(model, "loss", None) is None or getattr(model, "optimizer", None) is None:
        raise ValueError("explain: compile the model first (model.compile(optimizer, loss)); the recorded step "
                         "needs its loss and its optimizer")
    x, y = check_xy(model, x, y, "explain")
    records = []
    for number in range(steps):
        indices = (np.arange(batch_size) + number * batch_size) % len(x)
        records.append(record_step(model, x[indices], y[indices], number=number, check_samples=check_samples,
                                   check_entries=check_entries, seed=seed))
    return records


def explain(model: Any, x: np.ndarray, y: np.ndarray, path: str | os.PathLike, *, steps: int = 3,
            batch_size: int = 32, title: str | None = None, source: str | None = None, check_samples: int = 2,
            check_entries: int = 12, seed: int = 0) -> Path:
    """Train ``model`` (compiled) for ``steps`` steps of ``batch_size`` samples of ``(x, y)``, record each, and
    write the page to ``path`` (``.html``), atomically. Returns the path.

    ``check_samples`` samples and ``check_entries`` entries of each array go into the gradient checks (more is
    slower). ``source`` says where the data came from (shown on the page).
    """
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"explain: path must name an .html file, got {str(path)!r}")
    records = record_steps(model, x, y, steps=steps, batch_size=batch_size, check_samples=check_samples,
                           check_entries=check_entries, seed=seed)
    source = source or f"{len(x)} samples given to explain()"
    text = render(model, records, title or f"Backpropagation in {model.name}, tensor by tensor", source)
    with atomic_write(path) as file:
        file.write(text.encode("utf-8"))
    return path
