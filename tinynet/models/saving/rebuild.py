"""Rebuilding a model from its document, trusting none of it: layer classes and configs, shapes per sample, every
weight's header before it is allocated, weights, random streams, compile settings, epochs done and history."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinynet import layers as layers_module
from tinynet.layers.base import Layer, checking_weight_allocations
from tinynet.models.saving.compile_state import rebuild_loss, rebuild_optimizer
from tinynet.models.saving.file_format import (
    FORMAT_VERSION,
    FormatError,
    StoredArrays,
    stored_array,
    stored_key,
    typed,
)
from tinynet.models.saving.generators import layer_generators, restore_generator
from tinynet.models.saving.history import epoch_number, restore_history
from tinynet.models.sequential import Sequential

#: The most numbers a layer of a loaded model may take per sample (a 2048 x 2048 x 4 image). Building a layer can
#: allocate in proportion to its input (AveragePooling2D's count plane), and a config could ask for any size.
MAX_SAMPLE_ELEMENTS = 2**24


def model_from_document(document: dict, arrays: StoredArrays, custom_objects: dict[str, Any]) -> Any:
    """Rebuild the model a document describes, trusting none of it: every field a stranger could set is checked
    before it is used, and no layer allocates a weight that the file's arrays do not hold (``check_allocation``)."""
    if not isinstance(document, dict) or document.get("format") != "tinynet.model":
        raise FormatError("the document does not describe a tinynet model")
    if document.get("format_version") != FORMAT_VERSION:
        raise FormatError(f"the document has format version {document.get('format_version')!r}, expected "
                           f"{FORMAT_VERSION}")
    model_document = document["model"]
    layer_documents = typed(model_document["layers"], list, "model.layers")
    model_class = custom_objects.get(model_document["class_name"], Sequential)

    # The shape and dtype of every stored weight, from the .npy headers alone, keyed by the layer object: a layer
    # built from its config may allocate exactly these and nothing else (a config could ask for gigabytes).
    stored: dict[Layer, dict[str, tuple[tuple[int, ...], np.dtype]]] = {}

    def check_allocation(layer: Layer, name: str, shape: tuple[int, ...]) -> None:
        held = stored.get(layer, {})
        if name not in held:
            raise FormatError(f"layer {layer.name!r} has weights the file does not hold: its config makes "
                               f"{name!r} of shape {shape}, the file stores {sorted(held) or 'none'}")
        held_shape, held_dtype = held[name]
        if held_shape != shape:
            raise FormatError(f"weight {layer.name}.{name} has shape {held_shape} in the file, the rebuilt layer "
                               f"expects {shape}")
        if held_dtype != layer.dtype:
            raise FormatError(f"weight {layer.name}.{name} is stored as {held_dtype}, the rebuilt layer holds "
                               f"{layer.dtype}")

    layers = []
    with checking_weight_allocations(check_allocation):
        for position, layer_document in enumerate(layer_documents):
            layer_class = _layer_class(layer_document["class_name"], custom_objects)
            try:
                layer = layer_class.from_config(dict(layer_document["config"]))
            except (TypeError, ValueError) as error:
                raise FormatError(f"layer {position} ({layer_document['class_name']}) cannot be rebuilt from its "
                                   f"config: {error}") from error
            check_sample_size(layer._declared_input_shape, f"the input_shape of layer {layer.name!r}")
            weights = typed(layer_document["weights"], dict, f"the weights of layer {layer.name!r}")
            stored[layer] = {name: arrays.header(stored_key(arrays, key, f"{layer.name}.{name}"))
                             for name, key in weights.items()}
            if typed(layer_document["built"], bool, f"built of layer {layer.name!r}") and not layer.built:
                input_shape = tuple(typed(layer_document["input_shape"], list, f"input_shape of {layer.name!r}"))
                check_sample_size(input_shape, f"the input shape of layer {layer.name!r}")
                layer.build(input_shape)
            if layer.built:
                # A layer can grow its input (ZeroPadding2D's padding comes from the config); the next layer's input
                # shape is checked above, the last layer's output only here.
                check_sample_size(layer.output_shape, f"the output shape of layer {layer.name!r}")
            layers.append(layer)
        model = model_class(layers, name=model_document["name"])
        if layers and all(document_["built"] for document_ in layer_documents) and not model.built:
            model.build((None, *layer_documents[0]["input_shape"]))

    # Weights: every name, shape and value (finite real numbers) checked before anything is set.
    pending = []
    for layer, layer_document in zip(model.layers, layer_documents, strict=True):
        saved = layer_document["weights"]
        if layer_document["built"] and sorted(saved) != sorted(layer.weight_names):
            raise FormatError(f"layer {layer.name!r} has weights {layer.weight_names}, the file holds "
                               f"{sorted(saved)}")
        if not saved:
            continue
        pending.append((layer, [stored_array(arrays, saved[name], f"{layer.name}.{name}")
                                for name in layer.weight_names]))
    set_weights_all_or_none(pending, FormatError)

    # Random streams: only generators the rebuilt layer has (a name from the file must not replace ``forward``).
    for layer, layer_document in zip(model.layers, layer_documents, strict=True):
        own = layer_generators(layer)
        for attribute, state in typed(layer_document["generators"], dict, f"generators of {layer.name!r}").items():
            if attribute not in own:
                raise FormatError(f"layer {layer.name!r} has no random generator {attribute!r} (its generators: "
                                   f"{sorted(own) or 'none'})")
            setattr(layer, attribute, restore_generator(state, own[attribute]))
    model._shuffle_generator = restore_generator(model_document["shuffle_generator"], model._shuffle_generator)
    # Files written before ``fuse`` was recorded get the default.
    model.fuse = typed(model_document.get("fuse", True), bool, "model.fuse")

    compile_document = document.get("compile")
    if compile_document is not None:
        loss = rebuild_loss(compile_document["loss"], custom_objects)
        optimizer = rebuild_optimizer(compile_document["optimizer"], arrays, custom_objects, model)
        model.compile(optimizer=optimizer, loss=loss,
                      metrics=[custom_objects.get(name, name) for name in compile_document["metrics"]])

    model.epochs_done = epoch_number(document.get("epochs_done", 0), "epochs_done")
    restore_history(model, document.get("history") or {"epoch": [], "history": {}})
    return model


