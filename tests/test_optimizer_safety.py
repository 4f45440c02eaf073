"""An optimizer's state can never be applied to another parameter, and a model file cannot make it so.

* One SGD shared by two models whose layers have the same names (``clear_session()`` between them): each parameter
  keeps its own velocity, as Keras 2 creates optimizer weights per variable. This used to write past the end of a
  velocity buffer (a crash) or update a (2, 3) kernel with a (50, 3) velocity; the scenario runs in a subprocess
  so that a crash fails the test instead of killing pytest.
* A model file whose optimizer slot has the wrong shape or dtype, an unknown slot name, or an absurd
  ``iterations`` is refused with a ValueError naming the file and the field (the checksum is recomputed, so
  only these checks stand between the file and the update kernel).
* A learning rate that is infinite in the weights' float type is refused as an argument.
"""

from __future__ import annotations

import gc
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tinynet import backend
from tinynet.layers import Dense
from tinynet.models import Sequential, load_model, saving
from tinynet.optimizers import SGD

REPOSITORY = Path(__file__).resolve().parents[1]

_SHARED_OPTIMIZER_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from tinynet import backend
    from tinynet.layers import Dense
    from tinynet.models import Sequential
    from tinynet.optimizers import SGD

    def build(features, optimizer):
        backend.clear_session()  # both models' layers are named dense_1
        backend.set_random_seed(features)
        model = Sequential([Dense(3, input_shape=(features,))])
        model.compile(optimizer, "mse")
        return model

    def train(model, features):
        rng = np.random.default_rng(features)
        x = rng.standard_normal((16, features)).astype(np.float32)
        y = rng.standard_normal((16, 3)).astype(np.float32)
        model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0)
        return model.get_weights()

    shared = SGD(learning_rate=0.05, momentum=0.9, nesterov=True)
    for features in [int(value) for value in sys.argv[1:]]:
        got = train(build(features, shared), features)
        # The same model trained by an optimizer of its own: with no decay, sharing must not change a single bit.
        want = train(build(features, SGD(learning_rate=0.05, momentum=0.9, nesterov=True)), features)
        for got_array, want_array in zip(got, want, strict=True):
            assert np.array_equal(got_array, want_array), f"features={features}: shared optimizer misupdated"
    assert shared.iterations == 2 * 12
    print("trained correctly")
