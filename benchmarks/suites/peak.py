"""``peak``: this machine's float32 matrix-multiply (sgemm) throughput through NumPy, the "% of peak" denominator.

For each square size ``n`` the product ``A @ B`` of two float32 ``n x n`` matrices costs ``2 n^3`` FLOPs (a
multiply-add per term of every dot product). The best of several calls is kept per size, and the best size is
the peak: a BLAS reaches its peak on large, well-shaped products, so this is the ceiling a GEMM-based layer
can approach on this machine with the same threads, not the CPU's datasheet figure.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks import threads
from benchmarks.context import RunContext, Settings
from benchmarks.report import format_table


def sgemm_gflops(size: int, repeats: int, seed: int = 0) -> dict[str, Any]:
    """Best and median GFLOP/s of ``A @ B`` for float32 ``size x size`` matrices (one untimed warm-up call)."""
    generator = np.random.default_rng(seed)
    a = generator.random((size, size), dtype=np.float32)
    b = generator.random((size, size), dtype=np.float32)
    out = np.empty((size, size), dtype=np.float32)
    np.matmul(a, b, out=out)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        seconds.append(time.perf_counter() - start)
    flops = 2 * size**3
    seconds.sort()
    return {"size": size, "flops": flops, "best_s": seconds[0], "median_s": seconds[len(seconds) // 2],
            "best_gflops": flops / seconds[0] / 1e9, "median_gflops": flops / seconds[len(seconds) // 2] / 1e9}


def measure_peak(settings: Settings) -> dict[str, Any]:
    """The sgemm peak over ``settings.peak_sizes``, with the BLAS thread count it was measured with."""
    rows = [sgemm_gflops(size, settings.peak_repeats) for size in settings.peak_sizes]
    best = max(rows, key=lambda row: row["best_gflops"])
    return {"peak_gflops": best["best_gflops"], "peak_size": best["size"], "blas_threads": threads.blas_threads(),
            "sizes": rows}


def run(context: RunContext) -> dict[str, Any]:
    context.peak = measure_peak(context.settings)
    result = context.peak
    print(format_table(
        ["sgemm n x n", "best ms", "median ms", "best GFLOP/s", "median GFLOP/s"],
        [[f"{row['size']}", row["best_s"] * 1e3, row["median_s"] * 1e3, row["best_gflops"], row["median_gflops"]]
         for row in result["sizes"]],
        title=f"peak: float32 sgemm via numpy.matmul, {result['blas_threads']} BLAS threads",
    ))
    print(f"peak = {result['peak_gflops']:.1f} GFLOP/s (n = {result['peak_size']}); "
          "the denominator of every '% of peak' in this run")
    return result
