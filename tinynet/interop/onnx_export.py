"""``model.export(path, format='onnx')``: a standard ONNX graph of a tinynet Sequential, for ONNX Runtime & co.

The graph takes the model's own input, NHWC ``(batch, H, W, C)`` with a dynamic batch axis, and gives its
output. ONNX's image operators (Conv, MaxPool, AveragePool, GlobalAveragePool, BatchNormalization) work in NCHW,
so the graph transposes to NCHW once at the first image layer and back to NHWC only where the order matters:

* **Flatten.** Keras (and tinynet) flatten channels-last, feature ``(h * W + w) * C + c``; flattening NCHW data
  would order the features ``(c * H + h) * W + w`` and scramble every weight of the Dense layer after it. So the
  graph transposes back to NHWC before ``Flatten``: the classic pitfall of exporting a Keras CNN.
* **Softmax, Dense** act on the last axis, which must be the channels: NHWC again.

* **Reshape** reorders nothing in Keras's channels-last C order: NHWC again, then ``Reshape`` to
  ``[0, *target]`` (0 keeps the dynamic batch axis).

Operators, layer by layer: Conv2D -> ``Conv`` (kernel ``(kh, kw, in, out)`` transposed to ``(out, in, kh, kw)``;
``dilations``; ``same`` padding as explicit ``pads`` over the dilated span, tinynet's split: the extra row at the
bottom/right as in Keras) and its activation; ZeroPadding2D -> ``Pad`` (constant 0, in the running layout);
MaxPooling2D -> ``MaxPool`` (padding never wins a max); AveragePooling2D -> ``AveragePool`` with
``count_include_pad=0`` (Keras averages the real pixels only); GlobalAveragePooling2D -> ``GlobalAveragePool``
then ``Flatten``; Dense -> ``Gemm`` (``MatMul`` + ``Add`` on inputs of more than two axes); BatchNormalization ->
``BatchNormalization`` (inference: the moving statistics); Dropout -> nothing (inference); ReLU, LeakyReLU,
Activation -> ``Relu``, ``LeakyRelu``, ``Sigmoid``, ``Tanh``, ``Softmax``, ``Elu``, ``Selu`` (Keras's constants
as ``alpha`` and ``gamma``), ``Softplus``, ``Softsign``, ``HardSigmoid`` (``alpha=0.2, beta=0.5``: Keras 2's, which
are ONNX's defaults), ``Exp`` (a ReLU with ``threshold``, ``max_value`` or ``negative_slope`` is composed from
``Where``/``Clip``/``Relu``, as Keras's backend composes it); ELU -> ``Elu`` with its ``alpha``.

Weights are exported as float32 (ONNX Runtime's CPU kernels are float32), opset 17, and the graph passes
``onnx.checker.check_model(full_check=True)`` before it is written (atomically).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tinynet import activations
from tinynet.fileio import atomic_write
from tinynet.interop.dependencies import onnx as import_onnx
from tinynet.interop.errors import require_built

OPSET = 17
IR_VERSION = 8  # the IR of opset 17; newer IRs are refused by older runtimes for no gain here
TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


class _Graph:
    """The nodes and initializers being built, with the running tensor and its layout (NHWC or NCHW)."""

    def __init__(self, onnx: Any, dtype: np.dtype) -> None:
        self.onnx, self.dtype = onnx, np.dtype(np.float32)
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.current, self.layout, self.count = "input", "NHWC", 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def constant(self, hint: str, value: npt.ArrayLike, dtype: Any = None) -> str:
        name = self.name(hint)
        array = np.ascontiguousarray(np.asarray(value, dtype=dtype or self.dtype))
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def add(self, op: str, inputs: list[str], hint: str, **attributes: Any) -> str:
        output = self.name(hint)
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [output], name=output, **attributes))
        self.current = output
        return output

    def to_layout(self, layout: str, rank: int) -> None:
        if rank != 4 or self.layout == layout:
            return
        self.add("Transpose", [self.current], f"to_{layout.lower()}", perm=list(TO_NCHW if layout == "NCHW"
                                                                                 else TO_NHWC))
        self.layout = layout


def _window_pads(layer: Any, kernel: tuple[int, int], height: int, width: int) -> list[int]:
    """ONNX ``pads`` [top, left, bottom, right] of tinynet's windows (the extra row or column at the end)."""
    stride_h, stride_w = layer.strides
    bottom = max((layer.out_h - 1) * stride_h + kernel[0] - height - layer.pad_top, 0)
    right = max((layer.out_w - 1) * stride_w + kernel[1] - width - layer.pad_left, 0)
    return [layer.pad_top, layer.pad_left, bottom, right]


