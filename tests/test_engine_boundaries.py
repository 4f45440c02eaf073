"""Where the engine wing ends: layers and kernels never import it, it imports nothing in a circle, importing
tinynet changes nothing in the process, the engine's stand-ins compute the layers' bits, and stages keep their
buffers to themselves."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinynet import engine
from tinynet.engine import blas
from tinynet.engine.conv import ThreadedConv2D
from tinynet.engine.dense import ThreadedDense
from tinynet.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from tinynet.models import Sequential, passes
from tinynet.optimizers import SGD
from tinynet.utils import set_random_seed, to_categorical

PACKAGE = Path(__file__).resolve().parents[1] / "tinynet"


def _imported_modules(path: Path) -> set[str]:
    """The absolute names of the modules a source file imports (relative imports resolved)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _modules_under(folder: str) -> dict[Path, set[str]]:
    return {path: _imported_modules(path) for path in sorted((PACKAGE / folder).rglob("*.py"))}


def test_layers_know_nothing_of_the_engine():
    forbidden = ("tinynet.engine", "tinynet.parallel", "tinynet.fusion", "tinynet.conv_block", "tinynet.blas")
    for path, names in _modules_under("layers").items():
        bad = sorted(name for name in names if name.startswith(forbidden))
        assert not bad, f"{path.name} imports {bad}"


def test_kernels_import_nothing_of_tinynet_above_them():
    for path, names in _modules_under("kernels").items():
        bad = sorted(name for name in names if name.startswith("tinynet") and not name.startswith("tinynet.kernels"))
        assert not bad, f"{path.name} imports {bad}"


def test_engine_modules_import_each_other_without_a_cycle():
    modules = {".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): names
               for path, names in _modules_under("engine").items()}
    edges = {module: {name for name in names if name in modules and name != module and name != "tinynet.engine"}
             for module, names in modules.items()}
    visiting, done = set(), set()

    def visit(module: str, trail: list[str]) -> None:
        if module in done:
            return
        assert module not in visiting, f"import cycle: {' -> '.join([*trail, module])}"
        visiting.add(module)
        for other in sorted(edges[module]):
            visit(other, [*trail, module])
        visiting.discard(module)
        done.add(module)

    assert "tinynet.engine.planner" in edges and edges["tinynet.engine.planner"]
    for module in sorted(edges):
        visit(module, [])


_PROCESS_PROBE = r"""
import ctypes, json, os, sys, threading
calls = {"mallopt": 0, "register_at_fork": []}
real_register = os.register_at_fork
def register_at_fork(**handlers):
    calls["register_at_fork"] += [f.__module__ for f in handlers.values()]
    real_register(**handlers)
os.register_at_fork = register_at_fork
class RecordingCDLL(ctypes.CDLL):
    def __getattr__(self, name):
        if name == "mallopt":
            calls["mallopt"] += 1
        return super().__getattr__(name)
ctypes.CDLL = RecordingCDLL
import numpy as np
import tinynet, tinynet.layers, tinynet.models, tinynet.engine, tinynet.parallel, tinynet.optimizers
def snapshot():
    handlers = [module for module in calls["register_at_fork"] if module.startswith("tinynet")]
    return {"mallopt": calls["mallopt"], "fork_handlers": handlers,
            "threads": sorted(t.name for t in threading.enumerate() if t.name.startswith("tinynet"))}
report = {"import": snapshot()}
from tinynet.layers import Dense
from tinynet.models import Sequential
from tinynet.engine import threads
threads.set_num_threads(2)
model = Sequential([Dense(256, input_shape=(512,))])
x = np.ones((64, 512), np.float32)
model.fuse = False
model.predict(x, verbose=0)
report["unfused"] = snapshot()
model.fuse = True
model.predict(x, verbose=0)
report["fused"] = snapshot()
report["controllable"] = tinynet.engine.blas.controllable()
print(json.dumps(report))
"""


