"""Losses: values against hand computation, hand-written gradients against finite differences of the batch mean,
and the fused softmax gradient against the chained backward passes it replaces."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tinynet import activations, losses, metrics
from tinynet.learn.gradcheck import numerical_gradient

LOSS_SETTINGS = settings(max_examples=25)
SEEDS = st.integers(0, 2**32 - 1)
EPS = 1e-7
CLIPPED_LOSS = -math.log(EPS)  # 16.118095...


def finite_difference_gradient(function, array: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``function(array)`` for every entry of ``array`` (float64), by the
    gradient checker's own :func:`~tinynet.learn.gradcheck.numerical_gradient`."""
    indices = list(np.ndindex(array.shape))
    return numerical_gradient(lambda: function(array), array, indices, step).reshape(array.shape)


def _targets_and_predictions(name: str, rng: np.random.Generator, batch: int, classes: int, soft: bool):
    """Targets and predictions for a loss, with every prediction safely inside the clip range."""
    if name == "categorical_crossentropy":
        y_true = rng.dirichlet(np.ones(classes), batch) if soft else np.eye(classes)[rng.integers(0, classes, batch)]
        y_pred = rng.uniform(0.05, 1.0, (batch, classes))  # not normalised: the gradient must renormalise
    elif name == "sparse_categorical_crossentropy":
        y_true = rng.integers(0, classes, batch)
        y_pred = rng.uniform(0.05, 0.95, (batch, classes))
    elif name == "mean_squared_error":
        y_true = rng.standard_normal((batch, 2, classes)) if soft else rng.standard_normal((batch, classes))
        y_pred = rng.standard_normal(y_true.shape)
    else:  # binary_crossentropy
        y_true = rng.uniform(0, 1, (batch, classes)) if soft else rng.integers(0, 2, (batch, classes)).astype(float)
        y_pred = rng.uniform(0.05, 0.95, (batch, classes))
    return y_true, y_pred


# ---------------------------------------------------------------------------- gradients of the batch mean
@LOSS_SETTINGS
@given(name=st.sampled_from(["categorical_crossentropy", "sparse_categorical_crossentropy", "mean_squared_error",
                             "binary_crossentropy"]),
       batch=st.integers(1, 6), classes=st.integers(2, 6), soft=st.booleans(), seed=SEEDS)
def test_unfused_gradient_matches_finite_differences_of_the_mean(name, batch, classes, soft, seed):
    loss = losses.get(name)
    y_true, y_pred = _targets_and_predictions(name, np.random.default_rng(seed), batch, classes, soft)
    analytic = loss.gradient(y_true, y_pred)
    numeric = finite_difference_gradient(lambda p: loss(y_true, p), y_pred)
    assert analytic.shape == y_pred.shape and analytic.dtype == y_pred.dtype
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


@LOSS_SETTINGS
@given(name=st.sampled_from(["categorical_crossentropy", "sparse_categorical_crossentropy"]),
       batch=st.integers(1, 6), classes=st.integers(2, 6), scale=st.sampled_from([0.3, 1.0, 4.0]),
       soft=st.booleans(), seed=SEEDS)
def test_fused_softmax_gradient_equals_softmax_backward_of_the_unfused_gradient(name, batch, classes, scale, soft,
                                                                               seed):
    rng = np.random.default_rng(seed)
    loss = losses.get(name)
    logits = scale * rng.standard_normal((batch, classes))
    labels = rng.integers(0, classes, batch)
    if name == "sparse_categorical_crossentropy":
        y_true = labels
    else:
        y_true = rng.dirichlet(np.ones(classes), batch) if soft else np.eye(classes)[labels]
    softmax = activations.get("softmax")
    probabilities = softmax.forward(logits)
    assume(probabilities.min() > 1e-5 and probabilities.max() < 1 - 1e-5)  # nothing clipped

    fused = loss.softmax_gradient(y_true, probabilities)
    chained = softmax.backward(loss.gradient(y_true, probabilities), probabilities)
    np.testing.assert_allclose(fused, chained, rtol=1e-7, atol=1e-12)
    # ... and both are the gradient, with respect to the logits, of the mean loss of softmax(logits).
    numeric = finite_difference_gradient(lambda z: loss(y_true, softmax.forward(z)), logits)
    np.testing.assert_allclose(fused, numeric, rtol=1e-5, atol=1e-9)


def test_fused_gradient_is_p_minus_y_over_batch():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    y = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    expected = (p - y) / 2
    np.testing.assert_allclose(losses.get("categorical_crossentropy").softmax_gradient(y, p), expected)
    np.testing.assert_allclose(losses.get("sparse_categorical_crossentropy").softmax_gradient(np.array([0, 1]), p),
                               expected)


