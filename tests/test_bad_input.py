"""Malformed input at every public entry point ends in a ValueError or TypeError that says what is wrong.

Hypothesis throws random bad values (wrong types, ranks, shapes and lengths, empty arrays, NaN and Inf, ragged
nested lists, strings, None, negative and zero sizes) at one argument of one entry point while every other
argument is valid. A call may succeed (some draws happen to be valid: integer images are accepted and cast, as
Keras does); when it fails, it must fail with ValueError or TypeError (RuntimeError where the contract says so:
backward before forward) and a message that names something. An IndexError, AttributeError, ZeroDivisionError
or a NumPy broadcasting error from deep inside fails the test.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinynet import backend, callbacks, cli, datasets, layers, optimizers
from tinynet.models import Sequential, load_model, saving
from tinynet.utils import to_categorical

INPUT_SHAPE = (6, 6, 1)
CLASSES = 3

# ------------------------------------------------------------------------------------------------- the values
_SCALARS = st.sampled_from([
    None, 0, -1, -7, 1, 2, 100, 0.0, -0.5, 0.5, 2.5, float("nan"), float("inf"), -float("inf"), True, False,
    "", "abc", "3", "relu", "same", b"bytes", 1j, object(), {}, {"a": 1}, set(), (), [], [[]], (0,), (-1, 2),
    (3, 3), (1, 2, 3), ("a", "b"), (2.5, 2), [1, [2, 3]], [[1, 2], [3]], [[1.0, 2.0], [3.0, 4.0]],
    np.int64(3), np.float32(0.25), np.array(2), np.array([]), np.array(["x", "y"]), np.array([None, 1]),
    np.zeros((0, 6, 6, 1)), np.zeros((2, 6, 6)), np.zeros((2, 6, 6, 2)), np.zeros((2, 7, 7, 1)),
    np.full((2, 6, 6, 1), np.nan), np.full((2, 6, 6, 1), np.inf, dtype=np.float32),
    np.zeros((2, 6, 6, 1), np.complex64),
    np.arange(2 * 36, dtype=np.uint8).reshape(2, 6, 6, 1), np.zeros((2, CLASSES)), np.zeros((3, CLASSES)),
    np.array([0, 1]), np.array([0, 5]), np.array([-1, 0]), np.array([0.5, 1.0]), np.full((2, CLASSES), np.nan),
    np.zeros((2, CLASSES), dtype=bool), np.array([[0, 1, 0], [1, 0]], dtype=object),
])

# Values stay within +-1000 (plus NaN and Inf for floats): a label of 10**10 would ask to_categorical for a
# one-hot array of tens of GiB, which is a memory question, not a validation one.
_ARRAYS = st.one_of(
    hnp.arrays(dtype=np.uint8, shape=hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=7)),
    hnp.arrays(dtype=st.sampled_from([np.int32, np.int64]),
               shape=hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=7),
               elements=st.integers(min_value=-1000, max_value=1000)),
    hnp.arrays(dtype=st.sampled_from([np.float32, np.float64]),
               shape=hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=7),
               elements=st.floats(min_value=-1000, max_value=1000, width=32) | st.sampled_from([np.nan, np.inf])),
    hnp.arrays(dtype=np.bool_, shape=hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=7)),
)

BAD_VALUES = st.one_of(_SCALARS, _ARRAYS)


# ------------------------------------------------------------------------------------------------ the targets
def _model(compiled: bool = True) -> Sequential:
    backend.set_random_seed(0)
    model = Sequential([
        layers.Conv2D(2, (3, 3), input_shape=INPUT_SHAPE, activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(CLASSES, activation="softmax"),
    ])
    if compiled:
        model.compile(optimizers.SGD(0.01), "categorical_crossentropy", ["accuracy"])
    return model


def _data(samples: int = 4):
    rng = np.random.default_rng(0)
    x = rng.random((samples, *INPUT_SHAPE), dtype=np.float32)
    y = to_categorical(np.arange(samples) % CLASSES, CLASSES)
    return x, y


def _fit(**overrides):
    x, y = _data()
    arguments = {"x": x, "y": y, "batch_size": 2, "epochs": 1, "verbose": 0} | overrides
    return _model().fit(**arguments)


def _evaluate(**overrides):
    x, y = _data()
    return _model().evaluate(**({"x": x, "y": y, "verbose": 0} | overrides))


def _predict(**overrides):
    x, _ = _data()
    return _model().predict(**({"x": x} | overrides))


def _on_batch(method: str, **overrides):
    x, y = _data()
    arguments = {"x": x} if method == "predict_on_batch" else {"x": x, "y": y}
    return getattr(_model(), method)(**(arguments | overrides))


def _built(layer: layers.Layer, input_shape: tuple[int, ...] = INPUT_SHAPE) -> layers.Layer:
    layer.build(input_shape)
    return layer


def _forward(layer: layers.Layer, value):
    return _built(layer).forward(value, training=True)


def _backward(layer: layers.Layer, value):
    layer = _built(layer)
    layer.forward(_data()[0], training=True)
    return layer.backward(value)


def _sparse_fit(value):
    model = _model(compiled=False)
    model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    return model.fit(_data()[0], value, epochs=1, verbose=0)


ENTRY_POINTS = {
    # the model
    "fit x": lambda v: _fit(x=v),
    "fit y": lambda v: _fit(y=v),
    "fit sparse y": _sparse_fit,
    "fit batch_size": lambda v: _fit(batch_size=v),
    "fit epochs": lambda v: _fit(epochs=v),
    "fit initial_epoch": lambda v: _fit(initial_epoch=v),
    "fit verbose": lambda v: _fit(verbose=v),
    "fit shuffle": lambda v: _fit(shuffle=v),
    "fit callbacks": lambda v: _fit(callbacks=v),
    "fit validation_split": lambda v: _fit(validation_split=v),
    "fit validation_data": lambda v: _fit(validation_data=v),
    "fit validation_data x": lambda v: _fit(validation_data=(v, _data(2)[1])),
    "fit validation_data y": lambda v: _fit(validation_data=(_data(2)[0], v)),
    "evaluate x": lambda v: _evaluate(x=v),
    "evaluate y": lambda v: _evaluate(y=v),
    "evaluate batch_size": lambda v: _evaluate(batch_size=v),
    "evaluate verbose": lambda v: _evaluate(verbose=v),
    "predict x": lambda v: _predict(x=v),
    "predict batch_size": lambda v: _predict(batch_size=v),
    "predict verbose": lambda v: _predict(verbose=v),
    "train_on_batch x": lambda v: _on_batch("train_on_batch", x=v),
    "train_on_batch y": lambda v: _on_batch("train_on_batch", y=v),
    "test_on_batch x": lambda v: _on_batch("test_on_batch", x=v),
    "test_on_batch y": lambda v: _on_batch("test_on_batch", y=v),
    "predict_on_batch x": lambda v: _on_batch("predict_on_batch", x=v),
    "compile optimizer": lambda v: _model(compiled=False).compile(v, "categorical_crossentropy"),
    "compile loss": lambda v: _model(compiled=False).compile("sgd", v),
    "compile metrics": lambda v: _model(compiled=False).compile("sgd", "categorical_crossentropy", v),
    "Sequential layers": lambda v: Sequential(v),
    "Sequential name": lambda v: Sequential(name=v),
    "Sequential add": lambda v: Sequential().add(v),
    "Sequential build": lambda v: Sequential([layers.Dense(2)]).build(v),
    "set_weights": lambda v: _model().set_weights(v),
    # layers: constructors, build, forward, backward
    "Conv2D filters": lambda v: layers.Conv2D(v, 3),
    "Conv2D kernel_size": lambda v: _built(layers.Conv2D(2, v)),
    "Conv2D strides": lambda v: layers.Conv2D(2, 3, strides=v),
    "Conv2D padding": lambda v: layers.Conv2D(2, 3, padding=v),
    "Conv2D activation": lambda v: layers.Conv2D(2, 3, activation=v),
    "Conv2D use_bias": lambda v: _forward(layers.Conv2D(2, 3, use_bias=v), _data()[0]),
    "Conv2D kernel_initializer": lambda v: _built(layers.Conv2D(2, 3, kernel_initializer=v)),
    "Conv2D build": lambda v: layers.Conv2D(2, 3).build(v),
    "Conv2D forward": lambda v: _forward(layers.Conv2D(2, 3), v),
    "Conv2D backward": lambda v: _backward(layers.Conv2D(2, 3), v),
    "MaxPooling2D pool_size": lambda v: _built(layers.MaxPooling2D(v)),
    "MaxPooling2D strides": lambda v: layers.MaxPooling2D(2, strides=v),
    "MaxPooling2D padding": lambda v: layers.MaxPooling2D(2, padding=v),
    "MaxPooling2D build": lambda v: layers.MaxPooling2D().build(v),
    "MaxPooling2D forward": lambda v: _forward(layers.MaxPooling2D(), v),
    "MaxPooling2D backward": lambda v: _backward(layers.MaxPooling2D(), v),
    "Dense units": lambda v: layers.Dense(v),
    "Dense activation": lambda v: layers.Dense(2, activation=v),
    "Dense input_dim": lambda v: layers.Dense(2, input_dim=v),
    "Dense build": lambda v: layers.Dense(2).build(v),
    "Dense forward": lambda v: _built(layers.Dense(2), (5,)).forward(v),
    "Dropout rate": lambda v: layers.Dropout(v),
    "Dropout noise_shape": lambda v: _forward(layers.Dropout(0.5, noise_shape=v), _data()[0]),
    "Dropout seed": lambda v: layers.Dropout(0.5, seed=v),
    "Dropout forward": lambda v: _forward(layers.Dropout(0.5), v),
    "Dropout backward": lambda v: _backward(layers.Dropout(0.5), v),
    "Activation": lambda v: layers.Activation(v),
    "Activation forward": lambda v: _forward(layers.Activation("softmax"), v),
    "ReLU max_value": lambda v: layers.ReLU(max_value=v),
    "ReLU negative_slope": lambda v: layers.ReLU(negative_slope=v),
    "ReLU threshold": lambda v: layers.ReLU(threshold=v),
    "ReLU backward": lambda v: _backward(layers.ReLU(), v),
    "Flatten forward": lambda v: _forward(layers.Flatten(), v),
    "Flatten backward": lambda v: _backward(layers.Flatten(), v),
    "Layer name": lambda v: layers.Dense(2, name=v),
    "Layer input_shape": lambda v: layers.Dense(2, input_shape=v),
    "Layer dtype": lambda v: layers.Dense(2, dtype=v),
    "Layer set_weights": lambda v: _built(layers.Dense(2), (5,)).set_weights(v),
    # optimizers and callbacks
    "SGD learning_rate": lambda v: optimizers.SGD(learning_rate=v),
    "SGD momentum": lambda v: optimizers.SGD(momentum=v),
    "SGD decay": lambda v: optimizers.SGD(decay=v),
    "ModelCheckpoint filepath": lambda v: callbacks.ModelCheckpoint(v),
    "ModelCheckpoint monitor": lambda v: callbacks.ModelCheckpoint("x.tnz", monitor=v),
    "ModelCheckpoint mode": lambda v: callbacks.ModelCheckpoint("x.tnz", mode=v),
    "ModelCheckpoint period": lambda v: callbacks.ModelCheckpoint("x.tnz", period=v),
    "EarlyStopping patience": lambda v: callbacks.EarlyStopping(patience=v),
    "EarlyStopping min_delta": lambda v: callbacks.EarlyStopping(min_delta=v),
    "EarlyStopping mode": lambda v: callbacks.EarlyStopping(mode=v),
    "EarlyStopping baseline": lambda v: callbacks.EarlyStopping(baseline=v),
    "CSVLogger separator": lambda v: callbacks.CSVLogger("log.csv", separator=v),
    # utilities
    "to_categorical y": lambda v: to_categorical(v),
    "to_categorical num_classes": lambda v: to_categorical([0, 1, 2], num_classes=v),
    "to_categorical dtype": lambda v: to_categorical([0, 1, 2], dtype=v),
}


TINYNET = str(Path(__file__).resolve().parents[1] / "tinynet")


def _raised_on_purpose(error: BaseException) -> bool:
    """True when the innermost frame is a ``raise`` statement in tinynet's own code, not an error NumPy or Python
    ran into deep inside (a broadcasting error, ``'<' not supported``, ``object is not iterable``...)."""
    frame = traceback.extract_tb(error.__traceback__)[-1]
    return frame.filename.startswith(TINYNET) and (frame.line or "").lstrip().startswith("raise")


def _call_and_check(entry: str, value) -> None:
    try:
        ENTRY_POINTS[entry](value)
    except (ValueError, TypeError) as error:
        assert str(error).strip(), f"{entry}({value!r}): {type(error).__name__} without a message"
        assert _raised_on_purpose(error), f"{entry}({value!r}): {type(error).__name__} from deep inside: {error}"
    except RuntimeError as error:
        assert entry.endswith("backward") or "compile" in str(error), f"{entry}({value!r}): RuntimeError {error}"
        assert str(error).strip()


@pytest.fixture(autouse=True)
def _in_temporary_folder(tmp_path, monkeypatch):
    """Callbacks may be handed file names: keep them out of the work tree."""
    monkeypatch.chdir(tmp_path)


@settings(max_examples=int(os.environ.get("BAD_INPUT_EXAMPLES", "400")),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(entry=st.sampled_from(sorted(ENTRY_POINTS)), value=BAD_VALUES)
def test_random_bad_input_gets_a_value_or_type_error_with_a_message(entry, value):
    _call_and_check(entry, value)


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_none_and_strings_at_every_entry_point(entry):
    for value in (None, "abc", [[1, 2], [3]], float("nan")):
        _call_and_check(entry, value)


# ----------------------------------------------------------------------------- messages that name the argument
@pytest.mark.parametrize("call, words", [
    (lambda: _fit(batch_size="32"), ["batch_size", "'32'"]),
    (lambda: _fit(batch_size=0), ["batch_size", "positive"]),
    (lambda: _fit(epochs=None), ["epochs", "None"]),
    (lambda: _fit(epochs=2.5), ["epochs", "2.5"]),
    (lambda: _fit(validation_data=[1, 2, 3, 4]), ["validation_data", "(x_val, y_val)"]),
    (lambda: _fit(validation_split="0.2"), ["validation_split", "'0.2'"]),
    (lambda: _fit(callbacks=callbacks.History), ["callbacks", "list"]),
    (lambda: _fit(x=[[1, 2], [3]]), ["x", "rectangular"]),
    (lambda: _fit(y=[[1, 0, 0], [0, 1]]), ["y", "rectangular"]),
    (lambda: _fit(x=np.zeros((4, 7, 7, 1))), ["x", "(samples, 6, 6, 1)", "(4, 7, 7, 1)"]),
    (lambda: _fit(x=np.zeros((0, 6, 6, 1))), ["x", "non-empty"]),
    (lambda: _fit(y=np.zeros((3, CLASSES))), ["same number of samples", "4 and 3"]),
    (lambda: _fit(x=np.full((4, 6, 6, 1), np.nan)), ["x", "NaN"]),
    (lambda: _fit(y=np.full((4, CLASSES), np.inf)), ["y", "NaN or infinite"]),
    (lambda: _fit(y=np.array(["a", "b", "c", "d"])), ["y", "numeric"]),
    (lambda: _sparse_fit(np.array([0, 1, 2, 3])), ["labels", "[0, 2]", "[0, 3]"]),
    (lambda: _sparse_fit(np.array([0.5, 1, 2, 0])), ["integer class labels"]),
    (lambda: _predict(verbose="yes"), ["verbose", "'yes'"]),
    (lambda: _model(compiled=False).compile("sgd", "categorical_crossentropy", "accuracy"), ["metrics", "list"]),
    (lambda: _model(compiled=False).compile("adamm", "categorical_crossentropy"), ["optimizer", "'adamm'"]),
    (lambda: _model(compiled=False).compile("sgd", "cosine_proximity"), ["loss", "'cosine_proximity'"]),
    (lambda: layers.Conv2D(0, 3), ["filters", "positive"]),
    (lambda: Sequential([layers.Conv2D(2, 7, input_shape=INPUT_SHAPE)]), ["window", "larger than the input"]),
    (lambda: layers.Dense("3"), ["units", "'3'"]),
    (lambda: layers.Dropout(1.5), ["rate", "[0, 1)"]),
    (lambda: layers.Dropout(0.5, seed="x"), ["seed", "'x'"]),
    (lambda: layers.ReLU(max_value="1"), ["max_value", "'1'"]),
    (lambda: layers.Activation("swish"), ["unknown activation", "'swish'"]),
    (lambda: to_categorical([0, 3], num_classes=2), ["label 3", "num_classes=2"]),
    (lambda: to_categorical([[0, 1], [2]]), ["y", "rectangular"]),
    (lambda: callbacks.ModelCheckpoint("m.tnz", mode="best"), ["mode", "'best'"]),
])
def test_messages_name_the_argument_and_what_came(call, words):
    with pytest.raises((ValueError, TypeError)) as error:
        call()
    for word in words:
        assert word in str(error.value), (word, str(error.value))


def test_integer_images_are_accepted_and_cast_as_keras_does():
    x = (_data()[0] * 255).astype(np.uint8)
    model = _model()
    model.fit(x, _data()[1], epochs=1, verbose=0, batch_size=2)
    assert model.predict(x).dtype == np.float32
    np.testing.assert_array_equal(model.predict(x), model.predict(x.astype(np.float32)))


def test_uncompiled_model_and_backward_before_forward_raise_runtime_errors():
    x, y = _data()
    for call in (lambda: _model(compiled=False).fit(x, y, verbose=0),
                 lambda: _model(compiled=False).evaluate(x, y, verbose=0),
                 lambda: _model(compiled=False).train_on_batch(x, y)):
        with pytest.raises(RuntimeError, match="compile"):
            call()
    with pytest.raises(RuntimeError, match="backward called without a forward"):
        _built(layers.Conv2D(2, 3)).backward(np.zeros((1, 4, 4, 2)))


# --------------------------------------------------------------------------------------------- files and flags
@pytest.mark.parametrize("value", [None, 3, 2.5, ["a"]])
def test_load_model_rejects_paths_of_the_wrong_type(value):
    with pytest.raises(TypeError, match="path"):
        load_model(value)


def test_dataset_loaders_reject_missing_and_garbage_files(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not an archive at all")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    for path in (tmp_path / "missing.npz", garbage, folder):
        for loader in (datasets.mnist.load_data, datasets.fashion_mnist.load_data):
            with pytest.raises((ValueError, TypeError, OSError)) as error:
                loader(path)
            assert str(path.name) in str(error.value) or str(path) in str(error.value), str(error.value)
    with pytest.raises(TypeError):
        datasets.mnist.load_data(12)


@pytest.mark.parametrize("flags, message", [
    (["--checkpoint", "."], "is a folder"),
    (["--batch-size", "many"], "positive integer"),
    (["--epochs", "-1"], "positive integer"),
    (["--momentum", "-0.5"], "finite number >= 0"),
    (["--seed", "x"], "non-negative integer"),
    (["--limit", "0"], "positive integer"),
    (["--verbose", "3"], "invalid choice"),
])
def test_command_flags_are_checked(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_checkpoint_path_inside_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit):
        cli.main(["train", "--checkpoint", str(tmp_path / "file" / "model.tnz")])
    assert "is not a folder" in capsys.readouterr().err


def test_resume_from_a_file_that_is_not_a_model_fails_cleanly(tmp_path, capsys):
    not_a_model = tmp_path / "notes.txt"
    not_a_model.write_text("hello")
    data = tmp_path / "data.npz"
    x = np.zeros((4, 28, 28), np.uint8)
    np.savez(data, x_train=x, y_train=np.arange(4, dtype=np.uint8), x_test=x, y_test=np.arange(4, dtype=np.uint8))
    code = cli.main(["train", "--data", str(data), "--resume", str(not_a_model), "--output", str(tmp_path / "o"),
                     "--verbose", "0"])
    assert code == 1
    error = capsys.readouterr().err
    assert "not a tinynet model file" in error and "notes.txt" in error


def test_saving_rejects_a_folder_as_path(tmp_path):
    with pytest.raises((IsADirectoryError, ValueError)):
        saving.save_model(_model(), tmp_path)
    assert os.listdir(tmp_path) == []


def test_to_categorical_of_an_absurd_label_says_so(monkeypatch):
    def no_memory(*args, **kwargs):
        raise MemoryError

    import tinynet.utils

    monkeypatch.setattr(tinynet.utils.np, "zeros", no_memory)
    with pytest.raises(ValueError, match=r"does not fit in memory.*largest: 6327338418"):
        to_categorical(np.array([6327338418]))


# ----------------------------------------------------------------------------------- weights that are no weights
@pytest.mark.parametrize("value, words", [
    (np.full((5, 2), np.nan), ["non-finite"]),
    (np.full((5, 2), -np.inf, dtype=np.float32), ["non-finite"]),
    (np.ones((5, 2), dtype=np.complex128), ["real numbers", "complex128"]),
    (np.ones((5, 2), dtype=bool), ["real numbers", "bool"]),
    (np.ones((5, 2), dtype=object), ["real numbers", "object"]),
    (np.full((5, 2), "1.5"), ["real numbers", "<U3"]),
    (np.ones((5, 2), dtype="datetime64[s]"), ["real numbers", "datetime64"]),
    (np.full((5, 2), 1e300), ["beyond the range of float32"]),
])
def test_set_weights_refuses_values_that_are_no_weights_naming_the_layer(value, words):
    layer = _built(layers.Dense(2, name="scorer"), (5,))
    before = layer.get_weights()
    with pytest.raises(ValueError) as error:
        layer.set_weights([value, np.zeros(2)])
    for word in ["scorer", "kernel", *words]:
        assert word in str(error.value), (word, str(error.value))
    for kept, original in zip(layer.get_weights(), before, strict=True):
        np.testing.assert_array_equal(kept, original)


def test_model_set_weights_checks_every_layer_before_changing_any():
    model = _model()
    before = model.get_weights()
    spoiled = [weight + 1 for weight in before]
    spoiled[-1] = np.full_like(spoiled[-1], np.nan)  # the last layer's last weight
    with pytest.raises(ValueError, match="non-finite"):
        model.set_weights(spoiled)
    for kept, original in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(kept, original)


def test_integer_weights_are_still_accepted():
    layer = _built(layers.Dense(2), (5,))
    layer.set_weights([np.ones((5, 2), dtype=np.int64), np.zeros(2, dtype=np.int32)])
    assert layer.params["kernel"].dtype == np.float32 and layer.params["kernel"].sum() == 10
