"""The losses added for Keras scripts (mae, huber, kld, hinges, logcosh, poisson, ...), ``from_logits`` and
``label_smoothing``, and Keras 2.2.4's per-sample weighting: values against the Keras formulas, hand-written
gradients against float64 central differences of the (weighted) batch mean, and the fused softmax gradient with
weights against the chained backward passes it replaces."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_losses import finite_difference_gradient  # the tests' one finite-difference helper

from tinynet import activations, losses
from tinynet.losses.base import scale_by_weights, weighted_mean

SETTINGS = settings(max_examples=25, deadline=None)
SEEDS = st.integers(0, 2**32 - 1)
NEW_LOSSES = ["mean_absolute_error", "mean_absolute_percentage_error", "mean_squared_logarithmic_error",
              "huber_loss", "logcosh", "poisson", "hinge", "squared_hinge", "categorical_hinge",
              "kullback_leibler_divergence"]
ALL_LOSSES = [*NEW_LOSSES, "categorical_crossentropy", "sparse_categorical_crossentropy", "mean_squared_error",
              "binary_crossentropy"]


def _away_from(values: np.ndarray, kink: np.ndarray | float, gap: float = 0.05) -> np.ndarray:
    """Move each entry at least ``gap`` away from ``kink``: central differences straddling a kink are wrong."""
    offset = values - kink
    return np.where(np.abs(offset) < gap, kink + np.where(offset >= 0, gap, -gap), values)


def _data(name: str, rng: np.random.Generator, shape: tuple[int, ...]):
    """Targets and predictions for a loss, with every prediction away from the loss's kinks and clips."""
    classes = shape[-1]
    if name in ("categorical_crossentropy", "kullback_leibler_divergence"):
        y_true = rng.dirichlet(np.ones(classes), shape[:-1])
        return y_true, rng.uniform(0.05, 0.95, shape)
    if name == "sparse_categorical_crossentropy":
        return rng.integers(0, classes, shape[0]), rng.uniform(0.05, 0.95, (shape[0], classes))
    if name == "binary_crossentropy":
        return rng.uniform(0, 1, shape), rng.uniform(0.05, 0.95, shape)
    if name in ("hinge", "squared_hinge"):
        y_true = rng.choice([-1.0, 1.0], shape)
        return y_true, _away_from(rng.uniform(-2, 2, shape), y_true)  # kink where y p = 1
    if name == "categorical_hinge":
        y_true = np.eye(classes)[rng.integers(0, classes, shape[:-1])]
        y_pred = rng.uniform(-1, 1, shape)
        # Keep the margin away from 0 and the runner-up unique (argmax ties are kinks too).
        y_pred += np.arange(classes) * 0.1 * rng.permutation(classes)[None]
        positive = (y_true * y_pred).sum(-1)
        negative = ((1 - y_true) * y_pred).max(-1)
        margin = negative - positive + 1
        y_pred = y_pred + y_true * np.where(np.abs(margin) < 0.05, 0.1, 0)[..., None]
        return y_true, y_pred
    if name in ("poisson", "mean_squared_logarithmic_error"):
        return rng.uniform(0, 3, shape), rng.uniform(0.1, 3, shape)
    y_true = rng.standard_normal(shape)
    y_pred = rng.standard_normal(shape)
    if name in ("mean_absolute_error", "mean_absolute_percentage_error"):
        y_pred = _away_from(y_pred, y_true)
    if name == "huber_loss":
        y_pred = y_true + _away_from(_away_from(y_pred - y_true, 1.0), -1.0)
    return y_true, y_pred


SHAPES = st.sampled_from([(1, 3), (4, 2), (5, 4), (3, 2, 3)])


@SETTINGS
@given(name=st.sampled_from(ALL_LOSSES), shape=SHAPES, weighted=st.booleans(), seed=SEEDS)
def test_gradient_of_the_weighted_mean_matches_finite_differences(name, shape, weighted, seed):
    rng = np.random.default_rng(seed)
    loss = losses.get(name)
    if name in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
        shape = shape[:1] + shape[-1:]  # one distribution per sample
    y_true, y_pred = _data(name, rng, shape)
    weights = None
    if weighted:  # some zero weights: they leave the sum and the count
        weights = rng.uniform(0, 3, shape[0]) * (rng.uniform(size=shape[0]) > 0.3)
    analytic = loss.gradient(y_true, y_pred, weights)
    numeric = finite_difference_gradient(lambda p: loss(y_true, p, weights), y_pred)
    assert analytic.shape == y_pred.shape and analytic.dtype == y_pred.dtype
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