# ----------------------------------------------------------------------------------- known loss values
def test_categorical_crossentropy_values():
    loss = losses.get("categorical_crossentropy")
    p = np.array([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]])
    y = np.array([[1.0, 0, 0], [0, 0, 1.0]])
    np.testing.assert_allclose(loss.per_sample(y, p), [-math.log(0.7), -math.log(0.5)])
    assert loss(y, p) == pytest.approx((-math.log(0.7) - math.log(0.5)) / 2)
    # Keras renormalises the prediction rows before the log.
    assert loss(y, 3 * p) == pytest.approx(loss(y, p))
    # Uniform predictions over K classes cost log K.
    assert loss(np.eye(10), np.full((10, 10), 0.1)) == pytest.approx(math.log(10))
    # Keras's function-style name gives per-sample values.
    np.testing.assert_allclose(losses.categorical_crossentropy(y, p), loss.per_sample(y, p))


def test_clipping_caps_the_loss_and_zeroes_the_unfused_gradient_like_keras():
    loss = losses.get("categorical_crossentropy")
    p = np.array([[0.0, 1.0], [0.6, 0.4]])
    y = np.array([[1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(loss.per_sample(y, p), [CLIPPED_LOSS, -math.log(0.6)], rtol=1e-9)
    assert CLIPPED_LOSS == pytest.approx(16.118095, abs=1e-6)
    gradient = loss.gradient(y, p)
    np.testing.assert_array_equal(gradient[0], 0.0)  # flat clip: Keras ignores the hopeless sample
    # The other sample: g = -y / q = [-1/0.6, 0], sum(g * q) = -1, so dL/dp = (g + 1) / N.
    np.testing.assert_allclose(gradient[1], [(1 - 1 / 0.6) / 2, 0.5], rtol=1e-9)
    # The fused gradient keeps pushing it: (p - y) / N.
    np.testing.assert_allclose(loss.softmax_gradient(y, p)[0], [-0.5, 0.5])

    sparse = losses.get("sparse_categorical_crossentropy")
    np.testing.assert_allclose(sparse.per_sample(np.array([0, 0]), p), [CLIPPED_LOSS, -math.log(0.6)], rtol=1e-9)
    np.testing.assert_array_equal(sparse.gradient(np.array([0, 0]), p)[0], 0.0)

    binary = losses.get("binary_crossentropy")
    np.testing.assert_allclose(binary.per_sample(np.array([[1.0]]), np.array([[0.0]])), [CLIPPED_LOSS], rtol=1e-6)
    np.testing.assert_array_equal(binary.gradient(np.array([[1.0]]), np.array([[0.0]])), 0.0)


def test_sparse_equals_categorical_on_one_hot_targets():
    rng = np.random.default_rng(0)
    p = activations.softmax(rng.standard_normal((7, 4)))
    labels = rng.integers(0, 4, 7)
    one_hot = np.eye(4)[labels]
    sparse, categorical = losses.get("sparse_categorical_crossentropy"), losses.get("categorical_crossentropy")
    np.testing.assert_allclose(sparse.per_sample(labels, p), categorical.per_sample(one_hot, p), rtol=1e-12)
    # Both renormalise, so both carry the term +1/N on every entry that the division by sum(p) adds (and
    # softmax's backward removes): on the label -1/(N p_c) + 1/N, elsewhere 1/N.
    np.testing.assert_allclose(sparse.gradient(labels, p), categorical.gradient(one_hot, p), rtol=1e-12)
    expected = np.full_like(p, 1 / 7)
    expected[np.arange(7), labels] += -1 / (7 * p[np.arange(7), labels])
    np.testing.assert_allclose(sparse.gradient(labels, p), expected, rtol=1e-12)


def test_sparse_crossentropy_renormalises_rows_like_keras():
    sparse = losses.get("sparse_categorical_crossentropy")
    p = np.array([[0.4, 0.4, 1.2], [0.1, 0.1, 0.3]])  # rows summing to 2 and 0.5: Keras divides by the sum first
    labels = np.array([2, 0])
    np.testing.assert_allclose(sparse.per_sample(labels, p), [-math.log(0.6), -math.log(0.2)], rtol=1e-12)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(labels, p), sparse.per_sample(labels, p))
    assert sparse(labels, 3 * p) == pytest.approx(sparse(labels, p), rel=1e-12)
    # dL/dp_j = (1 - [j == c] / q_c) / (S N): q = 0.6, S = 2 and q = 0.2, S = 0.5, N = 2
    np.testing.assert_allclose(sparse.gradient(labels, p), [[0.25, 0.25, (1 - 1 / 0.6) / 4],
                                                            [(1 - 1 / 0.2), 1.0, 1.0]], rtol=1e-12)


@LOSS_SETTINGS
@given(batch=st.integers(1, 6), classes=st.integers(2, 6), row_scale=st.sampled_from([0.01, 0.3, 1.0, 7.0]),
       seed=SEEDS)
def test_sparse_crossentropy_on_unnormalised_rows_is_categorical_on_one_hot(batch, classes, row_scale, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, batch)
    p = row_scale * rng.uniform(0.05, 1.0, (batch, classes))
    sparse, categorical = losses.get("sparse_categorical_crossentropy"), losses.get("categorical_crossentropy")
    one_hot = np.eye(classes)[labels]
    np.testing.assert_allclose(sparse.per_sample(labels, p), categorical.per_sample(one_hot, p), rtol=1e-12)
    gradient = sparse.gradient(labels, p)
    np.testing.assert_allclose(gradient, categorical.gradient(one_hot, p), rtol=1e-10, atol=1e-14)
    numeric = finite_difference_gradient(lambda q: sparse(labels, q), p, step=1e-7 * row_scale)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-8 / row_scale)
    assert gradient.dtype == p.dtype


def test_mse_and_binary_crossentropy_values():
    y = np.array([[1.0, 0.0], [0.0, 0.0]])
    p = np.array([[0.5, 0.5], [0.2, 0.4]])
    mse = losses.get("mse")
    assert isinstance(mse, losses.MeanSquaredError)
    np.testing.assert_allclose(mse.per_sample(y, p), [0.25, (0.04 + 0.16) / 2])
    np.testing.assert_allclose(mse.gradient(y, p), 2 * (p - y) / 2 / 2)
    binary = losses.get("binary_crossentropy")
    expected = [-(math.log(0.5) + math.log(0.5)) / 2, -(math.log(0.8) + math.log(0.6)) / 2]
    np.testing.assert_allclose(binary.per_sample(y, p), expected)


def test_loss_mean_is_over_the_batch_even_for_a_partial_batch():
    loss = losses.get("categorical_crossentropy")
    rng = np.random.default_rng(1)
    p = activations.softmax(rng.standard_normal((3, 5)))
    y = np.eye(5)[[0, 3, 4]]
    assert loss(y, p) == pytest.approx(loss.per_sample(y, p).mean())
    # The gradient of a 3-sample batch is a third of the one-sample gradients.
    np.testing.assert_allclose(loss.gradient(y, p)[1], loss.gradient(y[1:2], p[1:2])[0] / 3)


# ----------------------------------------------------------------------------------- lookup and targets
def test_get_by_name_alias_instance_class_and_function():
    assert isinstance(losses.get("categorical_crossentropy"), losses.CategoricalCrossentropy)
    assert isinstance(losses.get("sparse_categorical_crossentropy"), losses.SparseCategoricalCrossentropy)
    assert isinstance(losses.get("mean_squared_error"), losses.MeanSquaredError)
    assert isinstance(losses.get("binary_crossentropy"), losses.BinaryCrossentropy)
    instance = losses.BinaryCrossentropy()
    assert losses.get(instance) is instance
    assert isinstance(losses.get(losses.MeanSquaredError), losses.MeanSquaredError)
    assert isinstance(losses.get(losses.categorical_crossentropy), losses.CategoricalCrossentropy)


def test_unknown_loss_names_raise_with_the_choices():
    with pytest.raises(ValueError, match=r"loss: unknown loss 'categorical_cross_entropy'; expected one of "
                                         r"binary_crossentropy, categorical_crossentropy"):
        losses.get("categorical_cross_entropy")
    with pytest.raises(TypeError, match=r"loss: expected a loss name or a tinynet.losses.Loss, got int"):
        losses.get(3)


def test_target_checks_name_the_argument():
    categorical = losses.get("categorical_crossentropy")
    with pytest.raises(ValueError, match=r"y: loss 'categorical_crossentropy' expects targets of shape "
                                         r"\(samples, 10\) to match the model output, got \(4,\)"):
        categorical.check_targets(np.zeros(4), (10,))
    sparse = losses.get("sparse_categorical_crossentropy")
    np.testing.assert_array_equal(sparse.check_targets(np.array([[1], [2]]), (3,)), [1, 2])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\] for a 3-way output, got values in \[0, 3\]"):
        sparse.check_targets(np.array([0, 3]), (3,))
    with pytest.raises(TypeError, match=r"expects integer class labels, got non-integer floats"):
        sparse.check_targets(np.array([0.5, 1.0]), (3,))
    with pytest.raises(ValueError, match=r"expects integer labels of shape \(samples,\), got \(2, 3\)"):
        sparse.check_targets(np.eye(3)[:2], (3,))


def test_accuracy_metrics():
    y = np.eye(3)[[0, 1, 2, 2]]
    p = np.array([[0.5, 0.5, 0.0], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    # The tie in row 0 goes to the first index, which is right.
    np.testing.assert_array_equal(metrics.categorical_accuracy(y, p), [1, 1, 0, 1])
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy(np.array([0, 1, 2, 2]), p), [1, 1, 0, 1])
    np.testing.assert_array_equal(metrics.binary_accuracy(np.array([[1, 0], [1, 1]]), np.array([[0.7, 0.2],
                                                                                                 [0.4, 0.9]])),
                                  [1.0, 0.5])
