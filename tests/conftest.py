"""Shared fixtures: every test starts from tinynet's defaults, whatever the previous test changed.

* float32 as the default float type (gradient checks switch to float64 through the ``float64`` fixture);
* layer-name counters cleared, so the first Conv2D a test builds is ``conv2d_1`` as in a fresh Keras session;
* a hypothesis profile without the per-example deadline, because Numba compiles kernels on their first call;
* ``two_threads``: the engine on two threads that always split the work (restored afterwards).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings

from tinynet import backend
from tinynet.engine import threads as engine_threads

settings.register_profile("tinynet", deadline=None)
settings.load_profile("tinynet")


@pytest.fixture(autouse=True)
def fresh_backend():
    """Restore floatx to float32 and clear the session's layer-name counters before and after each test."""
    backend.set_floatx("float32")
    backend.clear_session()
    yield
    backend.set_floatx("float32")
    backend.clear_session()


@pytest.fixture
def float64():
    """Build layers and models in float64 (what gradient checks need); restored by ``fresh_backend``."""
    backend.set_floatx("float64")
    return "float64"


@pytest.fixture
def tiny_idx_dataset(tmp_path):
    """``make(train, test)`` writes a digits-like MNIST stand-in as the four IDX files in a folder and returns it.

    Each 28x28 image is dim noise with a bright bar at a row that depends on its label (label = index % 10), so a
    network learns it in a few steps; no network access and no real data needed.
    """
    from tinynet.datasets import write_idx

    def make(train: int = 96, test: int = 40, seed: int = 0):
        folder = tmp_path / "data"
        folder.mkdir(exist_ok=True)
        rng = np.random.default_rng(seed)
        for prefix, count in (("train", train), ("t10k", test)):
            labels = np.arange(count, dtype=np.uint8) % 10
            images = rng.integers(0, 40, size=(count, 28, 28), dtype=np.uint8)
            for index, label in enumerate(labels):
                images[index, 2 + 2 * label: 4 + 2 * label, 4:24] = 255
            write_idx(folder / f"{prefix}-images-idx3-ubyte", images)
            write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels)
        return folder

    return make


@pytest.fixture
def two_threads():
    """The engine's work on two threads that always split it: the adaptation to a shared machine is off, so that a
    busy test machine cannot send the work to the calling thread alone. Thread count and detector restored."""
    before = engine_threads._requested_threads, engine_threads._detector
    engine_threads.set_num_threads(2)
    engine_threads.set_adaptive_threads(False)
    yield
    engine_threads.set_num_threads(before[0])
    engine_threads._detector = before[1]
