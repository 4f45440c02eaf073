"""The JSON document of a model file: architecture, compile settings, random streams, epochs done and history,
with every array handed to ``store`` (which names its entry in the payload)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinynet.models.saving.compile_state import compile_document
from tinynet.models.saving.file_format import FORMAT_VERSION
from tinynet.models.saving.generators import generator_state, layer_generators
from tinynet.models.saving.history import history_document


def build_document(model: Any, store: Callable[[np.ndarray], str]) -> dict[str, Any]:
    """The whole document of ``model``; ``store(array)`` keeps an array for the payload and returns its key."""
    return {
        "format": "tinynet.model",
        "format_version": FORMAT_VERSION,
        "tinynet_version": tinynet_version(),
        "model": model_document(model, store),
        "compile": compile_document(model, store),
        "epochs_done": int(getattr(model, "epochs_done", 0)),
        "history": history_document(model),
    }


def model_document(model: Any, store) -> dict[str, Any]:
    layer_documents = []
    for layer in model.layers:
        layer_documents.append({
            "class_name": type(layer).__name__,
            "config": layer.get_config(),
            "built": bool(layer.built),
            "input_shape": list(layer.input_shape) if layer.built else None,
            "weights": {name: store(layer._weight(name)) for name in layer.weight_names} if layer.built else {},
            "generators": {name: generator_state(gen) for name, gen in layer_generators(layer).items()},
        })
    return {
        "class_name": type(model).__name__,
        "name": model.name,
        "layers": layer_documents,
        "shuffle_generator": generator_state(model._shuffle_generator),
        "fuse": bool(getattr(model, "fuse", True)),  # the fused stages round differently: part of a run's identity
    }


def tinynet_version() -> str:
    import tinynet  # the package root imports this module's importers: read its version only when saving

    return str(getattr(tinynet, "__version__", "unknown"))
