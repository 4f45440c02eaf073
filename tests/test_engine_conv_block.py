"""The fused, sliced Conv2D -> MaxPooling2D -> ReLU [-> Dropout] stage against the layers it replaces."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet import applications, backend, engine
from tinynet.engine import blas, conv_block, machine, winograd_slices
from tinynet.engine import threads as parallel
from tinynet.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from tinynet.learn.gradcheck import check_model
from tinynet.models import Sequential, passes
from tinynet.optimizers import SGD
from tinynet.utils import set_random_seed, to_categorical


@pytest.fixture
def one_image_slices(monkeypatch):
    """Slices of a single image, so that even small test batches run as many slices."""
    monkeypatch.setattr(conv_block, "_SLICE_BYTES", 1)


def _block_layers(kernel, stride, padding, pool, pool_stride, channels, filters, height, width, rate, dtype,
                  pool_padding="valid"):
    layers = [Conv2D(filters, kernel, strides=stride, padding=padding, input_shape=(height, width, channels),
                     dtype=dtype),
              MaxPooling2D(pool, strides=pool_stride, padding=pool_padding, dtype=dtype),
              Activation("relu", dtype=dtype)]
    if rate is not None:
        layers.append(Dropout(rate, dtype=dtype))
    model = Sequential(layers)  # builds the layers in order
    return model.layers


def _through_layers(layers, x, dy):
    """The reference: each layer's forward in turn, then each backward in reverse; returns ``(y, dx)``."""
    y = x
    for layer in layers:
        y = layer.forward(y, training=True)
    gradient = dy
    for layer in reversed(layers):
        gradient = layer.backward(gradient)
    return y, gradient


@settings(max_examples=40, deadline=None)
@given(kernel=st.sampled_from([1, 2, 3, (3, 2)]), stride=st.sampled_from([1, 2]),
       padding=st.sampled_from(["valid", "same"]), pool=st.sampled_from([2, 3]), pool_stride=st.sampled_from([1, 2, 3]),
       channels=st.integers(1, 4), filters=st.integers(1, 5), batch=st.integers(1, 6),
       rate=st.sampled_from([None, 0.0, 0.4]), dtype=st.sampled_from(["float32", "float64"]),
       threads=st.sampled_from([1, 2]), slice_bytes=st.sampled_from([1, 1 << 30]), seed=st.integers(0, 1000),
       pool_padding=st.sampled_from(["valid", "same"]))
def test_stage_matches_the_layers_forward_and_backward(kernel, stride, padding, pool, pool_stride,
                                                      channels, filters, batch, rate, dtype, threads, slice_bytes,
                                                      seed, pool_padding):
    height, width = 9, 8
    set_random_seed(seed)
    geometry = (kernel, stride, padding, pool, pool_stride, channels, filters, height, width, rate, dtype, pool_padding)
    layers = _block_layers(*geometry)
    set_random_seed(seed)
    twins = _block_layers(*geometry)
    for layer, twin in zip(layers, twins, strict=True):
        twin.set_weights(layer.get_weights())
    stages = engine.plan(list(layers))
    assert [type(stage).__name__ for stage in stages] == ["ConvPoolReluDropout"]
    stage = stages[0]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, height, width, channels)).astype(dtype)

    before = parallel._requested_threads, conv_block._SLICE_BYTES
    parallel.set_num_threads(threads)
    conv_block._SLICE_BYTES = slice_bytes  # 1: one image a slice, so even small batches run as many slices
    try:
        inferred = stage.forward(x, training=False)
        y = stage.forward(x, training=True)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = stage.backward(dy)
    finally:
        parallel.set_num_threads(before[0])
        conv_block._SLICE_BYTES = before[1]

    expected = x
    for twin in twins:
        expected = twin.forward(expected, training=False)
    np.testing.assert_allclose(inferred, expected, rtol=1e-4 if dtype == "float32" else 1e-12, atol=1e-5)
    reference, gradient = _through_layers(twins, x, dy)
    # The same products, cut into other BLAS calls (which round differently), and the same pooling.
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(y, reference, rtol=tolerance, atol=tolerance)
    assert np.array_equal(y == 0, reference == 0)  # the same units dropped or cut by ReLU
    np.testing.assert_allclose(dx, gradient, rtol=tolerance, atol=tolerance * 10)
    for name in layers[0].grads:
        np.testing.assert_allclose(layers[0].grads[name], twins[0].grads[name], rtol=tolerance,
                                   atol=tolerance * batch * 10)


