"""Looking inside a network: layer costs and the summary's extra columns (tinynet.models.costs), trace_step, the
TrainingRecorder callback, its pictures (tinynet.learn), and ``tinynet train --inspect``."""

from __future__ import annotations

import math

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from tinynet import applications, cli
from tinynet.layers import (
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    Layer,
    LeakyReLU,
    MaxPooling2D,
    ReLU,
)
from tinynet.learn.pictures import plot_gradient_norms, plot_update_ratios, save_inspection
from tinynet.learn.recorder import COLUMNS, TrainingRecorder
from tinynet.learn.trace import dead_fraction, is_relu, trace_step
from tinynet.models import Sequential, costs
from tinynet.optimizers import SGD
from tinynet.utils import set_random_seed


# ------------------------------------------------------------------------------------------ costs, summary
def test_flops_and_activation_memory_of_the_tutorial_cnn_by_hand():
    model = applications.mnist_cnn()
    flops = {layer.name: costs.forward_flops(layer) for layer in model.layers}
    assert flops["conv2d_1"] == 2 * 26 * 26 * 3 * 3 * 1 * 64  # 2 * Ho * Wo * kh * kw * Cin * F
    assert flops["conv2d_2"] == 2 * 11 * 11 * 3 * 3 * 64 * 32
    assert flops["dense_1"] == 2 * 800 * 512 and flops["dense_3"] == 2 * 256 * 10
    assert flops["max_pooling2d_1"] == 13 * 13 * 64 * 4  # one comparison per window element
    assert flops["activation_1"] == 13 * 13 * 64 and flops["flatten_1"] == 0
    assert costs.activation_bytes(model.layers[0], 32) == 32 * 26 * 26 * 64 * 4
    assert costs.activation_bytes(model.layers[8], 32) == 0  # Flatten's output is a view
    assert costs.format_bytes(32 * 26 * 26 * 64 * 4) == "5.28 MiB"
    assert [costs.format_bytes(n) for n in (0, 1023, 1536, 3 * 2**30)] == ["0 B", "1023 B", "1.5 KiB", "3 GiB"]


def test_flops_of_the_new_layers_and_of_a_learners_layer():
    cases = [(AveragePooling2D(3, strides=2, padding="same"), (5, 5, 2), 3 * 3 * 2 * 9),
             (GlobalAveragePooling2D(), (4, 3, 2), 24), (BatchNormalization(), (4, 3), 12), (LeakyReLU(), (7,), 7),
             (Dense(5), (3, 4), 2 * 3 * 4 * 5)]
    for layer, shape, expected in cases:
        layer.build(shape)
        assert costs.forward_flops(layer) == expected, type(layer).__name__

    class Doubler(Layer):
        def flops_per_sample(self) -> int:
            return 42

    layer = Doubler()
    layer.build((3,))
    assert costs.forward_flops(layer) == 42
    with pytest.raises(RuntimeError, match="dense_2 is not built yet"):
        costs.forward_flops(Dense(2))


def test_summary_with_a_batch_size_adds_flops_and_memory_columns_and_leaves_the_default_alone():
    model = applications.mnist_cnn()
    default, explicit_none, with_batch = [], [], []
    model.summary(print_fn=default.append)
    model.summary(print_fn=explicit_none.append, batch_size=None)
    model.summary(print_fn=with_batch.append, batch_size=32)
    assert default == explicit_none
    assert "FLOPs" not in "\n".join(default) and max(len(line) for line in default) == 65
    assert with_batch[1].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#", "FLOPs", "Activations"]
    conv_row = next(line for line in with_batch if line.startswith("conv2d_1"))
    assert conv_row.split()[-3:] == ["24,920,064", "5.28", "MiB"]
    # The first 65 columns of each layer row are exactly Keras's row.
    assert [line[:65].rstrip() for line in with_batch if "(" in line[:30] and "Layer" not in line] == [
        line.rstrip() for line in default if "(" in line[:30] and "Layer" not in line]
    total = sum(costs.forward_flops(layer) for layer in model.layers) * 32
    assert f"Forward FLOPs for a batch of 32: {total:,}" in with_batch
    assert total == 204_695_552
    assert any(line.startswith("Output activations for a batch of 32: ") for line in with_batch)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        model.summary(batch_size=0)


