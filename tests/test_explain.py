"""tinynet.learn.explain: real training steps recorded tensor by tensor and written as one offline HTML page."""

from __future__ import annotations

import json
import re
import struct
import time
import zlib
from base64 import b64decode
from pathlib import Path

import numpy as np
import pytest

from tinynet import applications, cli
from tinynet.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from tinynet.learn.explain import convolution, explain, record_steps
from tinynet.learn.explain.command import synthetic_images
from tinynet.learn.explain.updates import explain_updates
from tinynet.models import Sequential
from tinynet.optimizers import SGD, Adam
from tinynet.utils import set_random_seed, to_categorical

DOCS = Path(__file__).resolve().parent.parent / "docs"


def bars(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    images, labels = synthetic_images(count, seed)
    return images[..., None], to_categorical(labels, 10)


def small_cnn(optimizer=None) -> Sequential:
    model = Sequential([Conv2D(4, 3, padding="same", input_shape=(10, 10, 1)), MaxPooling2D(), Activation("relu"),
                        Dropout(0.25), Conv2D(3, 3, strides=2, activation="tanh"), Flatten(), Dense(6),
                        Activation("relu"), Dense(10, activation="softmax")])
    model.compile(optimizer or SGD(lr=0.05, momentum=0.9, nesterov=True), "categorical_crossentropy", ["accuracy"])
    return model


def small_bars(count: int = 16) -> tuple[np.ndarray, np.ndarray]:
    x, y = bars(count)
    return np.ascontiguousarray(x[:, 4:14, 4:14]), y


def page_images(text: str) -> dict[str, bytes]:
    """The page's picture table, decoded: key -> PNG bytes."""
    table = json.loads(re.search(r"const IMAGES = (\{.*?\});", text).group(1))
    return {key: b64decode(uri.removeprefix("data:image/png;base64,")) for key, uri in table.items()}


def check_png(data: bytes) -> tuple[int, int]:
    """Walk the PNG's chunks, checking every CRC and that the pixels inflate to the declared size."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, {}
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        tag, body = data[position + 4:position + 8], data[position + 8:position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length:position + 12 + length])
        assert zlib.crc32(tag + body) & 0xFFFFFFFF == crc, tag
        chunks[tag] = body
        position += 12 + length
    width, height, depth, colour_type = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour_type) == (8, 3)
    assert len(zlib.decompress(chunks[b"IDAT"])) == height * (width + 1)
    assert len(chunks[b"PLTE"]) == 256 * 3
    return width, height


# ------------------------------------------------------------------------------------------------ the page
def test_the_page_is_self_contained_and_every_picture_decodes(tmp_path):
    set_random_seed(0)
    model = small_cnn()
    x, y = small_bars()
    path = explain(model, x, y, tmp_path / "page.html", steps=2, batch_size=8)
    text = path.read_text(encoding="utf-8")
    assert "default-src 'none'" in text  # the page forbids itself every request
    # Nothing outside the file: no remote or relative address in any src, href or url(), no link element.
    assert re.findall(r"""(?:src|href)\s*=\s*["'](?!data:|#)""", text) == []
    assert "url(" not in text and "<link" not in text and "@import" not in text
    assert "http://" not in text and "https://" not in text
    images = page_images(text)
    referenced = set(re.findall(r'data-img="(i\d+)"', text))
    assert referenced == set(images)
    for data in images.values():
        check_png(data)
    # Two steps, each with an overview, a loss panel and both directions of every layer.
    panels = re.findall(r'<section class="panel" id="([^"]+)"', text)
    assert len(panels) == 2 * (2 + 2 * len(model.layers))
    assert text.count("PASSED") >= 2 * (len(model.layers) + 1) and "FAILED" not in text


def test_the_recorded_step_is_the_training_step(tmp_path):
    """explain trains exactly as train_step does (with the engine's stages off, bit for bit), and gives fuse back."""
    x, y = small_bars()
    set_random_seed(3)
    model = small_cnn()
    set_random_seed(3)
    twin = small_cnn()
    twin.fuse = False
    records = record_steps(model, x, y, steps=2, batch_size=8)
    for start in (0, 8):
        twin.train_step(x[start:start + 8], y[start:start + 8])
    for layer, twin_layer in zip(model.layers, twin.layers, strict=True):
        for name in layer.params:
            np.testing.assert_array_equal(layer.params[name], twin_layer.params[name])
            np.testing.assert_array_equal(records[-1].layers[layer_index(model, layer)].grads[name],
                                          twin_layer.grads[name])
    assert model.fuse is True and model.optimizer.iterations == 2
    assert all("forward" not in vars(layer) and "backward" not in vars(layer) for layer in model.layers)


def layer_index(model: Sequential, layer) -> int:
    return next(index for index, candidate in enumerate(model.layers) if candidate is layer)


def test_every_tensor_is_the_one_that_flowed(tmp_path):
    set_random_seed(1)
    model = small_cnn()
    x, y = small_bars()
    step = record_steps(model, x, y, steps=1, batch_size=8)[0]
    layers = step.layers
    np.testing.assert_array_equal(layers[0].x, x[:8])
    for below, above in zip(layers, layers[1:], strict=False):
        np.testing.assert_array_equal(below.y, above.x)   # forward: each output is the next input
        np.testing.assert_array_equal(below.dy, above.dx)  # backward: each dx is the gradient below receives
    assert layers[0].dx is None  # the first layer skips dx
    # The loss starts from the fused (p - y) / N, and its numeric check agrees.
    probabilities = layers[-1].y.astype(np.float64)
    np.testing.assert_allclose(layers[-1].dy, (probabilities - y[:8]) / 8, rtol=1e-5, atol=1e-7)
    assert layers[-1].fused and step.loss.fused
    analytic = np.array([step.loss.gradient[index] for index in step.loss.checked])
    np.testing.assert_allclose(analytic, step.loss.numeric, rtol=1e-4, atol=1e-7)
    # The updates are the optimizer's: after - before == what the momentum equations give on the first step.
    dense = layers[-1]
    np.testing.assert_allclose(dense.params_after["kernel"] - dense.params_before["kernel"],
                               -0.05 * dense.grads["kernel"] * (1 + 0.9), rtol=1e-3, atol=1e-7)  # float32 p
    assert all(record.check is not None and record.check.passed for record in layers)


def test_im2col_and_col2im_worked_on_the_steps_numbers():
    set_random_seed(2)
    model = small_cnn()
    x, y = small_bars()
    step = record_steps(model, x, y, steps=1, batch_size=8)[0]
    for record in (step.layers[0], step.layers[4]):  # 'same' padding, then stride 2 with tanh
        assert convolution.applies_to(record)
        field = convolution.receptive_field(record)
        assert field.y_computed == pytest.approx(field.y_layer, rel=1e-5, abs=1e-6)
        np.testing.assert_allclose(field.row, field.patch.reshape(-1))  # im2col's row is the window, (di, dj, c)
        back = convolution.gradient_back(record)
        assert back.total == pytest.approx(back.col2im_value, rel=1e-9, abs=1e-12)
        assert back.kernel_gradient == pytest.approx(back.kernel_gradient_layer, rel=1e-4, abs=1e-8)
        assert back.bias_gradient == pytest.approx(back.bias_gradient_layer, rel=1e-4, abs=1e-8)
    second = convolution.gradient_back(step.layers[4])
    assert second.layer_value == pytest.approx(second.total, rel=1e-4, abs=1e-8)  # the layer's own dx
    assert len(second.terms) >= 1


@pytest.mark.parametrize("optimizer", [SGD(lr=0.05, momentum=0.9, nesterov=True), SGD(lr=0.1, decay=0.01),
                                       Adam(lr=0.01)], ids=["sgd-nesterov", "sgd-decay", "adam"])
def test_the_filled_in_equations_give_what_the_optimizer_wrote(optimizer):
    set_random_seed(4)
    model = small_cnn(optimizer)
    x, y = small_bars()
    for step in record_steps(model, x, y, steps=2, batch_size=8):  # the second step has slots to read
        for record in step.layers:
            for item in explain_updates(step, record, optimizer):
                line = item.filled[-1]
                computed, written = re.search(r"= (\S+)\n?$", item.filled[-2]).group(1), \
                    re.search(r"wrote (\S+)", line).group(1)
                assert float(computed) == pytest.approx(float(written), rel=1e-4, abs=1e-9), (record.name, item)


def test_tutorial_cnn_page_is_small_and_fast(tmp_path):
    """The done criterion: the tutorial CNN's page, 3 steps of 32, in well under 10 s and 5 MB after compiling."""
    x, y = bars(96)
    set_random_seed(1)
    warm = applications.mnist_cnn()
    warm.compile(SGD(lr=0.001, decay=1e-6, nesterov=True), "categorical_crossentropy", ["accuracy"])
    explain(warm, x, y, tmp_path / "warm.html", steps=1, batch_size=8)  # Numba's first compile
    set_random_seed(1)
    model = applications.mnist_cnn()
    model.compile(SGD(lr=0.001, decay=1e-6, nesterov=True), "categorical_crossentropy", ["accuracy"])
    started = time.perf_counter()
    path = explain(model, x, y, tmp_path / "page.html", steps=3, batch_size=32)
    seconds = time.perf_counter() - started
    assert seconds < 10, seconds
    assert path.stat().st_size < 5_000_000


def test_a_learners_layer_from_the_docs_shows_up_with_its_check(tmp_path):
    """The Swish layer of docs/custom_layer.md, exactly as the page writes it, in a page of its own model; its
    planted product-rule bug is caught by the page's gradient check."""
    from test_docs import python_blocks

    namespace: dict = {}
    blocks = python_blocks((DOCS / "custom_layer.md").read_text(encoding="utf-8"))
    exec(compile(blocks[0][1], "custom_layer.md", "exec"), namespace)  # the Swish class
    swish_class = namespace["Swish"]

    class SwishForgotProductRule(swish_class):
        def backward(self, dy):
            x, s = self._take_cache()
            self.grads["beta"] = np.array([np.sum(dy * x * x * s * (1 - s))], dtype=self.dtype)
            return dy * s  # wrong: the beta * x * s' term is missing

    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)]
    for layer_class, verdict in ((swish_class, "PASSED"), (SwishForgotProductRule, "FAILED")):
        set_random_seed(0)
        model = Sequential([Dense(8, input_shape=(4,)), layer_class(), Dense(3, activation="softmax")])
        model.compile(SGD(lr=0.1), "categorical_crossentropy")
        text = explain(model, x, y, tmp_path / f"{layer_class.__name__}.html", steps=2, batch_size=16).read_text()
        name = model.layers[1].name
        assert f"{name} <small>{layer_class.__name__}</small>" in text  # in the layer list
        assert "Swish with a learned slope" in text  # its docstring is its formula
        assert "dbeta = dL/dbeta" in text  # its parameter's gradient, pictured
        backward = re.search(r'id="p0-1-b">(.*?)</section>', text, re.DOTALL).group(1)
        check = backward.split("Gradient check", 1)[1]
        assert verdict in check.split("</p>", 1)[0]
        if verdict == "FAILED":
            assert "WRONG" in check and "wrong at" in check