""")


@pytest.mark.parametrize("shapes", [("2", "50"), ("50", "2")], ids=["small-then-large", "large-then-small"])
def test_one_sgd_shared_by_models_with_the_same_layer_names_trains_each_correctly(tmp_path, shapes):
    script = tmp_path / "shared.py"
    script.write_text(_SHARED_OPTIMIZER_SCRIPT)
    result = subprocess.run([sys.executable, str(script), *shapes], capture_output=True, text=True, timeout=300,
                            cwd=REPOSITORY)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr[-3000:]}"
    assert "trained correctly" in result.stdout


def _fitted(features: int, optimizer: SGD, seed: int = 0) -> Sequential:
    backend.clear_session()
    model = Sequential([Dense(3, input_shape=(features,))])
    model.compile(optimizer, "mse")
    rng = np.random.default_rng(seed)
    model.fit(rng.standard_normal((8, features)), rng.standard_normal((8, 3)), batch_size=4, verbose=0)
    return model


def test_a_shared_optimizer_keeps_and_saves_each_models_own_velocities(tmp_path):
    shared = SGD(learning_rate=0.01, momentum=0.9)
    large, small = _fitted(50, shared), _fitted(2, shared)
    assert large.layers[0].name == small.layers[0].name == "dense_1"
    large_velocities = shared.get_slots(large.layers)["velocities"]
    small_velocities = shared.get_slots(small.layers)["velocities"]
    assert large_velocities[("dense_1", "kernel")].shape == (50, 3)
    assert small_velocities[("dense_1", "kernel")].shape == (2, 3)
    for model, velocities in ((large, large_velocities), (small, small_velocities)):
        model.save(tmp_path / "model.tnz")  # each file holds its own model's velocities only
        loaded = load_model(tmp_path / "model.tnz")
        assert sorted(loaded.optimizer.velocities) == sorted(velocities)
        for key, velocity in velocities.items():
            np.testing.assert_array_equal(loaded.optimizer.velocities[key], velocity, strict=True)
    with pytest.raises(ValueError, match=r"several parameters are named dense_1.kernel.*get_slots"):
        shared.velocities  # names alone are ambiguous here  # noqa: B018


def test_a_velocity_goes_away_with_its_parameter():
    optimizer = SGD(learning_rate=0.01, momentum=0.9)
    model = _fitted(4, optimizer)
    assert len(optimizer.velocities) == 2
    del model
    gc.collect()
    assert optimizer.velocities == {}


def test_a_parameter_reshaped_in_place_is_refused_before_the_kernel_runs():
    optimizer = SGD(learning_rate=0.01, momentum=0.9)
    model = _fitted(4, optimizer)
    layer = model.layers[0]
    layer.params["kernel"].shape = (3, 4)
    layer.grads["kernel"] = np.zeros((3, 4), np.float32)
    bias = layer.params["bias"].copy()
    with pytest.raises(ValueError, match=r"velocities slot of dense_1.kernel has shape \(4, 3\).*now has \(3, 4\)"):
        optimizer.apply_gradients([layer])
    np.testing.assert_array_equal(layer.params["bias"], bias)  # nothing was updated
    assert optimizer.iterations == 2


# ---------------------------------------------------------------------------------------- hyperparameters
@pytest.mark.parametrize("value", [-1000, -3000, -1, 2**63, 1.5, 3.0, True, "7", None])
def test_iterations_must_be_a_count(value):
    optimizer = SGD(learning_rate=0.1, decay=1e-3)
    with pytest.raises((TypeError, ValueError), match="SGD: iterations must be"):
        optimizer.iterations = value
    assert optimizer.iterations == 0
    assert optimizer.current_learning_rate() == 0.1


@pytest.mark.parametrize(("attribute", "value", "message"), [
    ("momentum", 2, r"momentum must be in \[0, 1\], got 2"),
    ("momentum", -0.1, r"momentum must be in \[0, 1\], got -0.1"),
    ("lr", -1.0, r"learning_rate must be >= 0"),
    ("learning_rate", float("inf"), r"learning_rate must be a finite number"),
    ("decay", -1e-6, r"decay must be >= 0"),
])
def test_setting_a_hyperparameter_checks_it_as_the_constructor_does(attribute, value, message):
    optimizer = SGD(learning_rate=0.1, momentum=0.5)
    with pytest.raises((TypeError, ValueError), match=message):
        setattr(optimizer, attribute, value)
    assert (optimizer.learning_rate, optimizer.momentum, optimizer.decay) == (0.1, 0.5, 0.0)


def test_a_learning_rate_infinite_in_float32_is_refused_at_compile():
    model = Sequential([Dense(3, input_shape=(4,))])
    with pytest.raises(ValueError, match=r"SGD: learning_rate 1e\+39 is infinite in float32.*dense_1.kernel"):
        model.compile(SGD(learning_rate=1e39), "mse")
    assert model.optimizer is None
    model.compile(SGD(learning_rate=3e38), "mse")  # the largest float32 is 3.4e38


def test_a_learning_rate_infinite_in_float32_is_refused_before_any_update():
    """A model built after compile, or a rate raised between two fits: the first update refuses it."""
    model = Sequential([Dense(3)])
    model.compile(SGD(learning_rate=1e39, momentum=0.9), "mse")
    x, y = np.ones((4, 2), np.float32), np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"learning_rate 1e\+39 is infinite in float32"):
        model.fit(x, y, verbose=0)
    model.optimizer.learning_rate = 0.1
    before = model.get_weights()
    model.optimizer.learning_rate = 1e39
    with pytest.raises(ValueError, match="learning_rate"):
        model.train_on_batch(x, y)
    for got, want in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)
    assert model.optimizer.iterations == 0


def test_the_same_rate_is_fine_in_float64(float64):
    model = Sequential([Dense(3, input_shape=(4,))])
    model.compile(SGD(learning_rate=1e39), "mse")
    assert model.layers[0].params["kernel"].dtype == np.float64


# ---------------------------------------------------------------------------------------------- model files
def _saved(tmp_path: Path, momentum: float = 0.9) -> Path:
    model = _fitted(4, SGD(learning_rate=0.01, momentum=momentum))
    path = tmp_path / "model.tnz"
    model.save(path)
    return path


def _rewrite(path: Path, change) -> None:
    """Re-pack a model file after ``change(document, arrays)``, with a valid header and SHA-256, as an attacker
    (or a buggy writer) would: only the loader's own checks can refuse it."""
    payload = path.read_bytes()[saving.HEADER_SIZE:]
    with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    document = json.loads(arrays[saving.DOCUMENT_KEY].tobytes())
    change(document, arrays)
    arrays[saving.DOCUMENT_KEY] = np.frombuffer(json.dumps(document).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    path.write_bytes(saving.file_header(payload) + payload)


def _velocity_entry(document: dict, param_name: str = "kernel") -> list:
    return next(entry for entry in document["compile"]["optimizer"]["slots"]["velocities"]
                if entry[1] == param_name)


def _grow_velocity(document, arrays):
    key = _velocity_entry(document)[2]
    arrays[key] = np.zeros((50, 3), arrays[key].dtype)


def _float64_velocity(document, arrays):
    key = _velocity_entry(document)[2]
    arrays[key] = arrays[key].astype(np.float64)


def _flat_velocity(document, arrays):
    key = _velocity_entry(document)[2]
    arrays[key] = arrays[key].reshape(-1)


@pytest.mark.parametrize(("change", "fragments"), [
    (_grow_velocity, ["slot velocities of dense_1.kernel has shape (50, 3)", "parameter has shape (4, 3)"]),
    (_flat_velocity, ["slot velocities of dense_1.kernel has shape (12,)"]),
    (_float64_velocity, ["slot velocities of dense_1.kernel", "dtype float64", "dtype float32"]),
    (lambda d, a: _velocity_entry(d).__setitem__(0, "dense_9"), ["velocities of dense_9.kernel names no parameter"]),
    (lambda d, a: _velocity_entry(d).__setitem__(1, "gamma"), ["velocities of dense_1.gamma names no parameter"]),
    (lambda d, a: d["compile"]["optimizer"]["slots"]["velocities"].append(_velocity_entry(d)), ["appears twice"]),
    (lambda d, a: d["compile"]["optimizer"]["slots"].update(apply_gradients=[]),
     ["unknown optimizer slot 'apply_gradients'", "SGD keeps 'velocities'"]),
    (lambda d, a: d["compile"]["optimizer"]["slots"].update(forward=d["compile"]["optimizer"]["slots"]["velocities"]),
     ["unknown optimizer slot 'forward'"]),
    (lambda d, a: d["compile"]["optimizer"].update(class_name="Layer"), ["unknown optimizer class 'Layer'"]),
    (lambda d, a: d["compile"]["optimizer"].update(class_name="_ParameterSlots"), ["unknown optimizer class"]),
    (lambda d, a: d["compile"]["optimizer"].update(iterations=-3000), ["'iterations'", "got -3000"]),
    (lambda d, a: d["compile"]["optimizer"].update(iterations=-1000), ["'iterations'", "got -1000"]),
    (lambda d, a: d["compile"]["optimizer"].update(iterations=2.5), ["'iterations'", "got 2.5"]),
    (lambda d, a: d["compile"]["optimizer"].update(iterations=2**64), ["'iterations'"]),
    (lambda d, a: d["compile"]["optimizer"]["config"].update(momentum=2), ["optimizer SGD", "momentum", "[0, 1]"]),
    (lambda d, a: d["compile"]["optimizer"]["config"].update(learning_rate=1e39), ["learning_rate", "float32"]),
])
def test_a_model_file_with_bad_optimizer_state_is_refused_naming_file_and_field(tmp_path, change, fragments):
    path = _saved(tmp_path)
    _rewrite(path, change)
    with pytest.raises(ValueError) as refused:
        load_model(path)
    message = str(refused.value)
    assert message.startswith(f"load_model: {path}: ")
    for fragment in fragments:
        assert fragment in message


def test_a_file_cannot_overwrite_methods_through_slot_names(tmp_path):
    path = _saved(tmp_path)
    _rewrite(path, lambda d, a: d["compile"]["optimizer"]["slots"].update(
        apply_gradients=d["compile"]["optimizer"]["slots"].pop("velocities")))
    with pytest.raises(ValueError, match="unknown optimizer slot 'apply_gradients'"):
        load_model(path)


def test_an_untouched_file_still_loads_and_trains_as_the_original(tmp_path):
    optimizer = SGD(learning_rate=0.01, momentum=0.9)
    model = _fitted(4, optimizer)
    model.save(tmp_path / "model.tnz")
    loaded = load_model(tmp_path / "model.tnz")
    assert loaded.optimizer.iterations == 2
    x, y = np.ones((4, 4), np.float32), np.zeros((4, 3), np.float32)
    model.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    for got, want in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want, strict=True)


