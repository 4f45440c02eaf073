"""The environment block every report carries: machine, library versions, BLAS, threads and load.

A benchmark number means little without the machine it came from, and this machine is shared: the load average
is recorded at the start and end of every suite so a reader can tell a slow run from a busy machine.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks import isa, threads

# CPU features that decide which BLAS kernels run (AVX2/FMA: 8 float32 per instruction; AVX-512: 16).
_INTERESTING_CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")


def _cpuinfo() -> tuple[str | None, int | None, set[str] | None]:
    """Model name, cores per socket and flags of the first CPU in ``/proc/cpuinfo`` (``None`` for what is not
    there, everything ``None`` where the file cannot be read)."""
    model, physical_cores, flags = None, None, None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name" and model is None:
                model = value
            elif key == "cpu cores" and physical_cores is None:
                physical_cores = int(value)
            elif key == "flags" and flags is None:
                flags = set(value.split())
    except OSError:
        pass
    return model, physical_cores, flags


def cpu_flags() -> set[str] | None:
    """The CPU's flags as ``/proc/cpuinfo`` lists them, or ``None`` where it cannot be read."""
    return _cpuinfo()[2]


def cpu_description() -> dict[str, Any]:
    """CPU model, core counts and vector extensions, from ``/proc/cpuinfo`` (falls back to ``platform``)."""
    model, physical_cores, flags = _cpuinfo()
    model = model or platform.processor() or platform.machine()
    flags = flags or set()
    usable: int | None  # os.cpu_count() may not know
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "model": model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "physical_cores_per_socket": physical_cores,
        "vector_extensions": [flag for flag in _INTERESTING_CPU_FLAGS if flag in flags],
        "caches": cpu_caches(),
    }


_CACHE_FOLDER = Path("/sys/devices/system/cpu/cpu0/cache")


def cpu_caches(folder: Path = _CACHE_FOLDER) -> list[dict[str, Any]]:
    """The caches CPU 0 sees, from ``/sys/devices/system/cpu/cpu0/cache/index*/``: level, type (Data,
    Instruction, Unified), size in KiB and how many CPUs share it (1: private to the core). Empty when the
    kernel does not expose them.

    Cache sizes decide how a kernel should block its work (tinynet's convolution slices are sized to stay in
    L2), so a figure without them cannot be compared across machines.
    """
    caches = []
    for index in sorted(folder.glob("index*")):
        try:
            fields = {name: (index / name).read_text().strip() for name in ("level", "type", "size")}
            shared = (index / "shared_cpu_list").read_text().strip() if (index / "shared_cpu_list").exists() else ""
        except OSError:
            continue
        caches.append({"level": int(fields["level"]), "type": fields["type"], "size_kib": _kibibytes(fields["size"]),
                       "shared_by_cpus": _count_cpus(shared) if shared else None})
    return caches


def _kibibytes(size: str) -> int | None:
    """``"32K"`` -> 32, ``"1M"`` -> 1024 (sysfs's spelling, read by the engine's own
    :func:`tinynet.engine.machine.parse_cache_size`); ``None`` when unreadable."""
    from tinynet.engine.machine import parse_cache_size  # here: importing tinynet loads NumPy (see benchmarks.cli)

    size_bytes = parse_cache_size(size)
    return None if size_bytes is None else size_bytes // 1024


def _count_cpus(cpu_list: str) -> int:
    """The number of CPUs in a sysfs CPU list such as ``"0-3,8"``."""
    count = 0
    for part in cpu_list.split(","):
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


def cache_summary(caches: list[dict[str, Any]]) -> str:
    """``L1d 32 KiB, L2 1024 KiB per core, L3 32768 KiB shared by 2 CPUs`` (instruction caches left out)."""
    parts = []
    for cache in caches:
        if cache["type"] == "Instruction":
            continue
        name = f"L{cache['level']}" + ("d" if cache["type"] == "Data" else "")
        shared = cache["shared_by_cpus"]
        where = " per core" if shared == 1 else f" shared by {shared} CPUs" if shared else ""
        parts.append(f"{name} {cache['size_kib']} KiB{where}")
    return ", ".join(parts) or "cache sizes not exposed"


