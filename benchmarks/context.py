"""What every suite of one run shares: the settings, the output folder and the sgemm peak.

The peak is the denominator of every "% of peak", so it is measured once per run, in the same process and under
the same load as the numbers divided by it; a suite that needs it and runs without ``peak`` measures it then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    """Repeat counts and sizes; :meth:`for_mode` gives the full or the ``--quick`` set, :meth:`smoke` a tiny one."""

    mode: str  # "full", "quick" or "smoke"
    peak_sizes: tuple[int, ...]
    peak_repeats: int
    layer_batches: tuple[int, ...]
    layer_repeats: int
    layer_warmup: int
    train_batches: tuple[int, ...]
    inference_batches: tuple[int, ...]
    step_repeats: int
    step_warmup: int
    profile_repeats: int
    torch_rounds: int
    torch_repeats_per_round: int
    coldstart_runs: int
    memory_images: int
    memory_max_steps: int | None  # None: a whole epoch
    memory_validation_images: int

    @classmethod
    def for_mode(cls, quick: bool) -> Settings:
        if quick:
            return cls(
                mode="quick", peak_sizes=(1024, 2048), peak_repeats=6,
                layer_batches=(32, 256), layer_repeats=7, layer_warmup=2,
                train_batches=(32, 128), inference_batches=(1, 100, 500, 1000),
                step_repeats=9, step_warmup=2, profile_repeats=9,
                torch_rounds=3, torch_repeats_per_round=3,
                coldstart_runs=1,
                memory_images=60000, memory_max_steps=300, memory_validation_images=0,
            )
        return cls(
            mode="full", peak_sizes=(1024, 1536, 2048), peak_repeats=12,
            layer_batches=(32, 256), layer_repeats=31, layer_warmup=3,
            train_batches=(32, 128), inference_batches=(1, 100, 500, 1000),
            step_repeats=41, step_warmup=5, profile_repeats=31,
            torch_rounds=7, torch_repeats_per_round=5,
            coldstart_runs=3,
            memory_images=60000, memory_max_steps=None, memory_validation_images=10000,
        )

    @property
    def quick(self) -> bool:
        return self.mode != "full"

    @classmethod
    def smoke(cls) -> Settings:
        """The smallest settings that still run every code path (``--smoke``, the tests): numbers meaningless."""
        return cls(
            mode="smoke", peak_sizes=(128,), peak_repeats=1,
            layer_batches=(2,), layer_repeats=1, layer_warmup=0,
            train_batches=(2,), inference_batches=(1, 3), step_repeats=1, step_warmup=0, profile_repeats=1,
            torch_rounds=1, torch_repeats_per_round=1, coldstart_runs=1,
            memory_images=64, memory_max_steps=2, memory_validation_images=0,
        )


@dataclass
class RunContext:
    """Settings, output folder, thread count and command line of one run, plus results shared between suites."""

    settings: Settings
    output_dir: Path
    threads: int
    command: str
    charts: bool = True
    peak: dict[str, Any] | None = None
    results: dict[str, Any] = field(default_factory=dict)

    def peak_gflops(self) -> float:
        """The run's sgemm peak in GFLOP/s, measuring it now if the ``peak`` suite has not run yet."""
        if self.peak is None:
            from benchmarks.suites import peak

            self.peak = peak.measure_peak(self.settings)
        return float(self.peak["peak_gflops"])

    def percent_of_peak(self, gflops: float | None) -> float | None:
        if gflops is None:
            return None
        return 100.0 * gflops / self.peak_gflops()
