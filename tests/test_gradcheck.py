"""The public gradient checker: it passes correct layers and models, and it catches planted bugs, naming the
wrong array and entries in its report."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tinynet import backend
from tinynet.layers import Activation, Conv2D, Dense, Dropout, Flatten, Layer, MaxPooling2D
from tinynet.learn.gradcheck import check_layer, check_model, numerical_gradient
from tinynet.models import Sequential
from tinynet.optimizers import SGD


# ---------------------------------------------------------------------------------------- planted bugs
class DenseForgettingBiasGradient(Dense):
    """A Dense whose backward leaves the bias gradient at zero."""

    def _backward_from_z(self, dz, x):
        dx = super()._backward_from_z(dz, x)
        self.grads["bias"] = np.zeros_like(self.params["bias"])
        return dx


class DenseScalingDx(Dense):
    """A Dense whose input gradient is 1% too large."""

    def backward(self, dy):
        return 1.01 * super().backward(dy)


class DenseTransposingKernelGradient(Dense):
    """A square Dense that returns dW transposed (right shape, wrong layout)."""

    def _backward_from_z(self, dz, x):
        dx = super()._backward_from_z(dz, x)
        self.grads["kernel"] = self.grads["kernel"].T.copy()
        return dx


class MaxPoolingToTheWrongPixel(MaxPooling2D):
    """Routes each window's gradient one column to the right of its winner (wrapping around)."""

    def backward(self, dy):
        return np.roll(super().backward(dy), 1, axis=2)