@SETTINGS
@given(name=st.sampled_from(["categorical_crossentropy", "sparse_categorical_crossentropy"]),
       batch=st.integers(1, 6), classes=st.integers(2, 5), smoothing=st.sampled_from([0.0, 0.1]), seed=SEEDS)
def test_fused_weighted_softmax_gradient_equals_the_unfused_path(name, batch, classes, smoothing, seed):
    rng = np.random.default_rng(seed)
    if name == "sparse_categorical_crossentropy":
        smoothing = 0.0  # Keras 2.3 gives the sparse one no label_smoothing
    loss = (losses.CategoricalCrossentropy(label_smoothing=smoothing) if name == "categorical_crossentropy"
            else losses.SparseCategoricalCrossentropy())
    logits = rng.standard_normal((batch, classes))
    labels = rng.integers(0, classes, batch)
    y_true = labels if name == "sparse_categorical_crossentropy" else np.eye(classes)[labels]
    weights = rng.uniform(0, 2, batch) * (rng.uniform(size=batch) > 0.2)
    softmax = activations.get("softmax")
    probabilities = softmax.forward(logits)
    fused = loss.softmax_gradient(y_true, probabilities, weights)
    chained = softmax.backward(loss.gradient(y_true, probabilities, weights), probabilities)
    np.testing.assert_allclose(fused, chained, rtol=1e-7, atol=1e-12)
    # (p - y) w_i / (N mean(w != 0)) = (p - y) w_i / nnz(w)
    nonzero = max(np.count_nonzero(weights), 1)
    target = np.eye(classes)[labels] * (1 - smoothing) + smoothing / classes if name == "categorical_crossentropy" \
        else np.eye(classes)[labels]
    np.testing.assert_allclose(fused, (probabilities - target) * weights[:, None] / nonzero, rtol=1e-10,
                               atol=1e-15)
    numeric = finite_difference_gradient(lambda z: loss(y_true, softmax.forward(z), weights), logits)
    np.testing.assert_allclose(fused, numeric, rtol=1e-5, atol=1e-9)


def test_weighting_follows_keras_weighted_masked_objective():
    per_sample = np.array([1.0, 2.0, 3.0, 4.0])
    weights = np.array([2.0, 0.0, 1.0, 0.5])
    # mean(l w) / mean(w != 0) = ((2 + 0 + 3 + 2) / 4) / (3 / 4)
    assert weighted_mean(per_sample, weights) == pytest.approx(7 / 3)
    assert weighted_mean(per_sample, np.ones(4)) == pytest.approx(per_sample.mean())
    assert weighted_mean(per_sample, np.zeros(4)) == 0.0  # Keras: 0 / 0; tinynet: nothing to learn
    gradient = np.ones((4, 2), dtype=np.float32)
    assert scale_by_weights(gradient, None) is gradient  # the unweighted path is untouched
    scaled = scale_by_weights(gradient, weights)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled[:, 0], weights * 4 / 3)
    np.testing.assert_array_equal(scale_by_weights(gradient, np.zeros(4)), 0.0)


def test_new_loss_values_against_the_keras_formulas():
    y = np.array([[0.0, 1.0, 2.0]])
    p = np.array([[0.5, -1.0, 2.0]])
    x = p - y
    assert losses.get("mae")(y, p) == pytest.approx(np.abs(x).mean())
    assert losses.get("huber")(y, p) == pytest.approx((0.5 * 0.25 + (2 - 0.5) + 0) / 3)
    assert losses.Huber(delta=3.0)(y, p) == pytest.approx((0.5 * 0.25 + 0.5 * 4) / 3)
    assert losses.get("logcosh")(y, p) == pytest.approx(np.log(np.cosh(x)).mean())
    rate = np.array([[0.5, 2.0, 1.0]])
    assert losses.get("poisson")(y, rate) == pytest.approx((rate - y * np.log(rate + 1e-7)).mean())
    assert losses.get("mape")(np.array([[2.0, -4.0]]), np.array([[1.0, -2.0]])) == pytest.approx(50.0)
    assert losses.get("msle")(np.array([[0.0, 1.0]]), np.array([[1.0, 1.0]])) == pytest.approx(math.log(2) ** 2 / 2)
    signs = np.array([[1.0, -1.0, 1.0]])
    scores = np.array([[0.3, 0.5, 2.0]])
    assert losses.get("hinge")(signs, scores) == pytest.approx((0.7 + 1.5 + 0) / 3)
    assert losses.get("squared_hinge")(signs, scores) == pytest.approx((0.49 + 2.25) / 3)
    one_hot = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    logits = np.array([[0.2, 0.5, 0.4], [3.0, 0.0, 1.0]])
    # sample 1: neg 0.4, pos 0.5 -> 0.9; sample 2: neg 1, pos 3 -> max(0, -1) = 0
    np.testing.assert_allclose(losses.get("categorical_hinge").per_sample(one_hot, logits), [0.9, 0.0])
    target = np.array([[0.25, 0.75]])
    prediction = np.array([[0.5, 0.5]])
    expected = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert losses.get("kld")(target, prediction) == pytest.approx(expected)
    assert losses.get("kullback_leibler_divergence")(target, target) == pytest.approx(0.0, abs=1e-12)


