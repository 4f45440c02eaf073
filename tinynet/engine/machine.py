"""What the engine needs to know of the CPU it runs on: the size of one core's L2 cache.

The convolution block cuts a batch into slices whose work arrays fit in a core's L2 cache
(:mod:`tinynet.engine.conv_block`). Machines of the same kind differ (an AMD EPYC with 1 MiB of L2 per core, an
Intel Xeon with 1.25 or 2 MiB, a laptop with 256 KiB), and a slice size fitted to one of them spills on another,
so the budget is a fraction of the L2 this machine reports, read once from Linux's ``sysfs``
(``/sys/devices/system/cpu/cpu0/cache/index*/``: ``level``, ``type`` and ``size`` of each cache). Where that is
missing (another OS, a container hiding it), 1 MiB is assumed: the machine the constants were measured on.

``TINYNET_L2_BYTES`` overrides what is read (a positive integer, bytes), to try another budget without code.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

DEFAULT_L2_BYTES = 1 << 20  # an AMD Zen 3/4 core's: the machines the engine was tuned on
_CACHE_ROOT = Path("/sys/devices/system/cpu/cpu0/cache")


def parse_cache_size(text: str) -> int | None:
    """Bytes from a ``sysfs`` size such as ``1024K``, ``2M`` or ``32768``; ``None`` for anything else."""
    text = text.strip().upper()
    factor = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    digits = text[:-1] if text[-1:] in "KMG" else text
    if not digits.isdigit() or len(digits) > 12:
        return None
    size = int(digits) * factor
    return size if size > 0 else None


def read_l2_bytes(root: Path = _CACHE_ROOT) -> int | None:
    """The L2 (unified or data) cache size of the first CPU in bytes, as ``sysfs`` reports it, or ``None``."""
    try:
        entries = sorted(root.glob("index*"))
    except OSError:
        return None
    for entry in entries:
        try:
            level = (entry / "level").read_text().strip()
            kind = (entry / "type").read_text().strip()
            size = (entry / "size").read_text()
        except OSError:
            continue
        if level == "2" and kind in ("Unified", "Data"):
            return parse_cache_size(size)
    return None


@functools.cache
def l2_cache_bytes() -> int:
    """One core's L2 cache in bytes: ``TINYNET_L2_BYTES``, else ``sysfs``, else 1 MiB (read once)."""
    value = os.environ.get("TINYNET_L2_BYTES")
    if value:
        if not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"TINYNET_L2_BYTES must be a positive integer (bytes), got {value!r}")
        return int(value)
    return read_l2_bytes() or DEFAULT_L2_BYTES