def test_importing_tinynet_changes_nothing_in_the_process_and_the_engine_starts_on_first_use(tmp_path):
    environment = {"PYTHONPATH": str(PACKAGE.parent), "PATH": "/usr/bin:/bin"}
    environment.update({name: os.environ[name] for name in ("NUMBA_CACHE_DIR", "HOME") if name in os.environ})
    result = subprocess.run([sys.executable, "-c", _PROCESS_PROBE], capture_output=True, text=True, timeout=300,
                            env=environment, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["import"] == {"mallopt": 0, "fork_handlers": [], "threads": []}
    assert report["unfused"] == {"mallopt": 0, "fork_handlers": [], "threads": []}  # the layers' code only
    if sys.platform.startswith("linux"):
        assert report["fused"]["mallopt"] >= 1
    if report["controllable"]:
        assert report["fused"]["fork_handlers"] == ["tinynet.engine.threads"]
        assert report["fused"]["threads"] == ["tinynet-worker-1"]


def test_allocator_tuning_is_applied_on_linux_and_can_be_refused(monkeypatch):
    from tinynet.engine import allocator

    monkeypatch.setenv("TINYNET_KEEP_MALLOC", "1")
    assert allocator.tune_allocator() is False
    monkeypatch.delenv("TINYNET_KEEP_MALLOC")
    if sys.platform.startswith("linux"):
        assert allocator.tune_allocator() is True


@pytest.mark.parametrize("layer_and_input", [
    (lambda: Dense(512, activation="relu", input_shape=(800,)), (32, 800)),     # cut by columns
    (lambda: Dense(16, activation="tanh", input_shape=(300,)), (700, 300)),     # cut by rows
    (lambda: Conv2D(32, 3, activation="relu", padding="same", input_shape=(14, 14, 8)), (16, 14, 14, 8)),
], ids=["dense-wide", "dense-tall", "conv"])
def test_threaded_stand_ins_compute_the_layers_bits(layer_and_input, two_threads):
    make_layer, shape = layer_and_input
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    layer, twin = make_layer(), make_layer()
    layer.build(shape[1:])
    twin.build(shape[1:])
    twin.set_weights(layer.get_weights())
    stage = engine.ENGINE_IMPLEMENTATIONS[type(twin)](twin)
    assert isinstance(stage, ThreadedDense | ThreadedConv2D)
    with blas.single_threaded():
        y = layer.forward(x, training=True)
        y_stage = stage.forward(x, training=True)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx, dx_stage = layer.backward(dy), stage.backward(dy)
    assert np.array_equal(y, y_stage) and np.array_equal(dx, dx_stage)
    for name in layer.grads:
        assert np.array_equal(layer.grads[name], twin.grads[name]), name


def _tutorial_like_model() -> Sequential:
    return Sequential([Conv2D(8, 3, input_shape=(12, 12, 1)), MaxPooling2D(), Activation("relu"), Dropout(0.25),
                       Flatten(), Dense(10, activation="softmax")])


def test_stages_keep_their_buffers_and_draw_dropout_masks_through_the_layer(monkeypatch):
    set_random_seed(0)
    model = _tutorial_like_model()
    model.compile(SGD(0.01), "categorical_crossentropy")
    conv, dropout = model.layers[0], model.layers[3]
    drawn = []
    draw = dropout.draw_mask_words
    monkeypatch.setattr(dropout, "draw_mask_words", lambda shape, *how: drawn.append(shape) or draw(shape, *how))
    x = np.random.default_rng(0).random((6, 12, 12, 1), dtype=np.float32)
    model.train_on_batch(x, to_categorical(np.arange(6) % 10, 10))
    assert [type(stage).__name__ for stage in passes.stages(model)] == ["ConvPoolReluDropout", "Flatten",
                                                                  "ThreadedDense"]
    assert drawn == [(6, 5, 5, 8)]  # the fused stage drew the mask with the layer's own method
    assert conv._scratch_buffers == {}  # the stage's work arrays are its own, not the layer's
