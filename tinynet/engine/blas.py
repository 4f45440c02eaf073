"""The BLAS under NumPy's matrix products: find the OpenBLAS loaded in this process, read and set its threads.

Why tinynet touches it: OpenBLAS runs its own worker threads, and after each multithreaded call they keep
spinning for a while in case another call follows. The engine spreads its own work over threads
(:mod:`tinynet.engine.threads`); a spinning OpenBLAS worker then takes the core one of them needs, and on a 2-core
machine that doubles the time of everything running beside it (measured: a pair of single-threaded products
ran in 6.9 ms after idle and in 14.2 ms right after one 2-thread product). So while tinynet computes
(:func:`single_threaded`), it asks OpenBLAS for one thread and splits the products itself. That also fixes the
bits: OpenBLAS rounds a product differently with another thread count, and a seeded run must give the same
numbers on any machine, with the engine on or off.

OpenBLAS builds export their C API under different names (the plain ``openblas_*``, the 64-bit-integer ``*64_``,
NumPy's wheels' ``scipy_openblas*``); the library is found among the shared objects mapped into this process, as
threadpoolctl does, so nothing beyond the standard library is needed. With another BLAS (MKL, Accelerate...)
:func:`controllable` is ``False`` and tinynet leaves threading to that BLAS.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_OPENBLAS_PREFIXES = ("scipy_openblas", "openblas")
_OPENBLAS_SUFFIXES = ("64_", "")


def _mapped_libraries(fragment: str) -> list[str]:
    """Paths of the shared libraries mapped into this process whose file name contains ``fragment``."""
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return []
    paths = {line.split()[-1] for line in lines if len(line.split()) >= 6}
    return sorted(path for path in paths if fragment in Path(path).name.lower() and ".so" in Path(path).name)


def _openblas_function(library: ctypes.CDLL, name: str) -> Any:
    for prefix in _OPENBLAS_PREFIXES:
        for suffix in _OPENBLAS_SUFFIXES:
            function = getattr(library, f"{prefix}_{name}{suffix}", None)
            if function is not None:
                return function
    return None


def openblas_libraries() -> list[tuple[str, ctypes.CDLL]]:
    """``(path, handle)`` of every OpenBLAS mapped into this process (NumPy must be imported first)."""
    libraries = []
    for path in _mapped_libraries("openblas"):
        try:
            libraries.append((path, ctypes.CDLL(path)))
        except OSError:
            continue
    return libraries


def openblas_info() -> list[dict[str, Any]]:
    """Each OpenBLAS loaded in this process: path, version/config string, CPU kernel set and thread count."""
    found = []
    for path, library in openblas_libraries():
        entry: dict[str, Any] = {"library": path}
        for key, name in (("config", "get_config"), ("corename", "get_corename")):
            function = _openblas_function(library, name)
            if function is not None:
                function.restype = ctypes.c_char_p
                entry[key] = function().decode(errors="replace").strip()
        get_threads = _openblas_function(library, "get_num_threads")
        if get_threads is not None:
            get_threads.restype = ctypes.c_int
            entry["num_threads"] = int(get_threads())
        found.append(entry)
    return found


@functools.cache
def _thread_functions() -> tuple[tuple[Any, Any], ...]:
    """``(get_num_threads, set_num_threads)`` of each OpenBLAS in the process, looked up once."""
    import numpy  # noqa: F401  (loads the BLAS NumPy was built with, so that it is mapped)

    pairs = []
    for _, library in openblas_libraries():
        get_threads = _openblas_function(library, "get_num_threads")
        set_threads = _openblas_function(library, "set_num_threads")
        if get_threads is not None and set_threads is not None:
            get_threads.restype = ctypes.c_int
            set_threads.argtypes = [ctypes.c_int]
            pairs.append((get_threads, set_threads))
    return tuple(pairs)


def controllable() -> bool:
    """Whether this process's BLAS is an OpenBLAS whose thread count tinynet can read and set."""
    return bool(_thread_functions())


def get_threads() -> int | None:
    """The thread count of the (first) OpenBLAS in this process, or ``None`` when there is none."""
    functions = _thread_functions()
    return int(functions[0][0]()) if functions else None


def set_threads(threads: int) -> bool:
    """Set every OpenBLAS in this process to ``threads`` threads; ``False`` if none was found."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"blas.set_threads: threads must be a positive int, got {threads!r}")
    for _, set_function in _thread_functions():
        set_function(threads)
    return controllable()


_scope_lock = threading.Lock()
_scope_depth = 0
_saved_threads: int | None = None


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """While inside, OpenBLAS runs single-threaded; its thread count is restored on exit.

    Re-entrant and cheap (two C calls at the outermost level). A model holds it around a whole training step
    or prediction, with the engine on or off: so that no multithreaded product leaves OpenBLAS workers spinning
    on the cores the engine's threads need, and so that every product rounds the same way whatever the
    machine's core count. Without a controllable OpenBLAS it does nothing.
    """
    global _scope_depth, _saved_threads
    if not controllable():
        yield
        return
    with _scope_lock:
        if _scope_depth == 0:
            _saved_threads = get_threads()
            set_threads(1)
        _scope_depth += 1
    try:
        yield
    finally:
        with _scope_lock:
            _scope_depth -= 1
            if _scope_depth == 0 and _saved_threads is not None:
                set_threads(_saved_threads)


def forget_scope_after_fork() -> None:
    """In a child made by ``fork``: a new lock (a parent's thread may have held the old one), no open scope."""
    global _scope_lock, _scope_depth
    _scope_lock, _scope_depth = threading.Lock(), 0


# cblas_sgemm / cblas_dgemm with 64-bit integers (NumPy's own wheels build OpenBLAS that way), as compiled code calls
# them: the matrices' addresses declared as 64-bit integers, which the C calling convention passes as it passes
# pointers.
_ENUM, _INT, _ADDRESS = ctypes.c_int, ctypes.c_int64, ctypes.c_int64
_SGEMM_PROTOTYPE = ctypes.CFUNCTYPE(None, _ENUM, _ENUM, _ENUM, _INT, _INT, _INT, ctypes.c_float, _ADDRESS, _INT,
                                    _ADDRESS, _INT, ctypes.c_float, _ADDRESS, _INT)
_DGEMM_PROTOTYPE = ctypes.CFUNCTYPE(None, _ENUM, _ENUM, _ENUM, _INT, _INT, _INT, ctypes.c_double, _ADDRESS, _INT,
                                    _ADDRESS, _INT, ctypes.c_double, _ADDRESS, _INT)


@functools.cache
def gemm_functions() -> tuple[Any, Any] | None:
    """``(cblas_sgemm, cblas_dgemm)`` of the OpenBLAS NumPy uses, as ctypes function pointers that compiled code
    can call without the GIL (:mod:`tinynet.engine.winograd_slices`); ``None`` unless this process's BLAS is an
    OpenBLAS with the 64-bit integer interface (NumPy's wheels: ``scipy_cblas_sgemm64_``). A product made through
    them is the very call ``numpy.matmul`` makes for it, and rounds the same."""
    if not controllable():
        return None
    for _, library in openblas_libraries():
        for prefix in ("scipy_", ""):
            single = getattr(library, f"{prefix}cblas_sgemm64_", None)
            double = getattr(library, f"{prefix}cblas_dgemm64_", None)
            if single is None or double is None:
                continue
            single_address = ctypes.cast(single, ctypes.c_void_p).value
            double_address = ctypes.cast(double, ctypes.c_void_p).value
            if single_address and double_address:
                return _SGEMM_PROTOTYPE(single_address), _DGEMM_PROTOTYPE(double_address)
    return None
