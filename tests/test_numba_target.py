"""tinynet._numba_target: Numba compiles the engine's loops for the full vector width of an AVX-512 CPU, and
that changes no number."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinynet import _numba_target

ROOT = Path(__file__).parent.parent


def test_the_features_gain_the_full_width_only_with_avx512():
    assert _numba_target.full_width_features("+sse2,+avx2,+fma") is None
    assert _numba_target.full_width_features("+avx2,-avx512f") is None
    widened = _numba_target.full_width_features("+sse2,+avx512f,,+prefer-256-bit,+avx512bw")
    assert widened is not None
    assert widened.split(",") == ["+sse2", "+avx512f", "+avx512bw", "-prefer-256-bit"]


def _numba_features(environment: dict[str, str]) -> str:
    script = ("import tinynet, numba.core.registry as r\n"
              "print(r.cpu_target.target_context._internal_codegen._tm_features)\n")
    result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _environment(**changes: str | None) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "TINYNET_VECTOR_WIDTH")}
    environment["PYTHONPATH"] = str(ROOT) + os.pathsep + environment.get("PYTHONPATH", "")
    environment.update({key: value for key, value in changes.items() if value is not None})
    return environment


def _host_has_avx512() -> bool:
    import llvmlite.binding as llvm

    return _numba_target.full_width_features(llvm.get_host_cpu_features().flatten()) is not None


def test_import_widens_numba_unless_told_not_to():
    by_default = _numba_features(_environment())
    assert by_default.endswith(",-prefer-256-bit") == _host_has_avx512()
    for told in (dict(TINYNET_VECTOR_WIDTH="256"), dict(NUMBA_CPU_NAME="generic")):
        assert "-prefer-256-bit" not in _numba_features(_environment(**told)), told


_STEPS = """
import sys
import numpy as np
from tinynet.applications import mnist_cnn
from tinynet.optimizers import SGD
from tinynet.utils import set_random_seed
set_random_seed(3)
model = mnist_cnn()
model.compile(SGD(lr=0.05, momentum=0.9, nesterov=True), "categorical_crossentropy", metrics=["accuracy"])
rng = np.random.default_rng(0)
x = rng.random((13, 28, 28, 1), dtype=np.float32)
y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 13)]
for _ in range(2):
    model.train_step(x, y)
np.savez(sys.argv[1], *model.get_weights(), model.predict(x, batch_size=13))
"""


def test_a_training_step_has_the_same_bits_at_either_vector_width(tmp_path):
    if not _host_has_avx512():
        pytest.skip("no AVX-512 here: Numba compiles for one width only")
    runs = {}
    for width in ("512", "256"):
        out = tmp_path / f"{width}.npz"
        result = subprocess.run([sys.executable, "-c", _STEPS, str(out)], env=_environment(TINYNET_VECTOR_WIDTH=width),
                                capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        runs[width] = np.load(out)
    assert runs["512"].files == runs["256"].files
    for key in runs["512"].files:
        np.testing.assert_array_equal(runs["512"][key], runs["256"][key], err_msg=key)
