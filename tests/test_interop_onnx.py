"""ONNX export: the graph passes onnx's full check and ONNX Runtime gives tinynet's predictions (1e-5), at batch
sizes 1 and 37, for the tutorial CNN and for a model with every layer tinynet has."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinynet import backend
from tinynet import layers as L
from tinynet.models import Sequential

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def tutorial_cnn() -> Sequential:
    backend.set_random_seed(5)
    return Sequential([L.Conv2D(8, 3, input_shape=(28, 28, 1)), L.MaxPooling2D(2), L.Activation("relu"),
                       L.Dropout(0.25), L.Conv2D(8, 3), L.MaxPooling2D(2), L.Activation("relu"), L.Dropout(0.25),
                       L.Flatten(), L.Dense(10, activation="softmax")])


def every_layer() -> Sequential:
    backend.set_random_seed(6)
    model = Sequential([
        L.Conv2D(4, 3, strides=2, padding="same", activation="relu", input_shape=(13, 11, 2)),
        L.BatchNormalization(), L.MaxPooling2D(2, strides=1, padding="same"),
        L.AveragePooling2D(3, strides=2, padding="same"), L.LeakyReLU(0.2),
        L.ReLU(max_value=0.7, threshold=0.05, negative_slope=0.1), L.Dropout(0.3), L.Activation("tanh"),
        L.Conv2D(6, 2, use_bias=False, activation="sigmoid"), L.Flatten(), L.Dense(7), L.BatchNormalization(),
        L.ReLU(), L.Dense(5, activation="softmax")])
    for layer in model.layers:  # moving statistics that are not the initial zeros and ones
        if isinstance(layer, L.BatchNormalization):
            size = layer.state["moving_mean"].shape
            layer.state["moving_mean"][...] = np.random.default_rng(1).normal(size=size)
            layer.state["moving_variance"][...] = np.random.default_rng(2).random(size) + 0.5
    return model


def global_pooling() -> Sequential:
    backend.set_random_seed(7)
    return Sequential([L.Conv2D(4, 3, input_shape=(9, 9, 3)), L.GlobalAveragePooling2D(), L.Dense(3)])


def keras2_layers() -> Sequential:
    """ZeroPadding2D before the first convolution (NHWC) and after one (NCHW), dilated convolutions (valid and
    same), ELU, Reshape and every activation of Keras 2 beyond the first five."""
    backend.set_random_seed(8)
    return Sequential([
        L.ZeroPadding2D(((1, 0), (2, 1)), input_shape=(9, 8, 2)), L.Conv2D(4, 3, dilation_rate=(2, 1)),
        L.ZeroPadding2D(1), L.ELU(0.4), L.Activation("selu"), L.Activation("softsign"),
        L.Conv2D(3, (2, 3), padding="same", dilation_rate=(3, 2), activation="elu"), L.Activation("hard_sigmoid"),
        L.Reshape((-1, 6)), L.Activation("softplus"), L.Dense(4, activation="exponential"), L.Flatten(),
        L.Dense(3, activation="softmax")])


@pytest.mark.parametrize("make", [tutorial_cnn, every_layer, global_pooling, keras2_layers])
def test_onnx_runtime_matches_tinynet(tmp_path, make):
    model = make()
    path = tmp_path / "model.onnx"
    model.export(path, format="onnx")
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    batch_axis = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_axis.dim_param == "batch"  # dynamic
    assert [dim.dim_value for dim in proto.graph.input[0].type.tensor_type.shape.dim[1:]] == \
        list(model.input_shape[1:])  # NHWC, as the model takes it
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 37):
        x = np.random.default_rng(batch).random((batch, *model.input_shape[1:]), dtype=np.float32)
        (outputs,) = session.run(None, {"input": x})
        np.testing.assert_allclose(outputs, model.predict(x), atol=1e-5)


def test_flatten_keeps_keras_channels_last_order(tmp_path):
    """The pitfall: flattening the NCHW tensor ONNX convolves in would scramble the Dense weights."""
    backend.set_random_seed(8)
    model = Sequential([L.Conv2D(3, 1, input_shape=(2, 2, 2)), L.Flatten(), L.Dense(4)])
    model.export(tmp_path / "model.onnx")
    ops = [node.op_type for node in onnx.load(tmp_path / "model.onnx").graph.node]
    assert ops.index("Transpose", ops.index("Conv")) < ops.index("Flatten")
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((5, 2, 2, 2), dtype=np.float32)
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model.predict(x), atol=1e-5)


def test_export_refuses_other_formats(tmp_path):
    with pytest.raises(ValueError, match="format"):
        tutorial_cnn().export(tmp_path / "model.tflite", format="tflite")


def test_the_onnxruntime_benchmark_suite_runs(tmp_path, capsys):
    import benchmarks

    report = tmp_path / "report.json"
    assert benchmarks.main(["onnxruntime", "--smoke", "--no-charts", "--output-dir", str(tmp_path), "--json",
                            str(report)]) == 0
    assert "tinynet vs ONNX Runtime" in capsys.readouterr().out
    result = json.loads(report.read_text())["suites"]["onnxruntime"]["results"]
    assert result["max_difference"] < 1e-4
    assert all(row["ratio_tinynet_over_onnxruntime"] > 0 for row in result["measurements"])
