"""``model.summary()``: each layer's name, type, output shape and parameter count, laid out as Keras 2 prints it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from tinynet.models.checks import check_batch_size
from tinynet.models.costs import activation_bytes, format_bytes, forward_flops


def print_summary(model: Any, line_length: int = 65, print_fn: Callable[[str], None] | None = None,
                  batch_size: int | None = None) -> None:
    """See :meth:`tinynet.models.Sequential.summary`."""
    print_fn = print_fn or (lambda line: print(line, file=sys.stdout))
    positions = [int(line_length * 0.45), int(line_length * 0.85), line_length]
    width = line_length
    if batch_size is not None:
        batch_size = check_batch_size(batch_size, f"{model.name}.summary")
        positions += [line_length + 17, line_length + 30]
        width = positions[-1]

    def print_row(fields: list[str]) -> None:
        line = ""
        for index, field in enumerate(fields):
            if index > 0:
                line = line[:-1] + " "
            line = (line + str(field))[:positions[index]]
            line += " " * (positions[index] - len(line))
        print_fn(line)

    print_fn("_" * width)
    header = ["Layer (type)", "Output Shape", "Param #"]
    print_row(header if batch_size is None else [*header, "FLOPs", "Activations"])
    print_fn("=" * width)
    for index, layer in enumerate(model.layers):
        shape = str((None, *layer.output_shape))
        row = [f"{layer.name} ({type(layer).__name__})", shape, str(layer.count_params())]
        if batch_size is not None:
            row += [f"{forward_flops(layer) * batch_size:,}", format_bytes(activation_bytes(layer, batch_size))]
        print_row(row)
        print_fn("=" * width if index == len(model.layers) - 1 else "_" * width)
    trainable = sum(sum(p.size for p in layer.params.values()) for layer in model.layers if layer.trainable)
    total = model.count_params()
    print_fn(f"Total params: {total:,}")
    print_fn(f"Trainable params: {trainable:,}")
    print_fn(f"Non-trainable params: {total - trainable:,}")
    if batch_size is not None:
        flops = sum(forward_flops(layer) for layer in model.layers) * batch_size
        memory = sum(activation_bytes(layer, batch_size) for layer in model.layers)
        print_fn(f"Forward FLOPs for a batch of {batch_size}: {flops:,}")
        print_fn(f"Output activations for a batch of {batch_size}: {format_bytes(memory)}")
    print_fn("_" * width)
