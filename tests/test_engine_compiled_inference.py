"""The whole-network compiled inference (tinynet.engine.compiled_inference) against the stages and the layers."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinynet.applications import mnist_cnn
from tinynet.engine import compiled_inference, conv_block, threads
from tinynet.kernels import winograd_f5
from tinynet.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from tinynet.models import Sequential, passes
from tinynet.utils import set_random_seed


def _cnn(size, filters, hidden, last_units, last_activation, use_bias):
    layers = [Conv2D(filters[0], 3, use_bias=use_bias, input_shape=(size, size, 1)), MaxPooling2D(),
              Activation("relu"), Dropout(0.25),
              Conv2D(filters[1], 3, use_bias=use_bias), MaxPooling2D(), Activation("relu"), Flatten()]
    for units in hidden:
        layers += [Dense(units, use_bias=use_bias), Activation("relu"), Dropout(0.5)]
    layers.append(Dense(last_units, activation=last_activation))
    return Sequential(layers)


def _outputs(model, x, enabled, monkeypatch):
    monkeypatch.setattr(compiled_inference, "ENABLED", enabled)
    outputs = passes.forward(model, x, training=False)
    monkeypatch.setattr(compiled_inference, "ENABLED", True)  # (hypothesis's next example starts from the default)
    return outputs


@pytest.mark.usefixtures("two_threads")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(12, 29), filters=st.tuples(st.sampled_from([16, 24]), st.sampled_from([4, 8])),
       hidden=st.lists(st.integers(1, 40), max_size=2), last_units=st.integers(1, 12),
       last_activation=st.sampled_from(["softmax", "linear", "relu"]), use_bias=st.booleans(),
       batch=st.integers(1, 23), small_slices=st.booleans(), seed=st.integers(0, 2**16))
def test_compiled_inference_gives_the_stages_numbers_with_any_thread_count(size, filters, hidden, last_units,
                                                                         last_activation, use_bias, batch,
                                                                         small_slices, seed, monkeypatch):
    monkeypatch.setattr(conv_block, "_SLICE_BYTES", 1 if small_slices else None)  # one image a slice
    set_random_seed(seed)
    model = _cnn(size, filters, hidden, last_units, last_activation, use_bias)
    network = passes.compiled_inference(model)
    assert network is not None
    x = np.random.default_rng(seed).standard_normal((batch, size, size, 1)).astype(np.float32)
    whole = _outputs(model, x, True, monkeypatch)
    staged = _outputs(model, x, False, monkeypatch)
    assert whole.shape == staged.shape == (batch, last_units) and whole.dtype == np.float32
    # F(5x5, 3x3)'s larger transforms round a few times more than the stages' F(4x4, 3x3)
    absolute = (1e-6 if network.tile == 4 else 1e-5) * max(1.0, float(np.abs(staged).max()))
    np.testing.assert_allclose(whole, staged, rtol=1e-5, atol=absolute)
    monkeypatch.setattr(compiled_inference, "ENABLED", True)
    threads.set_num_threads(1)
    assert np.array_equal(passes.forward(model, x, training=False), whole)  # the cut never depends on threads
    model.fuse = False
    np.testing.assert_allclose(whole, passes.forward(model, x, training=False), rtol=1e-4, atol=1e-5)


def test_the_tutorial_network_predicts_the_stages_numbers_at_the_benchmark_batches(two_threads, monkeypatch):
    set_random_seed(3)
    model = mnist_cnn()
    assert passes.compiled_inference(model).tile == 5  # 4 tiles of 49 products cover the 10x10 the pooling reads
    for batch in (2, 100, 1000):
        x = np.random.default_rng(batch).random((batch, 28, 28, 1), dtype=np.float32)
        staged = _outputs(model, x, False, monkeypatch)
        np.testing.assert_allclose(_outputs(model, x, True, monkeypatch), staged, rtol=2e-6, atol=1e-7)
        # by F(4x4, 3x3) over the whole map, as the stage computes it: the stages' very bits
        monkeypatch.setattr(compiled_inference, "TILE_F5_ENABLED", False)
        assert passes.compiled_inference(model).tile == 4
        assert np.array_equal(_outputs(model, x, True, monkeypatch), staged)
        monkeypatch.setattr(compiled_inference, "TILE_F5_ENABLED", True)


@pytest.mark.parametrize(("size", "tile"), [(28, 5), (26, 5), (24, 5), (22, 4), (20, 4), (16, 5), (30, 4)])
def test_the_second_convolution_takes_the_tile_with_fewer_multiplications(size, tile):
    # The second convolution's map is (size - 2) // 2 - 2 wide, and the 2x2 pooling reads twice its floored half:
    # 28 -> 11x11, 10x10 read: 4 F(5x5) tiles of 49 products (196) against 9 F(4x4) tiles of 36 (324) over the
    # whole map; 22 -> 8x8: 196 against 4 x 36 = 144; 16 -> 5x5, 4x4 read: 49 against 144; 30 -> 12x12: 441 / 324
    set_random_seed(0)
    model = _cnn(size, (16, 4), [], 3, "softmax", True)
    whole = passes.compiled_inference(model)
    conv2 = model.layers[4]
    read = 2 * (conv2.out_h // 2)
    expected = 5 if winograd_f5.multiplications(read, read, 5) < winograd_f5.multiplications(conv2.out_h,
                                                                                               conv2.out_w, 4) else 4
    assert whole.tile == expected == tile


def test_plans_are_kept_per_batch_size_and_give_the_same_numbers_again(two_threads, monkeypatch):
    set_random_seed(4)
    model = _cnn(14, (16, 4), [9], 3, "softmax", True)
    rng = np.random.default_rng(4)
    inputs = {batch: rng.random((batch, 14, 14, 1), dtype=np.float32) for batch in (1, 2, 3, 7, 9, 12)}
    expected = {batch: _outputs(model, x, False, monkeypatch) for batch, x in inputs.items()}
    first = {batch: _outputs(model, x, True, monkeypatch) for batch, x in inputs.items()}
    for batch in (7, 3, 12, 1, 7, 9, 2, 7):  # more sizes than are kept: plans are dropped and made again
        again = _outputs(model, inputs[batch], True, monkeypatch)
        assert np.array_equal(again, first[batch])
        np.testing.assert_allclose(again, expected[batch], rtol=1e-5, atol=1e-6)
    whole = passes.compiled_inference(model)
    assert whole is not None and 0 < len(whole._plans) <= 4


def test_a_worker_that_starts_late_finds_its_pieces_taken_and_the_bits_are_the_same(two_threads, monkeypatch):
    set_random_seed(2)
    model = mnist_cnn()
    x = np.random.default_rng(2).random((40, 28, 28, 1), dtype=np.float32)
    on_time = passes.forward(model, x, training=False)
    lanes = compiled_inference.inference_lanes
    started: list[int] = []

    def late_worker(gate, first_lane, *rest):
        if first_lane > 0:
            time.sleep(0.05)  # the calling thread claims every slice and both halves meanwhile
        started.append(first_lane)
        lanes(gate, first_lane, *rest)

    monkeypatch.setattr(compiled_inference, "inference_lanes", late_worker)
    late = passes.forward(model, x, training=False)
    assert sorted(started) == [0, 1]
    assert np.array_equal(late, on_time)


@pytest.mark.usefixtures("float64")
def test_float64_models_run_through_dgemm(monkeypatch):
    set_random_seed(6)
    model = _cnn(14, (16, 4), [9], 3, "softmax", True)
    assert passes.compiled_inference(model) is not None
    x = np.random.default_rng(6).random((5, 14, 14, 1))
    whole = _outputs(model, x, True, monkeypatch)
    assert whole.dtype == np.float64
    model.fuse = False
    np.testing.assert_allclose(whole, passes.forward(model, x, training=False), rtol=1e-12, atol=1e-13)


def test_predictions_follow_weights_changed_in_place(monkeypatch):
    set_random_seed(8)
    model = _cnn(16, (16, 8), [12], 4, "softmax", True)
    x = np.random.default_rng(8).random((6, 16, 16, 1), dtype=np.float32)
    before = model.predict(x, verbose=0)
    for layer in (model.layers[0], model.layers[4], model.layers[8]):  # both convolutions and a dense layer
        layer.params["kernel"][...] *= -1.5
    after = model.predict(x, verbose=0)
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, _outputs(model, x, False, monkeypatch), rtol=1e-5, atol=1e-6)


def test_a_large_batch_goes_in_chunks_and_matches(monkeypatch):
    set_random_seed(5)
    model = _cnn(12, (16, 4), [7], 3, "softmax", True)
    x = np.random.default_rng(5).random((11, 12, 12, 1), dtype=np.float32)
    whole = passes.forward(model, x, training=False)
    monkeypatch.setattr(passes, "INFERENCE_CHUNK", 4)
    np.testing.assert_allclose(passes.forward(model, x, training=False), whole, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("change", ["fuse off", "disabled", "tanh in the middle", "three channels", "no flatten",
                                    "average of a dense", "5x5 kernel"])
def test_other_plans_run_stage_by_stage(change, monkeypatch):
    set_random_seed(1)
    if change == "tanh in the middle":
        model = Sequential([*_cnn(14, (16, 4), [], 3, "softmax", True).layers[:-1], Dense(6, activation="tanh"),
                            Dense(3, activation="softmax")])
    elif change == "three channels":
        model = Sequential([Conv2D(16, 3, input_shape=(14, 14, 3)), MaxPooling2D(), Activation("relu"),
                            Conv2D(4, 3), MaxPooling2D(), Activation("relu"), Flatten(), Dense(3)])
    elif change == "no flatten":
        model = Sequential([Conv2D(16, 3, input_shape=(14, 14, 1)), MaxPooling2D(), Activation("relu"),
                            Conv2D(4, 3), MaxPooling2D(), Activation("relu")])
    elif change == "average of a dense":
        model = Sequential([*_cnn(14, (16, 4), [], 3, "softmax", True).layers[:-1], Dense(3), Dropout(0.5)])
    elif change == "5x5 kernel":
        model = Sequential([Conv2D(16, 3, input_shape=(20, 20, 1)), MaxPooling2D(), Activation("relu"),
                            Conv2D(4, 5), MaxPooling2D(), Activation("relu"), Flatten(), Dense(3)])
    else:
        model = _cnn(14, (16, 4), [5], 3, "softmax", True)
        if change == "fuse off":
            model.fuse = False
        else:
            monkeypatch.setattr(compiled_inference, "ENABLED", False)
    x = np.random.default_rng(1).random((3, *model.layers[0]._built_input_shape), dtype=np.float32)
    assert passes.compiled_inference(model) is None
    model.predict(x, verbose=0)  # and it still predicts, stage by stage


def test_a_wrong_input_is_refused_by_name_before_any_compiled_code():
    model = mnist_cnn()
    whole = passes.compiled_inference(model)
    assert whole is not None
    with pytest.raises(ValueError, match="conv2d"):
        whole.forward(np.zeros((2, 27, 28, 1), dtype=np.float32))
    with pytest.raises(ValueError, match="conv2d"):
        whole.forward(np.zeros((2, 28, 28), dtype=np.float32))