def test_set_slots_checks_everything_before_it_sets_anything():
    optimizer = SGD(learning_rate=0.01, momentum=0.9)
    model = _fitted(4, optimizer)
    before = {key: value.copy() for key, value in optimizer.velocities.items()}
    good = np.ones((4, 3), np.float32)
    for slots, message in [
        ({"velocities": {("dense_1", "kernel"): good, ("dense_1", "bias"): np.ones((4, 3), np.float32)}},
         r"velocities dense_1.bias has shape \(4, 3\) and dtype float32, its parameter has shape \(3,\)"),
        ({"velocities": {("dense_1", "kernel"): good, ("dense_2", "kernel"): good}}, "dense_2.kernel names no"),
        ({"velocities": {("dense_1", "kernel"): good}, "moments": {}}, "unknown slot 'moments'"),
    ]:
        with pytest.raises(ValueError, match=message):
            optimizer.set_slots(model.layers, slots)
        for key, value in optimizer.velocities.items():
            np.testing.assert_array_equal(value, before[key])
    optimizer.set_slots(model.layers, {"velocities": {("dense_1", "kernel"): good}})
    assert optimizer.velocities[("dense_1", "kernel")] is not good  # a copy
    np.testing.assert_array_equal(optimizer.velocities[("dense_1", "kernel")], good)