def test_aliases_and_function_style_names():
    for alias, cls in (("mse", losses.MeanSquaredError), ("MAE", losses.MeanAbsoluteError),
                       ("mape", losses.MeanAbsolutePercentageError), ("msle", losses.MeanSquaredLogarithmicError),
                       ("kld", losses.KLDivergence), ("huber", losses.Huber), ("logcosh", losses.LogCosh)):
        assert isinstance(losses.get(alias), cls)
    assert isinstance(losses.get(losses.mae), losses.MeanAbsoluteError)
    assert isinstance(losses.get(losses.kullback_leibler_divergence), losses.KLDivergence)
    y, p = np.array([[1.0, 0.0]]), np.array([[0.8, 0.3]])
    np.testing.assert_allclose(losses.mean_absolute_error(y, p), [0.25])
    np.testing.assert_allclose(losses.huber_loss(y, p, delta=0.1), [(0.1 * (0.2 - 0.05) + 0.1 * (0.3 - 0.05)) / 2])


@SETTINGS
@given(name=st.sampled_from(["categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy"]),
       batch=st.integers(1, 5), classes=st.integers(2, 5), smoothing=st.sampled_from([0.0, 0.2]), seed=SEEDS)
def test_from_logits_equals_the_loss_of_the_activated_outputs_and_is_gradient_checked(name, batch, classes,
                                                                                      smoothing, seed):
    rng = np.random.default_rng(seed)
    logits = 2 * rng.standard_normal((batch, classes))
    labels = rng.integers(0, classes, batch)
    if name == "sparse_categorical_crossentropy":
        on_logits, on_probabilities = losses.SparseCategoricalCrossentropy(True), losses.get(name)
        y_true, activate = labels, activations.softmax
    elif name == "categorical_crossentropy":
        on_logits = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)
        on_probabilities = losses.CategoricalCrossentropy(label_smoothing=smoothing)
        y_true, activate = np.eye(classes)[labels], activations.softmax
    else:
        on_logits = losses.BinaryCrossentropy(from_logits=True, label_smoothing=smoothing)
        on_probabilities = losses.BinaryCrossentropy(label_smoothing=smoothing)
        y_true, activate = rng.integers(0, 2, (batch, classes)).astype(float), lambda z: 1 / (1 + np.exp(-z))
    probabilities = activate(logits)
    if probabilities.min() > 1e-6 and probabilities.max() < 1 - 1e-6:  # nothing clipped on the probability side
        np.testing.assert_allclose(on_logits.per_sample(y_true, logits), on_probabilities.per_sample(y_true,
                                                                                                     probabilities),
                                   rtol=1e-7)
    assert not on_logits.fuses_with_softmax
    weights = rng.uniform(0.5, 2, batch)
    numeric = finite_difference_gradient(lambda z: on_logits(y_true, z, weights), logits)
    np.testing.assert_allclose(on_logits.gradient(y_true, logits, weights), numeric, rtol=1e-5, atol=1e-9)


def test_label_smoothing_values_follow_keras_2_3():
    y = np.array([[0.0, 1.0, 0.0, 0.0]])
    p = np.array([[0.1, 0.6, 0.2, 0.1]])
    smoothed = y * 0.8 + 0.2 / 4
    assert losses.CategoricalCrossentropy(label_smoothing=0.2)(y, p) == pytest.approx(-(smoothed * np.log(p)).sum())
    binary_smoothed = y * 0.8 + 0.1
    expected = -(binary_smoothed * np.log(p) + (1 - binary_smoothed) * np.log(1 - p)).mean()
    assert losses.BinaryCrossentropy(label_smoothing=0.2)(y, p) == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"categorical_crossentropy: label_smoothing must be a number in \[0, 1\]"):
        losses.CategoricalCrossentropy(label_smoothing=1.5)
    with pytest.raises(TypeError, match=r"binary_crossentropy: from_logits must be True or False, got 'yes'"):
        losses.BinaryCrossentropy(from_logits="yes")
    with pytest.raises(ValueError, match=r"huber_loss: delta must be a positive number, got 0"):
        losses.Huber(delta=0)