def test_backward_without_input_gradient_and_without_forward(one_image_slices):
    layers = _block_layers(3, 1, "valid", 2, 2, 2, 3, 8, 8, 0.5, "float32")
    stage = engine.plan(list(layers))[0]
    with pytest.raises(RuntimeError, match="backward called without a forward pass"):
        stage.backward(np.zeros((2, 3, 3, 3), np.float32))
    y = stage.forward(np.ones((2, 8, 8, 2), np.float32), training=True)
    stage.needs_input_gradient = False
    assert layers[0].needs_input_gradient is False
    assert stage.backward(np.ones_like(y)) is None
    assert np.isfinite(layers[0].grads["kernel"]).all()
    stage.forward(np.ones((2, 8, 8, 2), np.float32), training=True)
    with pytest.raises(ValueError, match="max_pooling2d"):
        stage.backward(np.ones((2, 4, 4, 3), np.float32))  # the wrong shape is named by the pooling layer


def test_training_is_the_same_bits_with_one_or_two_threads():
    def train(threads):
        before = parallel._requested_threads
        parallel.set_num_threads(threads)
        try:
            set_random_seed(11)
            model = applications.mnist_cnn()
            model.compile(SGD(0.05, momentum=0.9, nesterov=True), "categorical_crossentropy", ["accuracy"])
            rng = np.random.default_rng(1)
            x = rng.random((48, 28, 28, 1), dtype=np.float32)
            y = to_categorical(rng.integers(0, 10, 48), 10)
            history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
            return model.get_weights(), history.history, model.predict(x, batch_size=48)
        finally:
            parallel.set_num_threads(before)

    weights_1, history_1, predictions_1 = train(1)
    weights_2, history_2, predictions_2 = train(2)
    for a, b in zip(weights_1, weights_2, strict=True):
        assert np.array_equal(a, b)
    assert history_1 == history_2
    assert np.array_equal(predictions_1, predictions_2)


def test_model_gradient_check_through_many_slices(one_image_slices):
    backend.set_floatx("float64")  # restored to float32 by the autouse fixture
    set_random_seed(5)
    model = Sequential([Conv2D(3, 3, input_shape=(7, 7, 2)), MaxPooling2D(), Activation("relu"), Dropout(0.3),
                        Flatten(), Dense(4, activation="softmax")])
    model.compile(SGD(), "categorical_crossentropy")
    assert type(passes.stages(model)[0]).__name__ == "ConvPoolReluDropout"
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 7, 7, 2))
    y = np.eye(4)[rng.integers(0, 4, 5)]
    report = check_model(model, x, y, seed=5, step=1e-5, rtol=1e-4, atol=1e-6)
    assert report.passed, str(report)


def test_slices_follow_the_cache_budget_not_the_batch(monkeypatch):
    model = applications.mnist_cnn()
    first, second = model.layers[0], model.layers[4]
    monkeypatch.setattr(machine, "l2_cache_bytes", lambda: 1 << 20)
    assert conv_block.images_per_slice(first) == 3   # 26*26*(9 + 64) floats = 197 KB an image, 640 KB a slice
    assert conv_block.images_per_slice(second) == 2  # 11*11*(576 + 32) floats = 294 KB an image
    # Inference by F(4x4, 3x3): 36 planes of 9 tiles x (64 + 32) floats = 124 KB an image, the whole L2 a slice
    assert conv_block.images_per_slice(second, winograd_f4=True) == 8
    monkeypatch.setattr(machine, "l2_cache_bytes", lambda: 2 << 20)  # a CPU with twice the L2: slices twice as big
    assert conv_block.images_per_slice(first) == 6 and conv_block.images_per_slice(second) == 4
    assert conv_block.images_per_slice(second, winograd_f4=True) == 8  # ... but never more than 8 by F(4x4, 3x3)
    monkeypatch.setattr(machine, "l2_cache_bytes", lambda: 512 << 10)  # and a smaller L2, smaller slices
    assert conv_block.images_per_slice(second, winograd_f4=True) == 4


@pytest.mark.parametrize(("text", "expected"), [("1024K", 1 << 20), ("2M", 2 << 20), ("512", 512), ("1G", 1 << 30),
                                                ("", None), ("K", None), ("-5K", None), ("0", None), ("1.5M", None)])
def test_cache_sizes_are_read_as_sysfs_writes_them(text, expected):
    assert machine.parse_cache_size(text) == expected