# -------------------------------------------------------------------------------------------- helpers
def _small_cnn(seed=3, dropout=0.25):
    """The tutorial's shape in miniature: Conv -> MaxPool -> ReLU -> Dropout (a fused stage) -> Dense."""
    set_random_seed(seed)
    model = Sequential([Conv2D(4, 3, input_shape=(8, 8, 1)), MaxPooling2D(2), Activation("relu"),
                        Dropout(dropout), Flatten(), Dense(6, activation="relu"), Dense(3, activation="softmax")])
    model.compile(SGD(learning_rate=0.05), "categorical_crossentropy", metrics=["accuracy"])
    return model


def _data(count=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((count, 8, 8, 1), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, count)]
    return x, y


# ------------------------------------------------------------------------------------------ trace_step
def test_trace_step_shapes_and_gradients_without_updating_anything():
    model = _small_cnn()
    x, y = _data(5)
    weights = model.get_weights()
    traces = trace_step(model, x, y)
    assert [trace.name for trace in traces] == [layer.name for layer in model.layers]
    assert [trace.output_shape for trace in traces] == [(5, *layer.output_shape) for layer in model.layers]
    assert traces[0].input_shape == (5, 8, 8, 1)
    assert traces[0].input_gradient_shape is None  # the first layer hands dx to no one
    assert traces[-1].fused and traces[-1].upstream_shape == (5, 3)  # (p - y) / N goes straight to the logits
    for earlier, later in zip(traces, traces[1:], strict=False):
        if earlier.upstream_shape is not None:
            assert later.input_gradient_shape == earlier.output_shape
    assert traces[2].output_dead_fraction is not None and traces[1].output_dead_fraction is None
    for trace, layer in zip(traces, model.layers, strict=True):
        assert set(trace.gradient_norms) == set(layer.params)
        for name, grad in trace.gradients.items():
            assert trace.gradient_norms[name] == pytest.approx(np.linalg.norm(grad.astype(np.float64)))
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    assert model.fuse is True and not any("forward" in vars(layer) for layer in model.layers)
    with pytest.raises(RuntimeError, match="compile the model first"):
        trace_step(Sequential([Dense(2, input_shape=(3,))]), np.ones((1, 3)), np.ones((1, 2)))


