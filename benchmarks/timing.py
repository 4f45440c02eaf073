"""Timing: warm up, repeat, and summarise with the median.

The median is the figure every table reports: on a shared machine a few repeats land while another process has
the core, and those outliers move the mean a lot and the median hardly at all. The minimum ("best case, nobody
else running") and the interquartile range (how noisy the run was) are kept beside it in the JSON.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """Seconds per call over ``count`` repeats."""

    median: float
    minimum: float
    p25: float
    p75: float
    count: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        if not samples:
            raise ValueError("Summary.of: samples must hold at least one timing, got none")
        ordered = sorted(samples)
        return cls(
            median=statistics.median(ordered),
            minimum=ordered[0],
            p25=_quantile(ordered, 0.25),
            p75=_quantile(ordered, 0.75),
            count=len(ordered),
        )

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median (0.05 means the middle half lies within 5 %)."""
        return (self.p75 - self.p25) / self.median if self.median > 0 else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {"median_s": self.median, "min_s": self.minimum, "p25_s": self.p25, "p75_s": self.p75,
                "repeats": self.count, "relative_iqr": round(self.spread, 4)}


def _quantile(ordered: Sequence[float], fraction: float) -> float:
    """Linear-interpolation quantile of already sorted values."""
    position = fraction * (len(ordered) - 1)
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def time_call(function: Callable[[], object], repeats: int, warmup: int) -> Summary:
    """Run ``function`` ``warmup`` times untimed, then ``repeats`` times timed, one call per sample."""
    if repeats < 1:
        raise ValueError(f"time_call: repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return Summary.of(samples)


class Stopwatch:
    """Collects named samples: ``with watch("conv2d_1 forward"): ...`` adds one sample under that name."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        self._name: str | None = None
        self._start = 0.0

    def __call__(self, name: str) -> Stopwatch:
        self._name = name
        return self

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        elapsed = time.perf_counter() - self._start
        self.samples.setdefault(self._name, []).append(elapsed)

    def summaries(self) -> dict[str, Summary]:
        return {name: Summary.of(samples) for name, samples in self.samples.items()}
