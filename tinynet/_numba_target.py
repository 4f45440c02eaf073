"""The vector width of the engine's compiled loops: all 512 bits on a CPU with AVX-512.

Numba compiles for the host CPU with LLVM's tuning for it, and LLVM tunes Intel's AVX-512 CPUs since Ice Lake
(Rocket Lake, Sapphire Rapids, ...) to *prefer 256-bit vectors*: on them every loop tinynet compiles works on 8
floats at a time where 16 fit. OpenBLAS's products use the full width either way. Measured on a Xeon guest
(CPUID family 6 model 167, which LLVM calls ``rocketlake``), same code, same cache state, A/B:

- the first convolution block's training kernel, 8 images: 90 -> 72 us; its inference kernel 76 -> 67 us;
- the tutorial's batch-32 training step: 3.97 -> 3.59-3.70 ms (three pairs of 500-step runs).

So ``import tinynet`` gives Numba the host's CPU features plus ``-prefer-256-bit`` (:func:`prefer_full_width`),
when the CPU has AVX-512F. It must happen before Numba compiles anything in the process (its target machine is
made once, at the first compilation), which is why it is the one process-wide setting tinynet makes at import
(:mod:`tinynet.engine.startup` makes the others on first use). It changes no number: the loops are element-wise
or sum in a fixed order (no reassociation is allowed), so each value comes from the same operations at either
width; a test compares a training step's bits both ways. Numba's cache keys compiled code by the CPU features,
so code compiled one way is never loaded the other.

Left alone when ``NUMBA_CPU_NAME`` or ``NUMBA_CPU_FEATURES`` is set (the user chose), when
``TINYNET_VECTOR_WIDTH=256``, when Numba has already compiled something in this process, and on CPUs without
AVX-512. User code compiled later in the same process gets the full width too.
"""

from __future__ import annotations

import os

__all__ = ["prefer_full_width", "full_width_features"]

_FEATURE = "-prefer-256-bit"


def full_width_features(host_features: str) -> str | None:
    """The feature string for Numba: ``host_features`` (LLVM's ``+name,-name,...``) with ``-prefer-256-bit``,
    or ``None`` when the host has no AVX-512F (nothing to widen)."""
    features = [feature for feature in host_features.split(",") if feature]
    if "+avx512f" not in features:
        return None
    return ",".join([feature for feature in features if feature.lstrip("+-") != _FEATURE[1:]] + [_FEATURE])


def prefer_full_width() -> bool:
    """Apply the setting (see the module docstring); whether Numba will now compile for the full width."""
    if os.environ.get("TINYNET_VECTOR_WIDTH", "").strip() == "256":
        return False
    if os.environ.get("NUMBA_CPU_NAME") or os.environ.get("NUMBA_CPU_FEATURES"):
        return False
    try:
        import llvmlite.binding as llvm
        from numba.core import config, registry
    except ImportError:  # (numba is a dependency; this keeps import tinynet working without it for the docs)
        return False
    if "_toplevel_target_context" in vars(registry.cpu_target) or getattr(config, "CPU_FEATURES", None):
        return False  # Numba has made its target machine already, or was told its features
    try:
        features = full_width_features(llvm.get_host_cpu_features().flatten())
    except RuntimeError:  # LLVM cannot tell the host's features
        return False
    if features is None:
        return False
    # (read when Numba makes its target machine; the config module sets its attributes at run time)
    config.CPU_FEATURES = features  # type: ignore[attr-defined]
    return True
