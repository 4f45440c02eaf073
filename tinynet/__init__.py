"""tinynet: a small deep-learning engine in NumPy and Numba, with every backward pass written by hand.

The public modules mirror Keras 2 so that Keras tutorials run with only their imports changed::

    from tinynet.models import Sequential
    from tinynet.layers import Conv2D, MaxPooling2D, Dropout, Flatten, Activation, Dense
    from tinynet.optimizers import SGD
    from tinynet.utils import to_categorical
    from tinynet.datasets import mnist
"""

from __future__ import annotations

import importlib
from typing import Any

from tinynet import _numba_target

_numba_target.prefer_full_width()  # before anything is compiled: see tinynet._numba_target

from tinynet import (  # noqa: E402  (after the compiler's setting above)
    activations,
    backend,
    callbacks,
    initializers,
    layers,
    losses,
    metrics,
    models,
    optimizers,
    utils,
)

__version__ = "0.1.0"

# Heavier or optional modules load on first use: ``tinynet.datasets``, ``tinynet.plotting``...
_LAZY_MODULES = {
    "applications", "cli", "datasets", "engine", "fileio", "learn", "parallel", "plotting", "report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f"tinynet.{name}")
    raise AttributeError(f"module 'tinynet' has no attribute {name!r}")


__all__ = [
    "activations",
    "backend",
    "callbacks",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "models",
    "optimizers",
    "utils",
    *sorted(_LAZY_MODULES),
]
