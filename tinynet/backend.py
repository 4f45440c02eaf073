"""Process-wide settings: the default float type, random seeds and layer names.

Keras 2 kept these in ``keras.backend``; tinynet keeps the same names so code written for Keras reads the same:
``floatx()``, ``set_floatx()``, ``epsilon()``, ``image_data_format()``, ``clear_session()``.

Randomness
----------
Every random draw in tinynet (initial weights, the shuffle order of ``fit``, dropout masks) comes from a
``numpy.random.Generator`` handed out by :func:`new_generator`. Each consumer gets its own stream, spawned from one
root ``SeedSequence``; :func:`set_random_seed` replaces that root, so the same seed and the same order of model
construction give the same run, bit for bit. Numba's own random generator is never used: it is per-thread and
cannot be saved, which would make runs unrepeatable.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np

_FLOAT_TYPES = {"float32": np.float32, "float64": np.float64}
_floatx = "float32"
_epsilon = 1e-7

_root_seed_sequence = np.random.SeedSequence()
_global_generator: np.random.Generator | None = None
_name_counters: defaultdict[str, itertools.count] = defaultdict(lambda: itertools.count(1))


def floatx() -> str:
    """The default float type of new layers and of data cast by ``fit``: ``'float32'`` unless changed."""
    return _floatx


def set_floatx(value: str) -> None:
    """Set the default float type (``'float32'`` or ``'float64'``) of layers created from now on.

    ``float64`` is for gradient checks and numerical experiments; training is about twice as fast in ``float32``.
    """
    global _floatx
    if value not in _FLOAT_TYPES:
        raise ValueError(f"set_floatx: expected 'float32' or 'float64', got {value!r}")
    _floatx = value


def float_dtype(value: str | np.dtype | type | None = None) -> np.dtype:
    """Resolve a dtype argument (``None`` means :func:`floatx`) to a NumPy float dtype, rejecting non-floats."""
    try:
        name = floatx() if value is None else np.dtype(value).name
    except (TypeError, ValueError):
        raise TypeError(f"dtype: expected 'float32' or 'float64', got {value!r}") from None
    if name not in _FLOAT_TYPES:
        raise TypeError(f"dtype: expected 'float32' or 'float64', got {value!r}")
    return np.dtype(name)


def epsilon() -> float:
    """The fuzz factor Keras uses to clip probabilities in the cross-entropy (``1e-7``)."""
    return _epsilon


def image_data_format() -> str:
    """Always ``'channels_last'``: images are ``(samples, rows, cols, channels)``, as Keras's TensorFlow default.

    Keras scripts branch on it to reshape their input; tinynet has no channels-first layout, so the branch they
    take is the channels-last one.
    """
    return "channels_last"


def set_random_seed(seed: int) -> None:
    """Seed every random stream tinynet uses (weights, shuffles, dropout masks) for repeatable runs.

    Generators already handed out keep their state; seed before building the model.
    """
    global _root_seed_sequence, _global_generator
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"set_random_seed: expected a non-negative integer seed, got {seed!r}")
    _root_seed_sequence = np.random.SeedSequence(int(seed))
    _global_generator = None


def new_generator() -> np.random.Generator:
    """A fresh, independent random stream spawned from the root seed (one per layer or model that needs one)."""
    (child,) = _root_seed_sequence.spawn(1)
    return np.random.Generator(np.random.PCG64(child))


def global_generator() -> np.random.Generator:
    """The stream initializers draw from when they were not given a seed of their own."""
    global _global_generator
    if _global_generator is None:
        _global_generator = new_generator()
    return _global_generator


def unique_name(prefix: str) -> str:
    """Keras-style automatic layer names: ``conv2d_1``, ``conv2d_2``, ``dense_1``..."""
    return f"{prefix}_{next(_name_counters[prefix])}"


def clear_session() -> None:
    """Reset layer-name counters (as ``keras.backend.clear_session`` does)."""
    _name_counters.clear()

