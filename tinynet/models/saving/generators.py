"""Random streams in a model file: a NumPy Generator's state as JSON and back, and loading without touching the
process's seeded streams."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from tinynet import backend
from tinynet.models.saving.file_format import FormatError

#: The bit generators a saved random stream may name (tinynet makes PCG64; the others are NumPy's own).
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


def generator_state(generator: np.random.Generator) -> dict[str, Any]:
    """The full state of a NumPy Generator as a JSON-ready dict (``bit_generator`` names its class)."""
    return dict(generator.bit_generator.state)  # NumPy types the state as a read-only Mapping; it is a new dict


def restore_generator(state: dict[str, Any], existing: Any = None) -> np.random.Generator:
    """A Generator in exactly ``state``: ``existing`` itself when it has the same bit generator, else a new one."""
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in BIT_GENERATORS:
        raise FormatError(f"unknown random bit generator {name!r}; expected one of {', '.join(BIT_GENERATORS)}")
    state = _from_json(state)
    bit_generator_class = getattr(np.random, name)
    candidate = np.random.Generator(bit_generator_class())
    try:  # NumPy checks the state's fields; set it on a new generator so a refusal leaves ``existing`` alone
        candidate.bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        raise FormatError(f"the state of a {name} random generator is malformed ({type(error).__name__}: "
                           f"{error})") from None
    if isinstance(existing, np.random.Generator) and type(existing.bit_generator) is bit_generator_class:
        existing.bit_generator.state = candidate.bit_generator.state
        return existing
    return candidate


def layer_generators(layer: Any) -> dict[str, np.random.Generator]:
    return {name: value for name, value in vars(layer).items() if isinstance(value, np.random.Generator)}


def _from_json(value: Any) -> Any:
    """Undo :func:`json_default` for arrays (found inside generator states such as MT19937's key)."""
    if isinstance(value, dict):
        if set(value) == {"__ndarray__", "dtype"}:
            # Only the unsigned words a bit generator's state holds (MT19937's key): a dtype from a file could
            # otherwise be "V1000000000", a gigabyte per element.
            if value["dtype"] not in ("uint32", "uint64"):
                raise FormatError(f"an array in a random generator state has dtype {value['dtype']!r}; expected "
                                   "uint32 or uint64")
            return np.asarray(value["__ndarray__"], dtype=value["dtype"])
        return {key: _from_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    return value


@contextlib.contextmanager
def random_streams_untouched():
    """Rebuilding layers draws initial weights and spawns generators; do it from throwaway streams, so that loading
    a model leaves the process's seeded streams (and so the models built after it) exactly as they were."""
    root, global_generator = backend._root_seed_sequence, backend._global_generator
    backend._root_seed_sequence, backend._global_generator = np.random.SeedSequence(0), None
    try:
        yield
    finally:
        backend._root_seed_sequence, backend._global_generator = root, global_generator
