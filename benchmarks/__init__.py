"""tinynet's CPU benchmark suite: ``python -m benchmarks [suite ...] [--quick] [--json PATH] [--threads N]``.

Suites (see docs/performance.md for what every number means):

* ``peak``      float32 sgemm GFLOP/s through numpy.matmul, the "% of peak" denominator
* ``layers``    forward/backward time, FLOPs, GFLOP/s and % of peak of each layer of the tutorial CNN
* ``step``      train_on_batch and predict_on_batch throughput, and each layer's share of a training step
* ``torch``     the same step measurements for a PyTorch port, interleaved with tinynet (skipped without torch)
* ``peers``     tinynet against PyTorch eager / channels_last / torch.compile, a jitted JAX step and ONNX Runtime,
                interleaved in one process, with issue 15's targets checked (each peer optional)
* ``coldstart`` import + build + first step in a fresh process, Numba cache warm and empty
* ``memory``    peak RSS of a training epoch over 60,000 images

Only tinynet's public API is used. Importing this package imports nothing heavy, so that ``main`` can set the
thread environment before NumPy loads.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Run the suites named in ``argv`` (default: all); returns the process exit code (0 when all succeeded)."""
    from benchmarks.cli import main as cli_main

    return cli_main(argv)


__all__ = ["main"]