def test_the_l2_size_comes_from_sysfs_or_the_environment(tmp_path, monkeypatch):
    for index, (level, kind, size) in enumerate([("1", "Data", "48K"), ("1", "Instruction", "32K"),
                                                 ("2", "Unified", "1280K"), ("3", "Unified", "32M")]):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        for name, text in (("level", level), ("type", kind), ("size", size)):
            (folder / name).write_text(text + "\n")
    assert machine.read_l2_bytes(tmp_path) == 1280 << 10
    assert machine.read_l2_bytes(tmp_path / "missing") is None
    machine.l2_cache_bytes.cache_clear()
    try:
        monkeypatch.setenv("TINYNET_L2_BYTES", "2097152")
        assert machine.l2_cache_bytes() == 2 << 20
        machine.l2_cache_bytes.cache_clear()
        monkeypatch.setenv("TINYNET_L2_BYTES", "lots")
        with pytest.raises(ValueError, match="TINYNET_L2_BYTES"):
            machine.l2_cache_bytes()
    finally:
        monkeypatch.delenv("TINYNET_L2_BYTES")
        machine.l2_cache_bytes.cache_clear()


def test_batch_size_changes_on_two_threads_keep_the_gradients_right(one_image_slices):
    # Regression: the whole-batch im2col matrix kept for backward was once made inside the threads, so when the
    # batch size changed (the last, shorter batch of an epoch) each thread wrote into its own new copy and the
    # backward pass read one of them: wrong weight gradients, now and then.
    set_random_seed(2)
    layers = _block_layers(3, 1, "valid", 2, 2, 1, 8, 28, 28, 0.25, "float32")
    set_random_seed(2)
    twins = _block_layers(3, 1, "valid", 2, 2, 1, 8, 28, 28, 0.25, "float32")
    twins[0].set_weights(layers[0].get_weights())
    stage = engine.plan(list(layers))[0]
    rng = np.random.default_rng(2)
    before = parallel._requested_threads
    parallel.set_num_threads(2)
    try:
        for batch in (32, 16, 3) * 10:  # matrices large enough that NumPy releases the GIL while filling them
            x = rng.random((batch, 28, 28, 1), dtype=np.float32)
            y = stage.forward(x, training=True)
            dy = rng.standard_normal(y.shape).astype(np.float32)
            stage.backward(dy)
            _through_layers(twins, x, dy)
            for name in ("kernel", "bias"):  # sums of ~20,000 float32 terms: rounding, scaled to the largest
                expected = twins[0].grads[name]
                np.testing.assert_allclose(layers[0].grads[name], expected, rtol=1e-4,
                                           atol=1e-5 * np.abs(expected).max())
    finally:
        parallel.set_num_threads(before)


@settings(max_examples=25, deadline=None)
@given(channels=st.sampled_from([16, 20]), filters=st.integers(1, 9), batch=st.integers(1, 5),
       padding=st.sampled_from(["valid", "same"]), size=st.integers(5, 12),
       dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 1000))
def test_compiled_winograd_slices_are_the_python_steps_bit_for_bit(channels, filters, batch, padding, size, dtype,
                                                                   seed):
    """Each F(4x4, 3x3) slice as one compiled call making its own gemm calls (tinynet.engine.winograd_slices)
    gives the bits of the same steps run from Python with numpy.matmul: output, input gradient, weight gradient."""
    if blas.gemm_functions() is None:
        pytest.skip("this BLAS has no 64-bit-integer cblas_sgemm for compiled code to call")

    def run(compiled):
        set_random_seed(seed)
        layers = _block_layers(3, 1, padding, 2, 2, channels, filters, size, size + 1, 0.3, dtype)
        (stage,) = engine.plan(list(layers))
        assert stage._uses_winograd()
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((batch, size, size + 1, channels)).astype(dtype)
        before, winograd_slices.COMPILED = winograd_slices.COMPILED, compiled
        try:
            y = stage.forward(x, training=True)
            dx = stage.backward(rng.standard_normal(y.shape).astype(dtype))
        finally:
            winograd_slices.COMPILED = before
        return y, dx, {name: grad.copy() for name, grad in layers[0].grads.items()}

    compiled, python = run(True), run(False)
    for a, b in zip(compiled[:2], python[:2], strict=True):
        assert np.array_equal(a, b)
    for name in python[2]:
        assert np.array_equal(compiled[2][name], python[2][name])