def package_version(name: str) -> str | None:
    """The installed version of ``name`` without importing it (importing torch would load its OpenMP)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def numpy_blas() -> dict[str, Any]:
    """What NumPy was built against (``numpy.show_config``) and what is loaded now (OpenBLAS's C API)."""
    import numpy as np

    build: dict[str, Any] = {}
    try:
        config = np.show_config(mode="dicts")
        blas = config.get("Build Dependencies", {}).get("blas", {})
        build = {key: blas.get(key) for key in ("name", "version", "openblas configuration") if key in blas}
    except (TypeError, ValueError, AttributeError):
        pass  # NumPy 1.x has no mode="dicts"; the runtime probe below still answers
    return {"build": build, "runtime": threads.openblas_info()}


def tinynet_source() -> dict[str, Any]:
    """Where tinynet is imported from and, in a git checkout, its commit and whether the engine has
    uncommitted changes (numbers belong to a version of the engine)."""
    spec = importlib.util.find_spec("tinynet")
    if spec is None or not spec.submodule_search_locations:
        return {"path": None}
    package = Path(next(iter(spec.submodule_search_locations)))
    source: dict[str, Any] = {"path": str(package)}
    try:
        commit = subprocess.run(["git", "-C", str(package), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        changes = subprocess.run(["git", "-C", str(package), "status", "--porcelain", "--", "."],
                                 capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return source  # not a git checkout, or no git: an installed copy
    return source | {"git_commit": commit, "uncommitted_engine_changes": bool(changes.strip())}


def load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages (runnable processes); compare with the number of usable CPUs."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def describe_environment() -> dict[str, Any]:
    """The full environment block. Imports NumPy and Numba (tinynet needs both anyway) but never torch."""
    import numba  # noqa: F401  (so its thread settings can be read)
    import numpy  # noqa: F401

    return {
        "cpu": cpu_description(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {name: package_version(name)
                     for name in ("tinynet", "numpy", "numba", "torch", "jax", "onnxruntime", "matplotlib")},
        "tinynet_source": tinynet_source(),
        "blas": numpy_blas(),
        "threads": threads.thread_settings(),
        "load_average": load_average(),
        "code_paths": isa.describe_limit() or isa.NATIVE,
    }


def environment_lines(environment: dict[str, Any]) -> list[str]:
    """The environment block as a few human-readable lines, printed above the tables."""
    cpu = environment["cpu"]
    versions = environment["versions"]
    blas_build = environment["blas"]["build"]
    runtime = environment["blas"]["runtime"]
    core = runtime[0].get("corename") if runtime else None
    thread_info = environment["threads"]
    env = thread_info["environment"]
    source = environment["tinynet_source"]
    engine = source.get("git_commit", "not a git checkout") + (
        " with uncommitted engine changes" if source.get("uncommitted_engine_changes") else "")
    return [
        f"tinynet: {source['path']} ({engine})",
        f"CPU: {cpu['model']} ({cpu['usable_cpus']} usable of {cpu['logical_cpus']} logical CPUs; "
        f"{', '.join(cpu['vector_extensions']) or 'no vector flags found'})",
        f"Caches: {cache_summary(cpu.get('caches', []))}",
        f"Python {environment['python']}, numpy {versions['numpy']}, numba {versions['numba']}, "
        f"torch {versions['torch'] or 'not installed'}",
        f"BLAS: {blas_build.get('name', '?')} {blas_build.get('version', '')}"
        f"{f' (kernels: {core})' if core else ''}, {thread_info['openblas_threads']} threads",
        f"Threads: OMP_NUM_THREADS={env['OMP_NUM_THREADS']} OPENBLAS_NUM_THREADS={env['OPENBLAS_NUM_THREADS']} "
        f"NUMBA_NUM_THREADS={env['NUMBA_NUM_THREADS']} NUMBA_THREADING_LAYER={env['NUMBA_THREADING_LAYER']}; "
        f"Numba layer in use: {thread_info['numba_threading_layer']}",
        f"Load average (1/5/15 min): {environment['load_average']}",
    ] + ([f"Code paths: {environment['code_paths']}"] if environment["code_paths"] != isa.NATIVE else [])
