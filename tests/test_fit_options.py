"""What a Keras 2 script asks of fit/evaluate/predict beyond arrays and accuracy: sample and class weights,
Sequences and generators (and the Keras 2.2.4 ``*_generator`` aliases), metrics by name or function with one log
key each, ``predict_classes``/``predict_proba`` and ``backend.image_data_format``."""

from __future__ import annotations

import numpy as np
import pytest

from tinynet import backend, losses, metrics
from tinynet.layers import Dense
from tinynet.models import Sequential, load_model
from tinynet.optimizers import SGD
from tinynet.utils import Sequence, set_random_seed, to_categorical

CLASSES = 3


def _data(samples: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = 3 * rng.standard_normal((CLASSES, 4))
    labels = rng.integers(0, CLASSES, samples)
    x = (centers[labels] + 0.5 * rng.standard_normal((samples, 4))).astype(np.float32)
    return x, to_categorical(labels, CLASSES), labels


def _model(seed: int = 3, loss="categorical_crossentropy", metric_list=("accuracy",)) -> Sequential:
    set_random_seed(seed)
    model = Sequential([Dense(8, activation="relu", input_shape=(4,)), Dense(CLASSES, activation="softmax")])
    model.compile(SGD(learning_rate=0.1, momentum=0.9), loss, list(metric_list))
    return model


class Batches(Sequence):
    def __init__(self, x, y, batch_size, weights=None):
        self.x, self.y, self.batch_size, self.weights = x, y, batch_size, weights
        self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        if self.weights is None:
            return self.x[part], self.y[part]
        return self.x[part], self.y[part], self.weights[part]

    def on_epoch_end(self):
        self.epochs_ended += 1


def _generator(x, y, batch_size, weights=None):
    while True:
        for start in range(0, len(x), batch_size):
            part = slice(start, start + batch_size)
            yield (x[part], y[part]) if weights is None else (x[part], y[part], weights[part])


def _same_weights(a: Sequential, b: Sequential) -> bool:
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights(), strict=True))


# --------------------------------------------------------------------------- Sequence and generator training
def test_sequence_and_generator_training_equals_array_training_on_the_same_batches():
    x, y, _ = _data(20)
    weights = np.linspace(0.0, 2.0, 20)
    for sample_weight in (None, weights):
        by_arrays = _model()
        history = by_arrays.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, sample_weight=sample_weight,
                                validation_data=(x[:6], y[:6]))
        sequence = Batches(x, y, 8, sample_weight)
        by_sequence = _model()
        sequence_history = by_sequence.fit(sequence, epochs=3, shuffle=False, verbose=0,
                                           validation_data=Batches(x[:6], y[:6], 4))
        by_generator = _model()
        generator_history = by_generator.fit_generator(_generator(x, y, 8, sample_weight), steps_per_epoch=3,
                                                       epochs=3, shuffle=False, verbose=0,
                                                       validation_data=_generator(x[:6], y[:6], 6),
                                                       validation_steps=1)
        assert _same_weights(by_arrays, by_sequence) and _same_weights(by_arrays, by_generator)
        assert history.history["loss"] == sequence_history.history["loss"] == generator_history.history["loss"]
        np.testing.assert_allclose(history.history["val_loss"], sequence_history.history["val_loss"], rtol=1e-6)
        np.testing.assert_allclose(history.history["val_acc"], generator_history.history["val_acc"], rtol=1e-6)
        assert sequence.epochs_ended == 3  # on_epoch_end after every epoch


def test_a_shuffled_sequence_visits_every_batch_once_per_epoch_in_a_new_order():
    x, y, _ = _data(20)
    seen: list[int] = []

    class Recording(Batches):
        def __getitem__(self, index):
            seen.append(index)
            return super().__getitem__(index)

    _model().fit(Recording(x, y, 4), epochs=2, verbose=0)
    assert sorted(seen[:5]) == sorted(seen[5:]) == [0, 1, 2, 3, 4]
    assert seen[:5] != [0, 1, 2, 3, 4] or seen[5:] != [0, 1, 2, 3, 4]


def test_evaluate_and_predict_on_a_sequence_or_generator_equal_the_arrays():
    x, y, _ = _data(20)
    model = _model()
    model.fit(x, y, batch_size=5, epochs=2, verbose=0)
    expected = model.evaluate(x, y, batch_size=5, verbose=0)
    np.testing.assert_allclose(model.evaluate(Batches(x, y, 5), verbose=0), expected, rtol=1e-6)
    np.testing.assert_allclose(model.evaluate_generator(_generator(x, y, 5), steps=4), expected, rtol=1e-6)
    outputs = model.predict(x)
    np.testing.assert_allclose(model.predict(Batches(x, y, 6)), outputs, rtol=1e-6)
    np.testing.assert_allclose(model.predict_generator((x[i:i + 7] for i in range(0, 20, 7)), steps=3), outputs,
                               rtol=1e-6)


