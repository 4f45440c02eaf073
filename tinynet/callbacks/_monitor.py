"""Private helpers the callbacks share: the figure they watch (``monitor``, ``mode``) and finite-number checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def monitor_operation(mode: str, monitor: str, owner: str) -> Callable[[float, float], bool]:
    """``np.less`` or ``np.greater``: Keras's 'auto' picks 'max' for accuracies and 'min' for everything else."""
    if not isinstance(mode, str) or mode not in ("auto", "min", "max"):
        raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "max" or (mode == "auto" and ("acc" in monitor or monitor.startswith("fmeasure"))):
        return np.greater
    return np.less


def check_monitor(monitor: Any, owner: str) -> str:
    if not isinstance(monitor, str) or not monitor:
        raise TypeError(f"{owner}: monitor must be the name of a logged figure such as 'val_loss', got {monitor!r}")
    return monitor


def is_finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return False
    return bool(np.isfinite(value))
