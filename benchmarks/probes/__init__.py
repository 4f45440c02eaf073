"""Scripts the ``coldstart`` and ``memory`` suites run in a fresh Python process, and :func:`run_probe` to run one.

Each probe prints one JSON object on its last line of standard output. Probes import only the standard library
before their first measurement, so that what they measure (imports, compilation, memory) starts from nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _package_root(package: str) -> str | None:
    """The folder that holds ``package`` (found without importing it)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(Path(next(iter(spec.submodule_search_locations))).parent)


def probe_environment(overrides: dict[str, str | None] | None = None) -> dict[str, str]:
    """This process's environment with both tinynet and benchmarks importable, plus ``overrides``
    (a value of ``None`` removes the variable)."""
    environment = dict(os.environ)
    roots = [root for root in (_package_root("benchmarks"), _package_root("tinynet")) if root]
    existing = environment.get("PYTHONPATH")
    environment["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(roots + ([existing] if existing else [])))
    for name, value in (overrides or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return environment


def run_probe(module: str, arguments: list[str] | None = None, overrides: dict[str, str | None] | None = None,
              timeout: float = 900.0) -> dict[str, Any]:
    """Run ``python -m benchmarks.probes.<module>`` and return its JSON, plus ``process_s`` (wall time from
    start to exit, interpreter start-up included)."""
    command = [sys.executable, "-m", f"benchmarks.probes.{module}", *(arguments or [])]
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=probe_environment(overrides),
                               timeout=timeout, check=False)
    elapsed = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"probe {module} exited with code {completed.returncode}:\n{completed.stderr[-2000:]}")
    lines = completed.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"probe {module} printed nothing; stderr:\n{completed.stderr[-2000:]}")
    return json.loads(lines[-1]) | {"process_s": elapsed}