def _layer_class(class_name: Any, custom_objects: dict[str, Any]) -> type[Layer]:
    if isinstance(class_name, str) and class_name in custom_objects:
        return custom_objects[class_name]
    try:
        layer_class = layers_module.get(class_name)
    except (ValueError, TypeError, KeyError):
        raise FormatError(f"unknown layer class {class_name!r}; pass it in "
                           f"custom_objects={{{class_name!r}: YourLayer}}") from None
    if layer_class.forward is Layer.forward or layer_class.backward is Layer.backward:
        raise FormatError(f"layer class {class_name!r} is an abstract base class (no forward or backward)")
    return layer_class


def set_weights_all_or_none(values_by_layer: list[tuple[Layer, list[np.ndarray]]],
                            error: type[Exception]) -> None:
    """Check every layer's values (:meth:`Layer.check_weights`) before setting any, so that a file with one bad
    array changes no layer; a refused value raises ``error`` naming its layer."""
    checked = []
    for layer, values in values_by_layer:
        try:
            checked.append((layer, layer.check_weights(values)))
        except ValueError as refused:
            raise error(f"weights of layer {layer.name!r}: {refused}") from None
    for layer, values in checked:
        layer.set_weights(values)


def check_sample_size(shape: tuple | None, what: str, error: type[Exception] = FormatError) -> None:
    """Raise ``error`` unless ``shape`` (per sample, ``None`` for unknown) is positive ints that hold at most
    :data:`MAX_SAMPLE_ELEMENTS` numbers; ``what`` names the shape. The Keras loaders call it too, with their error."""
    if shape is None:
        return
    if not all(isinstance(length, int) and not isinstance(length, bool) and length > 0 for length in shape):
        raise error(f"{what} is {shape!r:.80}; expected positive ints")
    if math.prod(shape) > MAX_SAMPLE_ELEMENTS:
        raise error(f"{what} is {shape}: {math.prod(shape):,} numbers per sample, more than the "
                    f"{MAX_SAMPLE_ELEMENTS:,} a loaded model may take")