def _activation(graph: _Graph, name: str, rank: int, hint: str) -> None:
    if name == "linear":
        return
    if name == "softmax":
        graph.to_layout("NHWC", rank)  # over the channels, the last axis in Keras
        graph.add("Softmax", [graph.current], hint, axis=-1)
        return
    attributes = {"elu": {"alpha": 1.0}, "hard_sigmoid": {"alpha": 0.2, "beta": 0.5},
                  "selu": {"alpha": activations.SELU_ALPHA, "gamma": activations.SELU_SCALE}}
    ops = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "elu": "Elu", "selu": "Selu", "softplus": "Softplus",
           "softsign": "Softsign", "hard_sigmoid": "HardSigmoid", "exponential": "Exp"}
    if name not in ops:
        raise ValueError(f"export: the activation {name!r} has no ONNX operator here")
    graph.add(ops[name], [graph.current], hint, **attributes.get(name, {}))


def _relu(graph: _Graph, layer: Any) -> None:
    if layer._is_plain():
        graph.add("Relu", [graph.current], layer.name)
        return
    x = graph.current
    threshold = graph.constant("threshold", layer.threshold)
    zero = graph.constant("zero", 0.0)
    above = graph.add("Greater", [x, threshold], "above")
    y = graph.add("Where", [above, x, zero], "kept")
    if layer.max_value is not None:
        y = graph.add("Clip", [y, zero, graph.constant("max_value", layer.max_value)], "clipped")
    if layer.negative_slope != 0:
        below = graph.add("Relu", [graph.add("Sub", [threshold, x], "below")], "below_part")
        leak = graph.add("Mul", [below, graph.constant("slope", layer.negative_slope)], "leak")
        graph.add("Sub", [y, leak], layer.name)