class Scale(Layer):
    """A layer written from scratch against the contract: ``y = x * w`` with one weight per feature.

    Backward: ``dx = dy * w``, ``dw = sum_n dy * x``; ``sign = -1`` plants a sign error in ``dw``.
    """

    def __init__(self, sign: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.sign = sign

    def build(self, input_shape):
        self.add_weight("scale", (input_shape[-1],), "ones")
        super().build(input_shape)

    def forward(self, x, training=False):
        x = self._prepare_input(x)
        self._cache = x
        return x * self.params["scale"]

    def backward(self, dy):
        x = self._take_cache()
        dy = self._check_output_gradient(dy, x.shape)
        self.grads["scale"] = self.sign * (dy * x).reshape(-1, x.shape[-1]).sum(axis=0)
        return dy * self.params["scale"]


class NeedsPositionalArgument(Layer):
    """A learner's layer whose get_config cannot rebuild it (its constructor needs an argument)."""

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def forward(self, x, training=False):
        x = self._prepare_input(x)
        self._cache = x.shape
        return self.factor * x

    def backward(self, dy):
        return self.factor * self._check_output_gradient(dy, self._take_cache())


def _entry(report, name):
    (entry,) = [entry for entry in report.entries if entry.name == name]
    return entry


# -------------------------------------------------------------------------------------------- passing
@pytest.mark.parametrize("make", [
    lambda: Conv2D(3, 3, padding="same", activation="tanh"),
    lambda: Conv2D(2, (2, 3), strides=(2, 1)),
    lambda: MaxPooling2D(),
    lambda: Dropout(0.4),
    lambda: Activation("sigmoid"),
    lambda: Flatten(),
])
def test_builtin_layers_pass(make, float64):
    report = check_layer(make(), (6, 5, 2), seed=1)
    assert report.passed and bool(report), str(report)
    assert str(report).startswith("gradient check of ")
    assert ": PASSED (rtol=1e-05, atol=1e-07)" in str(report).splitlines()[0]


def test_dense_passes_and_reports_every_array(float64):
    layer = Dense(4, activation="softmax")
    report = check_layer(layer, (5,), batch_size=3)
    assert report.passed, str(report)
    assert [(e.name, e.shape, e.checked) for e in report.entries] == [
        ("x", (3, 5), 15), ("dense_1.kernel", (5, 4), 20), ("dense_1.bias", (4,), 4)]
    assert all(e.passed and e.failures == [] for e in report.entries)


class _ForgetsDx(Layer):
    """A learner's layer whose backward fills no gradient and forgets to return dx."""

    def forward(self, x, training=False):
        return self._prepare_input(x) * 2.0

    def backward(self, dy):
        return None


def test_a_layer_whose_backward_returns_no_dx_is_refused_by_name(float64):
    with pytest.raises(ValueError, match=r"forgets_dx\w*\.backward returned None with needs_input_gradient on"):
        check_layer(_ForgetsDx(name="forgets_dx"), (4,))


def test_max_entries_limits_the_checked_entries(float64):
    report = check_layer(Conv2D(8, 3), (6, 6, 4), max_entries=10)
    assert report.passed, str(report)
    assert {e.name: e.checked for e in report.entries} == {"x": 10, "conv2d_1.kernel": 10, "conv2d_1.bias": 8}


def test_custom_layer_written_against_the_contract_passes(float64):
    layer = Scale()
    report = check_layer(layer, (3, 4), batch_size=2)
    assert report.passed, str(report)
    assert [e.name for e in report.entries] == ["x", "scale_1.scale"]


def _attributes(layer):
    """Every attribute of a layer, arrays as (object, dtype, copied values), generators as their state."""
    def describe(value):
        if isinstance(value, np.ndarray):
            return ("array", value, value.dtype, value.copy())
        if isinstance(value, np.random.Generator):
            return ("generator", value, value.bit_generator.state)
        if isinstance(value, dict):
            return ("dict", value, {key: describe(item) for key, item in value.items()})
        if isinstance(value, tuple | list):
            return (type(value).__name__, value, [describe(item) for item in value])
        return ("value", value)
    return {name: describe(value) for name, value in vars(layer).items()}


def _assert_same_attributes(after, before):
    assert after.keys() == before.keys()
    for name in before:
        _assert_same(after[name], before[name], name)


def _assert_same(after, before, where):
    assert after[0] == before[0], where
    assert after[1] is before[1], f"{where} is a different object after the check"
    if before[0] == "array":
        assert after[2] == before[2], where
        np.testing.assert_array_equal(after[1], before[3], err_msg=where)
    elif before[0] == "generator":
        assert after[2] == before[2], where
    elif before[0] == "dict":
        assert after[2].keys() == before[2].keys(), where
        for key in before[2]:
            _assert_same(after[2][key], before[2][key], f"{where}[{key!r}]")
    elif before[0] in ("tuple", "list"):
        for position, (item_after, item_before) in enumerate(zip(after[2], before[2], strict=True)):
            _assert_same(item_after, item_before, f"{where}[{position}]")


@pytest.mark.parametrize("make, shape", [
    (lambda: Conv2D(3, 3, padding="same", activation="tanh"), (5, 5, 2)),  # scratch buffers, a pending cache
    (lambda: Dropout(0.4, seed=3), (4, 3)),                                 # a generator
    (lambda: Dense(3, activation="tanh"), (4,)),
])
def test_a_float32_layer_is_checked_itself_and_left_exactly_as_it_was(make, shape):
    layer = make()
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    pending = layer.forward(x, training=True)  # a forward whose backward has not come yet
    before = _attributes(layer)
    report = check_layer(layer, shape)
    assert report.passed, str(report)
    _assert_same_attributes(_attributes(layer), before)
    assert layer.dtype == np.float32 and all(p.dtype == np.float32 for p in layer.params.values())
    # the pending backward still works on the forward it belongs to
    assert layer.backward(np.ones_like(pending)).dtype == np.float32


def test_check_layer_leaves_a_float64_layer_exactly_as_it_was(float64):
    layer = Conv2D(2, 2)
    layer.build((4, 4, 1))
    before = _attributes(layer)
    assert check_layer(layer, (4, 4, 1)).passed
    _assert_same_attributes(_attributes(layer), before)


class ScaleWithHiddenBug(Scale):
    """``y = x * w`` whose weight gradient is wrong (doubled) only when built with ``buggy=True``, a flag that
    get_config does not return: a checker that rebuilt the layer from its config would check the correct twin."""

    def __init__(self, buggy: bool = False, **kwargs):
        super().__init__(sign=2.0 if buggy else 1.0, **kwargs)
        self.buggy = buggy


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_a_bug_living_only_in_instance_state_is_caught(precision):
    backend.set_floatx(precision)
    assert check_layer(ScaleWithHiddenBug(), (3,)).passed
    report = check_layer(ScaleWithHiddenBug(buggy=True), (3,))
    assert not report.passed, str(report)
    assert [e.name for e in report.entries if not e.passed] == ["scale_with_hidden_bug_2.scale"]


def test_a_bug_set_by_hand_on_a_layer_without_get_config_is_caught():
    layer = Scale()        # Scale never wrote get_config: its ``sign`` is not in its config
    layer.sign = -1.0      # and here it is set after construction
    report = check_layer(layer, (3,), batch_size=4)
    assert not report.passed and not _entry(report, "scale_1.scale").passed, str(report)
    assert layer.sign == -1.0 and layer.dtype == np.float32


def test_a_layer_whose_config_cannot_rebuild_it_is_still_checked():
    layer = NeedsPositionalArgument(2.0)
    report = check_layer(layer, (3,))
    assert report.passed, str(report)
    assert layer.dtype == np.float32 and layer.factor == 2.0


class DenseKeepingItsOwnNames(Layer):
    """Keras-style: the kernel is kept as ``self.kernel`` too, and a float32 constant as ``self.offset``."""

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", (input_shape[-1], 2), "glorot_uniform")
        self.offset = np.full(2, 0.1, dtype=self.dtype)
        super().build(input_shape)

    def forward(self, x, training=False):
        x = self._prepare_input(x)
        self._cache = x
        return np.tanh(x @ self.kernel + self.offset)

    def backward(self, dy):
        x = self._take_cache()
        y = np.tanh(x @ self.kernel + self.offset)
        dz = self._check_output_gradient(dy, y.shape) * (1 - y * y)
        self.grads["kernel"] = x.T @ dz
        return dz @ self.kernel.T


def test_arrays_kept_under_other_names_are_converted_together():
    layer = DenseKeepingItsOwnNames()
    layer.build((4,))
    kernel, offset = layer.kernel, layer.offset
    report = check_layer(layer, (4,))
    # a float32 self.kernel or self.offset left in the computation would make the finite differences fail
    assert report.passed, str(report)
    assert layer.kernel is kernel is layer.params["kernel"] and layer.offset is offset
    assert kernel.dtype == offset.dtype == np.float32


class HoldsASubLayer(Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = Dense(2)


class HoldsAView(Scale):
    def build(self, input_shape):
        super().build(input_shape)
        self.scale_view = self.params["scale"][::-1]


class _Holder:
    def __init__(self):
        self.table = np.ones(3, dtype=np.float32)


class HidesAFloat32Array(Scale):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.holder = _Holder()


@pytest.mark.parametrize("make, complaint", [
    (HoldsASubLayer, r"inner holds the layer dense_\d+"),
    (HoldsAView, r"scale_view shares memory with params\['scale'\]|params\['scale'\] shares memory with scale_view"),
    (HidesAFloat32Array, r"holder.table is a float32 array inside a _Holder object"),
])
def test_a_layer_that_cannot_be_run_in_float64_faithfully_is_refused(make, complaint):
    layer = make()
    layer.build((3,))
    before = _attributes(layer)
    with pytest.raises(TypeError, match=r"check_layer: cannot check .* in float64: " + complaint):
        check_layer(layer, (3,))
    _assert_same_attributes(_attributes(layer), before)


def test_check_layer_leaves_float64_parameters_bit_identical(float64):
    layer = Conv2D(2, 2)
    layer.build((4, 4, 1))
    before = layer.get_weights()
    assert check_layer(layer, (4, 4, 1)).passed
    for after, original in zip(layer.get_weights(), before, strict=True):
        np.testing.assert_array_equal(after, original)


def test_check_layer_needs_an_input():
    with pytest.raises(ValueError, match=r"check_layer: give input_shape \(per sample, no batch axis\) or x"):
        check_layer(Dense(2, dtype="float64"))


def test_numerical_gradient_of_a_quadratic():
    values = np.array([1.0, -2.0, 0.5])
    estimate = numerical_gradient(lambda: float(np.sum(values**2)), values, [(0,), (1,), (2,)])
    np.testing.assert_allclose(estimate, 2 * values, rtol=1e-8)
    np.testing.assert_array_equal(values, [1.0, -2.0, 0.5])  # restored


# -------------------------------------------------------------------------------------------- failing
def test_forgotten_bias_gradient_fails_on_the_bias_only(float64):
    report = check_layer(DenseForgettingBiasGradient(3), (4,), batch_size=2)
    assert not report.passed and not bool(report)
    assert _entry(report, "x").passed and _entry(report, "dense_forgetting_bias_gradient_1.kernel").passed
    bias = _entry(report, "dense_forgetting_bias_gradient_1.bias")
    assert len(bias.failures) == 3 and all(analytic == 0 for _, analytic, _ in bias.failures)
    text = str(report)
    assert text.splitlines()[0].startswith("gradient check of DenseForgettingBiasGradient "
                                           "'dense_forgetting_bias_gradient_1': FAILED")
    # failing arrays come first, marked X, with the wrong entries spelled out
    assert text.splitlines()[2].startswith("X dense_forgetting_bias_gradient_1.bias")
    assert re.search(r"wrong at \(0,\): analytic=0 numeric=-?\d", text)


def test_one_percent_too_large_dx_fails_on_x_only(float64):
    report = check_layer(DenseScalingDx(3, activation="tanh"), (4,), batch_size=2)
    assert not _entry(report, "x").passed
    assert len(_entry(report, "x").failures) == 8
    assert _entry(report, "dense_scaling_dx_1.kernel").passed and _entry(report, "dense_scaling_dx_1.bias").passed
    text = str(report)
    assert "X x " in text and "wrong at (0, 0)" in text
    # the relative error it reports is the planted 1%
    assert _entry(report, "x").max_rel_error == pytest.approx(0.01 / 1.01, rel=1e-3)


def test_transposed_kernel_gradient_fails(float64):
    report = check_layer(DenseTransposingKernelGradient(4), (4,), batch_size=3)
    kernel = _entry(report, "dense_transposing_kernel_gradient_1.kernel")
    assert not kernel.passed
    assert len(kernel.failures) == 12  # every off-diagonal entry
    assert {index for index, _, _ in kernel.failures} == {(i, j) for i in range(4) for j in range(4) if i != j}


def test_gradient_sent_to_the_wrong_pixel_fails(float64):
    report = check_layer(MaxPoolingToTheWrongPixel(), (4, 4, 1), seed=3)
    assert not report.passed
    assert "X x " in str(report)


def test_sign_error_in_a_custom_layer_fails(float64):
    report = check_layer(Scale(sign=-1.0), (3,), batch_size=4)
    assert _entry(report, "x").passed
    scale = _entry(report, "scale_1.scale")
    assert not scale.passed and len(scale.failures) == 3
    assert all(np.sign(a) == -np.sign(n) for _, a, n in scale.failures)
    assert "X scale_1.scale" in str(report)


def test_many_failures_are_summarised(float64):
    report = check_layer(DenseScalingDx(5, activation="tanh"), (6,), batch_size=3)
    text = str(report)
    assert text.count("wrong at") == 5
    assert "... and 13 more wrong entries" in text


# ---------------------------------------------------------------------------------------------- models
def _model(first_layer, second_layer, loss="categorical_crossentropy"):
    model = Sequential([first_layer, second_layer])
    model.compile(SGD(), loss)
    return model


def _data(classes=3, samples=4, features=5):
    rng = np.random.default_rng(0)
    return rng.standard_normal((samples, features)), np.eye(classes)[rng.integers(0, classes, samples)]


def test_check_model_passes_on_a_correct_model(float64):
    x, y = _data()
    model = _model(Dense(6, activation="tanh", input_shape=(5,)), Dense(3, activation="softmax"))
    report = check_model(model, x, y)
    assert report.passed, str(report)
    assert [e.name for e in report.entries] == ["dense_1.kernel", "dense_1.bias", "dense_2.kernel", "dense_2.bias"]
    assert str(report).startswith("gradient check of model 'sequential_1': PASSED")


def test_check_model_names_the_layer_with_the_planted_bug(float64):
    x, y = _data()
    model = _model(DenseForgettingBiasGradient(6, activation="tanh", input_shape=(5,)),
                   Dense(3, activation="softmax"))
    report = check_model(model, x, y)
    failing = [e.name for e in report.entries if not e.passed]
    assert failing == ["dense_forgetting_bias_gradient_1.bias"]
    assert "X dense_forgetting_bias_gradient_1.bias" in str(report)


def test_check_model_sees_a_wrong_dx_through_the_layers_below(float64):
    # A wrong dx in the second layer corrupts the gradients of the first one, not its own.
    x, y = _data()
    model = _model(Dense(6, activation="tanh", input_shape=(5,)), DenseScalingDx(3, activation="sigmoid"),
                   loss="binary_crossentropy")
    y = (y > 0).astype(float)
    report = check_model(model, x, y)
    failing = {e.name for e in report.entries if not e.passed}
    assert failing == {"dense_1.kernel", "dense_1.bias"}


def test_check_model_leaves_the_dropout_stream_and_weights_as_it_found_them(float64):
    # A model checked before training must then train exactly as one that was never checked.
    x, y = _data()
    model = Sequential([Dense(6, activation="tanh", input_shape=(5,)), Dropout(0.4, seed=3),
                        Dense(3, activation="softmax")])
    model.compile(SGD(), "categorical_crossentropy")
    model.build((None, 5))
    generator = next(value for value in vars(model.layers[1]).values() if isinstance(value, np.random.Generator))
    stream, weights = generator.bit_generator.state, [w.copy() for w in model.get_weights()]
    assert check_model(model, x, y).passed
    assert generator.bit_generator.state == stream
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), weights, strict=True))


