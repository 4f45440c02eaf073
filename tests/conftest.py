"""Shared fixtures: every test starts from tinynet's defaults, whatever the previous test changed.

* float32 as the default float type (gradient checks switch to float64 through the ``float64`` fixture);
* layer-name counters cleared, so the first Conv2D a test builds is ``conv2d_1`` as in a fresh Keras session;
* a hypothesis profile without the per-example deadline, because Numba compiles kernels on their first call.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from tinynet import backend

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