def test_the_progress_bar_counts_steps_on_a_generator(capsys):
    x, y, _ = _data(20)
    _model().fit(_generator(x, y, 8), steps_per_epoch=3, epochs=1, verbose=1)
    printed = capsys.readouterr().out
    assert "3/3 [" in printed and "loss:" in printed and "acc:" in printed


def test_generator_errors_name_the_argument():
    x, y, _ = _data(8)
    model = _model()
    with pytest.raises(ValueError, match=r"sequential_\d+.fit: steps_per_epoch is required with a generator"):
        model.fit(_generator(x, y, 4))
    with pytest.raises(ValueError, match=r"the generator stopped after 2 of the 3 batches"):
        model.fit(iter([(x[:4], y[:4]), (x[4:], y[4:])]), steps_per_epoch=3, verbose=0)
    with pytest.raises(ValueError, match=r"each batch must be a tuple \(x, y\) or \(x, y, sample_weight\), got "
                                         r"ndarray"):
        model.fit(iter([x]), steps_per_epoch=1, verbose=0)
    with pytest.raises(ValueError, match=r"with a Sequence or generator as x, y, sample_weight and validation_split"):
        model.fit(Batches(x, y, 4), y)
    with pytest.raises(ValueError, match=r"steps_per_epoch=3 exceeds the 2 batches of the Sequence"):
        model.fit(Batches(x, y, 4), steps_per_epoch=3)
    with pytest.raises(ValueError, match=r"evaluate: steps is required with a generator"):
        model.evaluate(_generator(x, y, 4))


# ----------------------------------------------------------------------------------- sample and class weights
def test_class_weight_equals_the_equivalent_sample_weight():
    x, y, labels = _data(20)
    class_weight = {0: 1.0, 1: 3.0, 2: 0.5}
    per_sample = np.array([class_weight[label] for label in labels])
    by_class = _model()
    by_class.fit(x, y, batch_size=8, epochs=2, verbose=0, class_weight=class_weight)
    by_sample = _model()
    by_sample.fit(x, y, batch_size=8, epochs=2, verbose=0, sample_weight=per_sample)
    assert _same_weights(by_class, by_sample)
    # The same with integer labels, and on one batch.
    sparse_class, sparse_sample = (_model(loss="sparse_categorical_crossentropy") for _ in range(2))
    assert sparse_class.train_on_batch(x, labels, class_weight=class_weight) == \
        sparse_sample.train_on_batch(x, labels, sample_weight=per_sample)
    assert _same_weights(sparse_class, sparse_sample)
    unweighted = _model()
    unweighted.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert not _same_weights(by_class, unweighted)


def test_weighted_loss_in_fit_evaluate_and_the_step_is_keras_weighted_mean():
    x, y, labels = _data(12)
    model = _model()
    weights = np.array([0.0, 1.0, 2.0] * 4)
    per_sample = losses.get("categorical_crossentropy").per_sample(y, model.predict(x).astype(np.float64))
    expected = np.sum(per_sample * weights) / np.count_nonzero(weights)
    loss, _ = model.evaluate(x, y, batch_size=12, verbose=0, sample_weight=weights)
    assert loss == pytest.approx(expected, rel=1e-5)
    assert model.test_on_batch(x, y, sample_weight=weights)[0] == pytest.approx(expected, rel=1e-5)
    figures = model.compute_gradients(x, y, sample_weight=weights)
    assert figures["loss"] == pytest.approx(expected, rel=1e-5)
    # Unweighted metrics (Keras 2.2.4's metrics=, not weighted_metrics=).
    assert figures["acc"] == pytest.approx(np.mean(model.predict(x).argmax(1) == labels))


