"""Weight initializers with Keras 2 names and fan computations.

For a Dense kernel ``(in, out)``: ``fan_in = in``, ``fan_out = out``. For a convolution kernel
``(kh, kw, in, out)`` Keras multiplies by the receptive field: ``fan_in = kh * kw * in``,
``fan_out = kh * kw * out``.

==================  =========================================================
``glorot_uniform``  ``U(-l, l)`` with ``l = sqrt(6 / (fan_in + fan_out))`` (Keras's default for kernels)
``he_uniform``      ``U(-l, l)`` with ``l = sqrt(6 / fan_in)``
``he_normal``       truncated normal (cut at 2 std) with ``std = sqrt(2 / fan_in)``, Keras 2's variant
``zeros``/``ones``  constants (``zeros`` is Keras's default for biases)
==================  =========================================================

Every draw comes from a ``numpy.random.Generator``: the initializer's own when it was given a ``seed``, else the
process-wide stream of :func:`tinynet.backend.global_generator`, so :func:`tinynet.utils.set_random_seed` makes
initial weights repeatable.
"""

from __future__ import annotations

import math

import numpy as np

from tinynet import backend


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Keras's ``(fan_in, fan_out)`` for a weight of this shape."""
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) in (3, 4, 5):
        receptive_field = math.prod(shape[:-2])
        return shape[-2] * receptive_field, shape[-1] * receptive_field
    # Vectors and odd shapes: Keras uses sqrt of the size for both.
    size = math.prod(shape) if shape else 1
    return int(math.sqrt(size)), int(math.sqrt(size))


class Initializer:
    """Base class: ``initializer(shape, dtype) -> array``."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self._generator = None if seed is None else np.random.default_rng(seed)

    def _rng(self) -> np.random.Generator:
        return self._generator if self._generator is not None else backend.global_generator()

    def __call__(self, shape: tuple[int, ...], dtype: str | np.dtype | None = None) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"seed": self.seed} if self.seed is not None else {}


class Zeros(Initializer):
    def __call__(self, shape, dtype=None):
        return np.zeros(shape, dtype=backend.float_dtype(dtype))


class Ones(Initializer):
    def __call__(self, shape, dtype=None):
        return np.ones(shape, dtype=backend.float_dtype(dtype))


class GlorotUniform(Initializer):
    def __call__(self, shape, dtype=None):
        fan_in, fan_out = compute_fans(tuple(shape))
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return self._rng().uniform(-limit, limit, size=shape).astype(backend.float_dtype(dtype))


class HeUniform(Initializer):
    def __call__(self, shape, dtype=None):
        fan_in, _ = compute_fans(tuple(shape))
        limit = math.sqrt(6.0 / fan_in)
        return self._rng().uniform(-limit, limit, size=shape).astype(backend.float_dtype(dtype))


class HeNormal(Initializer):
    def __call__(self, shape, dtype=None):
        fan_in, _ = compute_fans(tuple(shape))
        # Keras 2 draws from a normal truncated at two standard deviations and scales the std up by 1/0.8796
        # so the truncated distribution keeps the intended variance 2 / fan_in.
        stddev = math.sqrt(2.0 / fan_in) / 0.87962566103423978
        rng = self._rng()
        values = rng.standard_normal(size=shape)
        outside = np.abs(values) > 2.0
        while outside.any():  # redraw the tails; each round leaves ~4.6% of the previous count
            values[outside] = rng.standard_normal(size=int(outside.sum()))
            outside = np.abs(values) > 2.0
        return (values * stddev).astype(backend.float_dtype(dtype))


_BY_NAME: dict[str, type[Initializer]] = {
    "zeros": Zeros,
    "ones": Ones,
    "glorot_uniform": GlorotUniform,
    "he_uniform": HeUniform,
    "he_normal": HeNormal,
}

# Keras accepts the class names too ("GlorotUniform"), and its aliases.
_ALIASES = {cls.__name__: name for name, cls in _BY_NAME.items()} | {"Zeros": "zeros", "Ones": "ones"}

glorot_uniform = GlorotUniform
he_uniform = HeUniform
he_normal = HeNormal
zeros = Zeros
ones = Ones


def get(identifier: str | Initializer | type[Initializer], *, owner: str = "initializer") -> Initializer:
    """An initializer from its Keras name (``'glorot_uniform'``...), its class, or an instance, which is returned
    as is."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, str):
        name = _ALIASES.get(identifier, identifier)
        if name in _BY_NAME:
            return _BY_NAME[name]()
        raise ValueError(f"{owner}: unknown initializer {identifier!r}; expected one of {', '.join(_BY_NAME)}")
    raise TypeError(f"{owner}: expected an initializer name or Initializer, got {type(identifier).__name__}")


def serialize(initializer: Initializer) -> dict:
    name = next(key for key, cls in _BY_NAME.items() if type(initializer) is cls)
    return {"class_name": name, "config": initializer.get_config()}


def deserialize(config: dict | str) -> Initializer:
    if isinstance(config, str):
        return get(config)
    return _BY_NAME[_ALIASES.get(config["class_name"], config["class_name"])](**config.get("config", {}))
