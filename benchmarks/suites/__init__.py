"""The suites, in the order a run executes them.

Each module has ``run(context) -> dict``: it prints its tables and returns what goes into its JSON. ``torch``
comes after every other in-process suite because importing PyTorch loads its own OpenMP runtime and MKL into
the process; ``coldstart``, ``memory`` and ``distributed`` (under mpiexec) run in subprocesses and are
unaffected. ``onnxruntime`` (inference against ONNX Runtime running tinynet's exported graph) comes just before it.
``peers`` (tinynet against PyTorch eager, channels-last and compiled, JAX and ONNX Runtime) comes last of all: it
imports PyTorch too, and JAX, whose XLA runtime and thread pool stay in the process, and whose thread limit only
takes effect if nothing imported JAX before (see :mod:`benchmarks.suites.peers`).
"""

from __future__ import annotations

import importlib
from types import ModuleType

SUITE_MODULES = {
    "peak": "benchmarks.suites.peak",
    "layers": "benchmarks.suites.layers",
    "step": "benchmarks.suites.step",
    "contention": "benchmarks.suites.contention",
    "coldstart": "benchmarks.suites.coldstart",
    "memory": "benchmarks.suites.memory",
    "onnxruntime": "benchmarks.suites.onnxruntime_compare",
    "distributed": "benchmarks.suites.distributed",
    "torch": "benchmarks.suites.torch_compare",
    "peers": "benchmarks.suites.peers",
}
"""Suite name -> module, in execution order."""

SUITE_NAMES = tuple(SUITE_MODULES)


def load(name: str) -> ModuleType:
    """The module of suite ``name``."""
    if name not in SUITE_MODULES:
        raise ValueError(f"unknown suite {name!r}; expected one of {', '.join(SUITE_NAMES)} or 'all'")
    return importlib.import_module(SUITE_MODULES[name])
