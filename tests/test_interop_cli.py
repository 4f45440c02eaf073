"""``tinynet train --save-keras PATH --export-onnx PATH``: the files appear at the end of training and work."""

from __future__ import annotations

import numpy as np
import pytest

from tinynet import cli
from tinynet.models import load_model


def test_train_writes_a_keras_file_and_an_onnx_graph(tmp_path, tiny_idx_dataset):
    pytest.importorskip("h5py")
    ort = pytest.importorskip("onnxruntime")
    keras_path, onnx_path = tmp_path / "model.keras", tmp_path / "model.onnx"
    assert cli.main(["train", "--data", str(tiny_idx_dataset()), "--epochs", "2", "--output", str(tmp_path / "run"),
                     "--verbose", "0", "--limit", "48", "--save-keras", str(keras_path),
                     "--export-onnx", str(onnx_path)]) == 0
    model = load_model(keras_path)
    x = np.random.default_rng(0).random((3, *model.input_shape[1:]), dtype=np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model.predict(x), atol=1e-5)


def test_save_keras_needs_a_keras_extension(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--save-keras", str(tmp_path / "model.tnz")])
    assert exit_info.value.code == 2
    assert "--save-keras" in capsys.readouterr().err
