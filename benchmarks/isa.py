"""``--isa avx2``: every engine on its AVX2 code paths, on a machine that also has AVX-512.

Machines of this kind differ in their vector units (an AMD Zen 3 guest has AVX2 alone, Zen 4 and Intel's Xeons add
AVX-512), and the engines pick their kernels from what the CPU has. Limiting each engine to AVX2 on an AVX-512
machine shows what an AVX2 machine's code paths do, with the same clock, caches and memory for all of them. It
is a stand-in, not the other machine: its cores, caches and clock are still this one's.

Each library reads its limit from the environment when it loads, so the variables are set before NumPy loads
(``python -m benchmarks`` sets them first thing; ``tinynet bench`` has NumPy loaded already and refuses):

- OpenBLAS (NumPy's, and tinynet's products): ``OPENBLAS_CORETYPE=Haswell``, its AVX2 + FMA kernels;
- Numba (tinynet's own kernels): ``NUMBA_CPU_NAME=haswell`` (so :mod:`tinynet._numba_target` leaves it alone);
- PyTorch: ``ONEDNN_MAX_CPU_ISA=AVX2`` (its convolutions) and ``MKL_ENABLE_INSTRUCTIONS=AVX2`` (its matrix
  products). Its element-wise kernels keep AVX-512: ``ATEN_CPU_CAPABILITY=avx2`` made ``torch.compile``'s
  generated code fail an index check and abort the process (PyTorch 2.13, Xeon guest);
- JAX: ``--xla_cpu_max_isa=AVX2`` added to ``XLA_FLAGS``;
- ONNX Runtime: no switch exists (its MLAS kernels choose at run time); it keeps AVX-512, which favours it.

So every peer keeps at least the AVX2 paths, and some keep more: the comparison leans against tinynet.
"""

from __future__ import annotations

import os
import sys

__all__ = ["CHOICES", "ISA_ENVIRONMENT", "NATIVE", "limit_code_paths", "describe_limit"]

CHOICES = ("native", "avx2")

ISA_ENVIRONMENT = {
    "avx2": {
        "OPENBLAS_CORETYPE": "Haswell",
        "NUMBA_CPU_NAME": "haswell",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    },
}
"""The variables set for each limited instruction set (``XLA_FLAGS`` is added to, not replaced)."""

_XLA_FLAGS = {"avx2": "--xla_cpu_max_isa=AVX2"}

# What a report says of a run whose engines used what the CPU has.
NATIVE = "native (each engine uses what the CPU has)"

# What each limit leaves out, said in every report that used it.
_CAVEATS = {"avx2": "ONNX Runtime and PyTorch's element-wise kernels keep AVX-512 (no switch that works)"}


def limit_code_paths(isa: str, cpu_flags: set[str] | None = None) -> None:
    """Set the environment that limits every engine to ``isa``'s code paths (``native``: change nothing).

    Raises ValueError for an unknown ``isa``, for a CPU without it (``cpu_flags``, as ``/proc/cpuinfo`` lists
    them; not checked when ``None``), and when NumPy is already loaded (its OpenBLAS has chosen its kernels)."""
    if isa not in CHOICES:
        raise ValueError(f"--isa must be one of {', '.join(CHOICES)}, got {isa!r}")
    if isa == "native":
        return
    if cpu_flags is not None and not {"avx2", "fma"} <= cpu_flags:
        raise ValueError(f"--isa {isa}: this CPU has no AVX2 and FMA, so there is nothing to limit")
    if "numpy" in sys.modules:
        raise ValueError(f"--isa {isa} must be set before NumPy loads: run python -m benchmarks, not tinynet bench")
    os.environ.update(ISA_ENVIRONMENT[isa])
    flags = os.environ.get("XLA_FLAGS", "")
    if _XLA_FLAGS[isa] not in flags.split():
        os.environ["XLA_FLAGS"] = f"{flags} {_XLA_FLAGS[isa]}".strip()
    os.environ["TINYNET_BENCH_ISA"] = isa  # for the report, and the subprocesses' reports


def describe_limit() -> str | None:
    """What the run's code paths were limited to, for the report (``None``: the engines chose freely)."""
    isa = os.environ.get("TINYNET_BENCH_ISA", "native")
    return f"{isa.upper()} code paths only (--isa {isa}); {_CAVEATS[isa]}" if isa in _CAVEATS else None
