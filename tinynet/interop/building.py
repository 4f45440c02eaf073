"""A tinynet Sequential from a translated Keras config and the file's arrays, allocating only what the file holds.

A config is a promise about shapes that a stranger wrote: ``Dense(16384)`` on a 16384-wide input is 12 bytes of
JSON and a gigabyte of memory. So, as :mod:`tinynet.models.saving` does for tinynet's own files, each layer is built
under :func:`tinynet.layers.base.checking_weight_allocations`: the ``k``-th weight a layer allocates must have the
shape of the ``k``-th array the file stores for that layer (known from the array's header, nothing read yet), and
no layer takes or gives more than :data:`tinynet.models.saving.rebuild.MAX_SAMPLE_ELEMENTS` numbers per sample
(saving's own check, :func:`~tinynet.models.saving.rebuild.check_sample_size`). Only then are the arrays read,
checked (finite real numbers, in range) and assigned, all of them or none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tinynet.interop.errors import KerasFormatError
from tinynet.interop.h5_reading import Stored
from tinynet.interop.keras_layers import TranslatedModel
from tinynet.layers.base import Layer, checking_weight_allocations
from tinynet.models.saving.generators import random_streams_untouched
from tinynet.models.saving.rebuild import check_sample_size, set_weights_all_or_none


def build_model(translated: TranslatedModel, stored: Sequence[Sequence[Stored]]) -> Any:
    """The Sequential ``translated`` describes, with the weights in ``stored`` (one list per layer, in
    ``get_weights`` order), built and filled; raises :class:`KerasFormatError` naming the layer otherwise."""
    from tinynet.models.sequential import Sequential

    if len(stored) != len(translated.layers):
        raise KerasFormatError(f"the file holds weights for {len(stored)} layers, the config has "
                               f"{len(translated.layers)}")
    allocated: dict[int, int] = {}
    held_by: dict[int, Sequence[Stored]] = {}

    def check_allocation(layer: Layer, name: str, shape: tuple[int, ...]) -> None:
        held = held_by.get(id(layer), ())
        index = allocated.get(id(layer), 0)
        if index >= len(held):
            raise KerasFormatError(f"layer {layer.name!r} makes weight {name!r} of shape {shape}, the file holds "
                                   f"{len(held)} arrays for it")
        if held[index].shape != shape:
            raise KerasFormatError(f"weight {layer.name}.{name} has shape {held[index].shape} in the file "
                                   f"({held[index].where}), the layer's config makes {shape}")
        allocated[id(layer)] = index + 1

    layers = []
    shape = translated.input_shape
    if shape is None:  # translate_model refuses such a config; this keeps a hand-made TranslatedModel honest too
        raise KerasFormatError("the model config gives no input shape: a model that was never built has no weights")
    with random_streams_untouched(), checking_weight_allocations(check_allocation):
        for position, ((layer_class, kwargs, keras_class), held) in enumerate(
                zip(translated.layers, stored, strict=True)):
            try:
                layer = layer_class(**kwargs)
            except (TypeError, ValueError) as error:
                raise KerasFormatError(f"layer {position} ({keras_class}): {error}") from None
            held_by[id(layer)] = held
            check_sample_size(shape, f"the input shape of layer {layer.name!r}", KerasFormatError)
            try:
                layer.build(shape)
            except (TypeError, ValueError) as error:
                if isinstance(error, KerasFormatError):
                    raise
                raise KerasFormatError(f"layer {layer.name!r} cannot take inputs of shape {shape}: {error}") from None
            if allocated.get(id(layer), 0) != len(held):
                raise KerasFormatError(f"layer {layer.name!r} has {allocated.get(id(layer), 0)} weights, the file "
                                       f"holds {len(held)} arrays for it")
            shape = layer._built_output_shape
            layers.append(layer)
        # The last layer's output has no next layer to check it (ZeroPadding2D's padding can make it any size).
        check_sample_size(shape, f"the output shape of layer {layers[-1].name!r}", KerasFormatError)
        try:
            model = Sequential(layers, name=translated.name)
        except (TypeError, ValueError) as error:
            raise KerasFormatError(str(error)) from None
    pending = []
    for layer, held in zip(layers, stored, strict=True):
        pending.append((layer, [array.read(layer._weight(name).shape)
                                for array, name in zip(held, layer.weight_names, strict=True)]))
    set_weights_all_or_none(pending, KerasFormatError)
    return model


def compile_model(model: Any, optimizer: Any, loss: Any, metrics: list[str]) -> None:
    try:
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    except (TypeError, ValueError) as error:
        raise KerasFormatError(f"the compile settings: {error}") from None