def test_check_model_requires_a_compiled_float64_model():
    x, y = _data()
    model = Sequential([Dense(3, activation="softmax", input_shape=(5,))])
    with pytest.raises(RuntimeError, match=r"check_model: compile the model first"):
        check_model(model, x, y)
    model.compile(SGD(), "categorical_crossentropy")
    with pytest.raises(TypeError, match=r"check_model: layer dense_1 is float32; build the model after "
                                        r"tinynet.backend.set_floatx\('float64'\)"):
        check_model(model, x, y)
    backend.set_floatx("float64")
    model = Sequential([Dense(3, activation="softmax", input_shape=(5,))])
    model.compile(SGD(), "categorical_crossentropy")
    with pytest.raises(ValueError, match=r"x and y must hold the same number of samples"):
        check_model(model, x, y[:2])


class ScaleKeepingANamedTuple(Scale):
    """Keeps its weight again inside a namedtuple: converted with the rest, so the check sees one array."""

    def build(self, input_shape):
        from collections import namedtuple

        super().build(input_shape)
        self.weights_by_role = namedtuple("Roles", "scale")(self.params["scale"])

    def forward(self, x, training=False):
        x = self._prepare_input(x)
        self._cache = x
        return x * self.weights_by_role.scale


def test_arrays_inside_a_namedtuple_are_converted_with_the_rest():
    layer = ScaleKeepingANamedTuple()
    layer.build((3,))
    report = check_layer(layer, (3,))
    assert report.passed, str(report)
    assert layer.weights_by_role.scale is layer.params["scale"] and layer.dtype == np.float32