def _layer(graph: _Graph, layer: Any) -> None:
    kind = type(layer).__name__
    rank = len(layer.input_shape) + 1
    if kind == "Conv2D":
        graph.to_layout("NCHW", rank)
        height, width = layer.input_shape[:2]
        inputs = [graph.current, graph.constant("kernel", layer.params["kernel"].transpose(3, 2, 0, 1))]
        if layer.use_bias:
            inputs.append(graph.constant("bias", layer.params["bias"]))
        graph.add("Conv", inputs, layer.name, kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
                  dilations=list(layer.dilation_rate), pads=_window_pads(layer, layer.dilated_kernel_size, height,
                                                                         width))
        _activation(graph, layer.activation.name, rank, f"{layer.name}_activation")
    elif kind in ("MaxPooling2D", "AveragePooling2D"):
        graph.to_layout("NCHW", rank)
        height, width = layer.input_shape[:2]
        options: dict[str, Any] = {"kernel_shape": list(layer.pool_size), "strides": list(layer.strides),
                   "pads": _window_pads(layer, layer.pool_size, height, width)}
        if kind == "AveragePooling2D":
            options["count_include_pad"] = 0
        graph.add("MaxPool" if kind == "MaxPooling2D" else "AveragePool", [graph.current], layer.name, **options)
    elif kind == "GlobalAveragePooling2D":
        graph.to_layout("NCHW", rank)
        graph.add("GlobalAveragePool", [graph.current], layer.name)
        graph.add("Flatten", [graph.current], f"{layer.name}_flat", axis=1)
        graph.layout = "NHWC"
    elif kind == "Flatten":
        graph.to_layout("NHWC", rank)  # Keras's channels-last order
        graph.add("Flatten", [graph.current], layer.name, axis=1)
    elif kind == "Dense":
        graph.to_layout("NHWC", rank)
        kernel = graph.constant("kernel", layer.params["kernel"])
        bias = layer.params["bias"] if layer.use_bias else np.zeros(layer.units)
        if rank == 2:
            graph.add("Gemm", [graph.current, kernel, graph.constant("bias", bias)], layer.name)
        else:
            graph.add("Add", [graph.add("MatMul", [graph.current, kernel], f"{layer.name}_matmul"),
                              graph.constant("bias", bias)], layer.name)
        _activation(graph, layer.activation.name, rank, f"{layer.name}_activation")
    elif kind == "BatchNormalization":
        if layer.feature_axis != rank - 1:
            raise ValueError(f"export: {layer.name} normalises axis {layer.axis}; ONNX's BatchNormalization "
                             "takes the channels axis only")
        graph.to_layout("NCHW", rank)
        features = layer.state["moving_mean"].shape[0]
        gamma = layer.params.get("gamma", np.ones(features))
        beta = layer.params.get("beta", np.zeros(features))
        graph.add("BatchNormalization", [graph.current, graph.constant("gamma", gamma), graph.constant("beta", beta),
                                         graph.constant("mean", layer.state["moving_mean"]),
                                         graph.constant("variance", layer.state["moving_variance"])],
                  layer.name, epsilon=layer.epsilon)
    elif kind == "Activation":
        _activation(graph, layer.activation.name, rank, layer.name)
    elif kind == "ReLU":
        _relu(graph, layer)
    elif kind == "LeakyReLU":
        graph.add("LeakyRelu", [graph.current], layer.name, alpha=layer.alpha)
    elif kind == "ELU":
        graph.add("Elu", [graph.current], layer.name, alpha=layer.alpha)
    elif kind == "ZeroPadding2D":
        (top, bottom), (left, right) = layer.padding
        begin, end = ([0, 0, top, left], [0, 0, bottom, right]) if graph.layout == "NCHW" else \
            ([0, top, left, 0], [0, bottom, right, 0])
        graph.add("Pad", [graph.current, graph.constant("pads", begin + end, np.int64)], layer.name)
    elif kind == "Reshape":
        graph.to_layout("NHWC", rank)  # Keras's C order of channels-last data
        shape = graph.constant("shape", [0, *layer.output_shape], np.int64)
        graph.add("Reshape", [graph.current, shape], layer.name)
    elif kind != "Dropout":  # dropout is the identity at inference
        raise ValueError(f"export: tinynet's ONNX export has no operator for layer {layer.name!r} ({kind})")


def to_onnx(model: Any) -> Any:
    """The ``onnx.ModelProto`` of a built tinynet Sequential (checked with ``full_check=True``)."""
    onnx = import_onnx()
    require_built(model, "export")
    graph = _Graph(onnx, model.layers[0].dtype)
    for layer in model.layers:
        _layer(graph, layer)
    graph.to_layout("NHWC", len(model.output_shape))
    graph.add("Identity", [graph.current], "output")
    graph.nodes[-1].output[0] = "output"
    float_type = onnx.TensorProto.FLOAT
    inputs = [onnx.helper.make_tensor_value_info("input", float_type, ["batch", *model.layers[0].input_shape])]
    outputs = [onnx.helper.make_tensor_value_info("output", float_type, ["batch", *model.layers[-1].output_shape])]
    onnx_graph = onnx.helper.make_graph(graph.nodes, model.name, inputs, outputs, graph.initializers)
    proto = onnx.helper.make_model(onnx_graph, producer_name="tinynet",
                                   opset_imports=[onnx.helper.make_opsetid("", OPSET)])
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model: Any, path: str | os.PathLike) -> Path:
    """Write the model's ONNX graph to ``path`` (atomically)."""
    if not isinstance(path, str | os.PathLike) or not str(path):
        raise TypeError(f"export: path must be a file path (str or os.PathLike), got {path!r}")
    proto = to_onnx(model)
    path = Path(path)
    with atomic_write(path) as file:
        file.write(proto.SerializeToString())
    return path