# ---------------------------------------------------------------------------------------- the recorder
def test_recording_does_not_change_training_and_leaves_the_model_as_it_was():
    x, y = _data()
    plain = _small_cnn()
    plain.fit(x, y, batch_size=8, epochs=2, verbose=0)
    recorded = _small_cnn()
    recorder = TrainingRecorder(every=2)
    recorded.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[recorder])
    for a, b in zip(plain.get_weights(), recorded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # bit for bit, fused steps and recorded (unfused) steps alike
    assert recorded.fuse is True
    assert not any(name in vars(layer) for layer in recorded.layers for name in ("forward", "backward"))


def test_recording_a_weighted_fit_changes_nothing_either():
    # The recorder wraps the public step; the wrapper must pass the per-sample weights on.
    x, y = _data()
    weights = np.linspace(0, 2, len(x))
    plain = _small_cnn()
    plain.fit(x, y, batch_size=8, epochs=1, verbose=0, sample_weight=weights)
    recorded = _small_cnn()
    recorded.fit(x, y, batch_size=8, epochs=1, verbose=0, sample_weight=weights,
                 callbacks=[TrainingRecorder(every=1)])
    for a, b in zip(plain.get_weights(), recorded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_recorder_table_every_quantity_every_layer_at_the_chosen_steps():
    x, y = _data()
    model = _small_cnn()
    recorder = TrainingRecorder(every=2)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[recorder], validation_data=(x, y))
    frame = recorder.to_dataframe()
    assert list(frame.columns) == ["step", "epoch", "layer", "quantity", "value"]
    assert sorted(frame["step"].unique()) == [0, 2, 4]  # 3 batches per epoch, 6 steps, every 2nd recorded
    assert dict(frame.groupby("step")["epoch"].first()) == {0: 0, 2: 0, 4: 1}
    at_zero = frame[frame["step"] == 0]
    quantities = {(row.layer, row.quantity) for row in at_zero.itertuples()}
    for layer in model.layers:
        assert {(layer.name, "activation_mean"), (layer.name, "activation_std")} <= quantities, layer.name
        for name in layer.params:
            for kind in ("grad_norm", "weight_norm", "update_ratio"):
                assert (layer.name, f"{kind}/{name}") in quantities
    dead = {layer for layer, quantity in quantities if quantity == "dead_fraction"}
    assert dead == {"activation_1", "dense_1"}  # Activation('relu') and Dense(activation='relu')
    assert ("model", "loss") in quantities
    # An all-zero bias has no relative update at step 0; later it has one.
    bias_ratio = frame[(frame["layer"] == "conv2d_1") & (frame["quantity"] == "update_ratio/bias")]
    assert math.isnan(bias_ratio["value"].iloc[0]) and bias_ratio["value"].iloc[1] > 0
    assert len(history.history["loss"]) == 2  # validation ran (training=False) and was not recorded
    assert len(frame) == len(frame.drop_duplicates(["step", "layer", "quantity"]))
    # A second fit with the same recorder continues the step count.
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[recorder])
    assert sorted(recorder.to_dataframe()["step"].unique()) == [0, 2, 4, 6, 8]


def test_recorded_numbers_match_a_hand_computed_step():
    set_random_seed(0)
    model = Sequential([Dense(4, activation="relu", input_shape=(3,)), Dense(2, activation="softmax")])
    learning_rate = 0.1
    model.compile(SGD(learning_rate=learning_rate), "categorical_crossentropy")
    first = model.layers[0]
    first.params["bias"][:] = [-100.0, 0.5, 0.5, 0.5]  # unit 0 can never fire on these inputs: dead
    x = np.random.default_rng(1).random((6, 3), dtype=np.float32)
    y = np.eye(2, dtype=np.float32)[[0, 1, 0, 1, 1, 0]]
    before = [w.copy() for w in model.get_weights()]
    hidden = np.maximum(x @ first.params["kernel"] + first.params["bias"], 0)
    recorder = TrainingRecorder()
    history = model.fit(x, y, batch_size=6, epochs=1, verbose=0, shuffle=False, callbacks=[recorder])
    values = recorder.to_dataframe().set_index(["layer", "quantity"])["value"]
    assert values[("dense_1", "dead_fraction")] == 0.25
    assert values[("dense_1", "activation_mean")] == pytest.approx(hidden.mean(), rel=1e-6)
    assert values[("dense_1", "activation_std")] == pytest.approx(hidden.std(), rel=1e-5)
    kernel_before, kernel_after = before[0].astype(np.float64), first.params["kernel"].astype(np.float64)
    delta = np.linalg.norm(kernel_after - kernel_before)
    # Plain SGD: W_after - W_before = -lr * g, so ||g|| = ||delta W|| / lr.
    assert values[("dense_1", "grad_norm/kernel")] == pytest.approx(delta / learning_rate, rel=1e-5)
    assert values[("dense_1", "update_ratio/kernel")] == pytest.approx(delta / np.linalg.norm(kernel_before),
                                                                       rel=1e-5)
    assert values[("dense_1", "weight_norm/kernel")] == pytest.approx(np.linalg.norm(kernel_after), rel=1e-6)
    assert values[("model", "loss")] == pytest.approx(history.history["loss"][0])