def test_bad_arguments_are_refused(tmp_path):
    model = Sequential([Dense(3, input_shape=(4,))])
    x, y = np.zeros((4, 4), np.float32), np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="compile the model first"):
        explain(model, x, y, tmp_path / "page.html")
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"\.html"):
        explain(model, x, y, tmp_path / "page.png")
    with pytest.raises(ValueError, match="steps must be a positive int"):
        explain(model, x, y, tmp_path / "page.html", steps=0)
    with pytest.raises(ValueError, match="same number of samples"):
        explain(model, x, y[:2], tmp_path / "page.html")
    assert not (tmp_path / "page.html").exists()


def test_a_model_without_softmax_starts_from_the_losss_gradient(tmp_path):
    set_random_seed(0)
    model = Sequential([Dense(5, activation="tanh", input_shape=(4,)), Dense(2)])
    model.compile(Adam(), "mse")
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    text = explain(model, x, x[:, :2], tmp_path / "page.html", steps=1, batch_size=8).read_text()
    assert "The backward pass starts from the loss's gradient" in text and "FAILED" not in text
    assert "lr_t = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)" in text


# ----------------------------------------------------------------------------------------------- the command
def test_command_writes_the_tutorial_page_from_synthetic_images(tmp_path, capsys):
    output = tmp_path / "out" / "explain.html"
    assert cli.main(["explain", "--synthetic", "--steps", "1", "--batch-size", "4", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert f"Wrote {output}" in printed and "synthetic" in printed and output.as_uri() in printed
    text = output.read_text()
    assert "conv2d_1 <small>Conv2D</small>" in text and "dense_3 <small>Dense</small>" in text


def test_command_reads_mnist_from_data(tmp_path, capsys, tiny_idx_dataset):
    output = tmp_path / "explain.html"
    code = cli.main(["explain", "--data", str(tiny_idx_dataset()), "--steps", "1", "--batch-size", "4",
                     "--output", str(output)])
    assert code == 0 and output.exists()
    assert "the first 4 MNIST training images from" in capsys.readouterr().out


def test_command_without_data_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    from tinynet.datasets import DatasetUnavailableError, mnist

    def unavailable(path=None):
        raise DatasetUnavailableError("mnist", [("the web", "skipped (TINYNET_OFFLINE=1)"),
                                                ("npm", "not installed")], "put the four IDX files in ...")

    monkeypatch.setattr(mnist, "load_data", unavailable)
    assert cli.main(["explain", "--output", str(tmp_path / "explain.html")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--data PATH" in error and "--synthetic" in error
    assert "could not get the mnist dataset" in error
    monkeypatch.undo()
    assert cli.main(["explain", "--data", str(tmp_path / "missing.npz"), "--output",
                     str(tmp_path / "explain.html")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("tinynet explain: error: --data:") and error.count("\n") == 1
    assert not (tmp_path / "explain.html").exists()


@pytest.mark.parametrize("flags", [["--steps", "0"], ["--batch-size", "x"]])
def test_command_refuses_bad_counts_as_argparse_does(flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["explain", "--synthetic", *flags])
    assert exit_info.value.code == 2 and "expected a positive integer" in capsys.readouterr().err


@pytest.mark.parametrize("shape", [(256, 10), (10, 256), (800, 512), (3, 3)])
def test_matrix_pictures_fit_on_a_screen(shape):
    from tinynet.learn.explain import pictures

    picture = pictures.parameter_picture(np.random.default_rng(0).standard_normal(shape))
    assert 120 <= picture.display_width <= 400 and 120 <= picture.display_height <= 400
    assert check_png(b64decode(picture.uri.removeprefix("data:image/png;base64,"))) == (
        min(shape[1], 192), min(shape[0], 192))


def test_other_layers_losses_and_optimizers(tmp_path):
    """Batch normalisation, average pooling, a leaky ReLU, integer labels and an optimizer without its own worked
    equations: every array still checked, the fused gradient built from the labels, the equations shown."""
    from tinynet.layers import BatchNormalization, GlobalAveragePooling2D, LeakyReLU
    from tinynet.optimizers import Adamax

    set_random_seed(0)
    model = Sequential([Conv2D(4, 3, input_shape=(10, 10, 1)), BatchNormalization(), LeakyReLU(0.1),
                        GlobalAveragePooling2D(), Dense(10, activation="softmax")])
    model.compile(Adamax(), "sparse_categorical_crossentropy", ["accuracy"])
    x, _ = small_bars()
    labels = np.arange(len(x)) % 10
    moving = model.layers[1].state["moving_mean"].copy()
    steps = record_steps(model, x, labels, steps=2, batch_size=8)
    assert all(record.check.passed for step in steps for record in step.layers)
    assert not np.array_equal(model.layers[1].state["moving_mean"], moving)  # trained: the statistics moved
    loss = steps[0].loss
    np.testing.assert_allclose(loss.gradient, (loss.outputs - np.eye(10)[labels[:8]]) / 8, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose([loss.gradient[index] for index in loss.checked], loss.numeric, rtol=1e-4,
                               atol=1e-7)
    text = explain(model, x, labels, tmp_path / "page.html", steps=1, batch_size=8).read_text()
    assert "infinity_norms:" in text and "u    = max(beta_2 * u, |g|)" in text and "FAILED" not in text
