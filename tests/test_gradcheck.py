"""The public gradient checker: it passes correct layers and models, and it catches planted bugs, naming the
wrong array and entries in its report."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tinynet import backend
from tinynet.gradcheck import check_layer, check_model, numerical_gradient
from tinynet.layers import Activation, Conv2D, Dense, Dropout, Flatten, Layer, MaxPooling2D
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


def test_max_entries_limits_the_checked_entries(float64):
    report = check_layer(Conv2D(8, 3), (6, 6, 4), max_entries=10)
    assert report.passed, str(report)
    assert {e.name: e.checked for e in report.entries} == {"x": 10, "conv2d_1.kernel": 10, "conv2d_1.bias": 8}


def test_custom_layer_written_against_the_contract_passes(float64):
    layer = Scale()
    report = check_layer(layer, (3, 4), batch_size=2)
    assert report.passed, str(report)
    assert [e.name for e in report.entries] == ["x", "scale_1.scale"]


def test_float32_layers_are_checked_through_a_float64_copy_without_side_effects():
    layer = Dense(3, activation="tanh")
    layer.build((4,))
    before = layer.get_weights()
    report = check_layer(layer, (4,))
    assert report.passed, str(report)
    for after, original in zip(layer.get_weights(), before, strict=True):
        assert after.dtype == np.float32
        np.testing.assert_array_equal(after, original)
    with pytest.raises(TypeError, match=r"check_layer: needs_positional_argument_1 is float32 and could not be "
                                        r"rebuilt in float64 from get_config\(\)"):
        check_layer(NeedsPositionalArgument(2.0), (3,))


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