def test_is_relu_and_dead_fraction():
    assert is_relu(Activation("relu")) and is_relu(ReLU()) and is_relu(Dense(2, "relu"))
    assert not is_relu(ReLU(negative_slope=0.1)) and not is_relu(LeakyReLU())
    assert not is_relu(Activation("tanh")) and not is_relu(Dense(2))
    outputs = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]])
    assert dead_fraction(outputs) == 0.5  # units 0 and 3 are zero for the whole batch


def test_recorder_arguments_and_plot_inputs_are_checked(tmp_path):
    with pytest.raises(ValueError, match="every must be a positive int"):
        TrainingRecorder(every=0)
    with pytest.raises(ValueError, match="the table is empty"):
        plot_gradient_norms(TrainingRecorder(), tmp_path / "g.png")
    with pytest.raises(TypeError, match="expected a TrainingRecorder or its to_dataframe"):
        plot_update_ratios({"step": [0]}, tmp_path / "u.png")
    frame = pd.DataFrame([(0, 0, "dense_1", "grad_norm/kernel", 1.0)], columns=COLUMNS)
    with pytest.raises(ValueError, match="must name a .png file"):
        plot_gradient_norms(frame, tmp_path / "g.jpg")


# ----------------------------------------------------------------------------------------- pictures
def test_save_inspection_writes_the_table_and_three_readable_pictures(tmp_path):
    x, y = _data()
    model = _small_cnn()
    recorder = TrainingRecorder()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[recorder])
    paths = save_inspection(recorder, tmp_path / "out")
    assert [path.name for path in paths] == ["inspect.csv", "gradient_norms.png", "update_ratios.png",
                                             "activations.png"]
    table = pd.read_csv(paths[0])
    pd.testing.assert_frame_equal(table, recorder.to_dataframe(), check_exact=False, rtol=1e-5)
    for path in paths[1:]:
        picture = matplotlib.image.imread(path)
        assert picture.shape[0] > 300 and picture.shape[1] > 700, path.name
        assert picture[..., :3].std() > 0.05  # not a blank page
    assert not [path for path in (tmp_path / "out").iterdir() if path.name.startswith(".")]


# ------------------------------------------------------------------------------------ tinynet train --inspect
def test_train_with_inspect_writes_the_table_and_pictures(tmp_path, capsys, tiny_idx_dataset):
    data = tiny_idx_dataset(train=48, test=20)
    output = tmp_path / "run"
    code = cli.main(["train", "--data", str(data), "--epochs", "2", "--batch-size", "16", "--inspect",
                     "--inspect-every", "2", "--output", str(output), "--verbose", "2", "--seed", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "FLOPs" in printed and "Forward FLOPs for a batch of 16: 102,347,776" in printed
    assert "Wrote inspect.csv, gradient_norms.png, update_ratios.png, activations.png" in printed
    table = pd.read_csv(output / "inspect.csv")
    assert sorted(table["step"].unique()) == [0, 2]  # 48 images / 16 = 3 steps, every 2nd
    assert set(table["layer"]) >= {"conv2d_1", "activation_1", "dense_3", "model"}
    for name in ("gradient_norms", "update_ratios", "activations"):
        assert matplotlib.image.imread(output / f"{name}.png").shape[1] > 700


def test_the_inspect_backprop_example_runs_and_every_gradient_agrees(monkeypatch, capsys):
    import runpy
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "examples" / "inspect_backprop.py"
    monkeypatch.setattr(sys, "argv", [str(example), "--synthetic", "--batch-size", "4", "--check-batch-size", "2",
                                      "--max-entries", "3"])
    runpy.run_path(str(example), run_name="__main__")
    printed = capsys.readouterr().out
    assert "FORWARD (top to bottom)" in printed and "BACKWARD (bottom to top)" in printed
    backward_row = next(line for line in printed.split("BACKWARD")[1].splitlines() if "conv2d_2" in line)
    assert backward_row.split()[1:2] == ["4x11x11x32"] and "4x13x13x64" in backward_row  # arrives, leaves
    assert printed.count(" ok ") == 10 and "All gradients agree." in printed