def test_weighted_model_gradient_fused_equals_unfused():
    backend.set_floatx("float64")
    x, y, _ = _data(10)
    x = x.astype(np.float64)
    weights = np.random.default_rng(1).uniform(0, 2, 10)
    weights[3] = 0
    fused = _model()
    unfused_loss = losses.CategoricalCrossentropy()
    unfused_loss.fuses_with_softmax = False  # chain the softmax's own backward instead
    unfused = _model()
    unfused.compile(SGD(0.1), unfused_loss, ["accuracy"])
    fused.compute_gradients(x, y, sample_weight=weights)
    unfused.compute_gradients(x, y, sample_weight=weights)
    for a, b in zip(fused.layers, unfused.layers, strict=True):
        for name in a.grads:
            np.testing.assert_allclose(a.grads[name], b.grads[name], rtol=1e-9, atol=1e-12)
    # ... and the weighted step is the unweighted one when every weight is 1.
    unfused.compute_gradients(x, y)
    plain = [grad.copy() for layer in unfused.layers for grad in layer.grads.values()]
    fused.compute_gradients(x, y, sample_weight=np.ones(10))
    for a, b in zip(plain, (grad for layer in fused.layers for grad in layer.grads.values()), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_validation_split_carries_the_weights_and_validation_data_takes_them():
    x, y, labels = _data(20)
    weights = np.where(labels == 0, 0.0, 1.0)
    model = _model()
    history = model.fit(x, y, epochs=1, verbose=0, sample_weight=weights, validation_split=0.25, shuffle=False)
    expected = model.evaluate(x[15:], y[15:], verbose=0, sample_weight=weights[15:])[0]
    assert history.history["val_loss"][0] == pytest.approx(expected, rel=1e-6)
    again = model.fit(x[:15], y[:15], epochs=1, verbose=0, validation_data=(x[15:], y[15:], weights[15:]))
    assert again.history["val_loss"][0] == pytest.approx(model.evaluate(x[15:], y[15:], verbose=0,
                                                                         sample_weight=weights[15:])[0], rel=1e-6)


def test_weight_errors_name_the_argument():
    x, y, labels = _data(8)
    model = _model()
    with pytest.raises(ValueError, match=r"fit: sample_weight must have shape \(8,\), one weight per sample, got "
                                         r"\(8, 1\)"):
        model.fit(x, y, sample_weight=np.ones((8, 1)))
    with pytest.raises(ValueError, match=r"fit: sample_weight must hold finite, non-negative numbers"):
        model.fit(x, y, sample_weight=-np.ones(8))
    present = sorted(set(labels.tolist()))
    with pytest.raises(ValueError, match=rf"fit: class_weight must contain all classes in the data; classes "
                                         rf"\[{present[-1]}\] exist"):
        model.fit(x, y, class_weight={label: 1.0 for label in present[:-1]})
    with pytest.raises(TypeError, match=r"train_on_batch: class_weight must be a dict"):
        model.train_on_batch(x, y, class_weight=[1, 2, 3])


# --------------------------------------------------------------------------------------------------- metrics
def test_metrics_by_name_and_function_log_one_key_each_and_evaluate_returns_them_in_order():
    x, y, labels = _data(20)

    def worst_probability(y_true, y_pred):
        return y_pred.max(axis=-1)

    model = _model(metric_list=("accuracy", "mae", "mse", "top_k_categorical_accuracy", worst_probability))
    assert model.metrics_names == ["loss", "acc", "mean_absolute_error", "mean_squared_error",
                                   "top_k_categorical_accuracy", "worst_probability"]
    history = model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y))
    assert set(history.history) == {*model.metrics_names, *(f"val_{key}" for key in model.metrics_names)}
    result = model.evaluate(x, y, batch_size=20, verbose=0)
    p = model.predict(x).astype(np.float64)
    expected = [losses.get("categorical_crossentropy")(y, p), np.mean(p.argmax(1) == labels),
                np.mean(np.abs(p - y)), np.mean((p - y) ** 2), 1.0, np.mean(p.max(1))]
    np.testing.assert_allclose(result, expected, rtol=1e-5)
    sparse = _model(loss="sparse_categorical_crossentropy", metric_list=("sparse_categorical_accuracy", "acc"))
    assert sparse.metrics_names == ["loss", "sparse_categorical_accuracy", "acc"]
    assert sparse.evaluate(x, labels, verbose=0)[1] == sparse.evaluate(x, labels, verbose=0)[2]


def test_metric_known_answers():
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.4, 0.4, 0.2]])
    labels = np.array([1, 0, 1])
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy(labels, p), [0, 0, 0])
    np.testing.assert_array_equal(metrics.top_k_categorical_accuracy(np.eye(3)[labels], p, k=2), [1, 0, 1])
    np.testing.assert_array_equal(metrics.sparse_top_k_categorical_accuracy(labels, p, k=1), [0, 0, 1])  # tie: in
    np.testing.assert_array_equal(metrics.top_k_categorical_accuracy(np.eye(3)[labels], p), [1, 1, 1])  # k=5
    np.testing.assert_allclose(metrics.get("mae")(np.zeros((1, 2)), np.array([[1.0, -3.0]])), [2.0])
    np.testing.assert_allclose(metrics.get("mse")(np.zeros((1, 2)), np.array([[1.0, -3.0]])), [5.0])


def test_saved_metrics_come_back_and_functions_through_custom_objects(tmp_path):
    def spread(y_true, y_pred):
        return y_pred.std(axis=-1)

    x, y, _ = _data(8)
    model = _model(metric_list=("acc", "mae", spread))
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "model.tnz")
    loaded = load_model(tmp_path / "model.tnz", custom_objects={"spread": spread})
    assert loaded.metrics_names == model.metrics_names
    np.testing.assert_allclose(loaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-6)


# ------------------------------------------------------------------------------- Keras 2 odds and ends
def test_predict_classes_predict_proba_and_image_data_format():
    x, y, _ = _data(10)
    model = _model()
    np.testing.assert_array_equal(model.predict_classes(x), model.predict(x).argmax(-1))
    np.testing.assert_array_equal(model.predict_proba(x), model.predict(x))
    set_random_seed(0)
    binary = Sequential([Dense(1, activation="sigmoid", input_shape=(4,))])
    binary.compile("sgd", "binary_crossentropy", ["accuracy"])
    classes = binary.predict_classes(x)
    assert classes.shape == (10, 1) and classes.dtype == np.int32
    np.testing.assert_array_equal(classes, (binary.predict(x) > 0.5).astype(np.int32))
    assert backend.image_data_format() == "channels_last"
