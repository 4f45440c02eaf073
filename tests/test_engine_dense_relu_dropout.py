"""The fused Dense -> ReLU [-> Dropout] stage (tinynet.engine.dense_relu_dropout) against the layers it runs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_conv_block import _through_layers  # the layers one by one: the reference
from test_engine_planner import _train

from tinynet import engine
from tinynet.engine import blas
from tinynet.layers import Activation, Dense, Dropout, Flatten, ReLU
from tinynet.learn.gradcheck import check_model
from tinynet.models import Sequential, passes
from tinynet.utils import set_random_seed


def _dense_model():
    return Sequential([Flatten(input_shape=(28, 28, 1)), Dense(48), Activation("relu"), Dropout(0.3),
                       Dense(24, activation="relu"), Dropout(0.5), Dense(16), ReLU(),
                       Dense(10, activation="softmax")])


def test_a_model_trains_through_the_fused_stages_bit_for_bit_as_its_layers(two_threads):
    fused, fused_history, fused_predictions = _train(True, _dense_model)
    plain, plain_history, plain_predictions = _train(False, _dense_model)
    assert [type(stage).__name__ for stage in passes.stages(fused)] == [
        "Flatten", "DenseReluDropout", "DenseReluDropout", "DenseReluDropout", "ThreadedDense"]
    for a, b in zip(fused.get_weights(), plain.get_weights(), strict=True):
        assert np.array_equal(a, b)
    assert fused_history == plain_history
    assert np.array_equal(fused_predictions, plain_predictions)


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 40), features=st.integers(1, 70), units=st.integers(1, 600),
       rate=st.sampled_from([None, 0.0, 0.25, 0.7]), relu_in_dense=st.booleans(), use_bias=st.booleans(),
       specials=st.booleans(), steps=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_the_stage_is_the_layers_bit_for_bit(batch, features, units, rate, relu_in_dense, use_bias, specials, steps,
                                             seed):
    """Forward (training and inference), backward and the parameter gradients, the same bits as the layers run
    one by one, NaN, infinities and -0.0 included, and the dropout generators left in the same state. Both in the
    single-threaded BLAS scope a model runs in (OpenBLAS's own threads round a product differently)."""
    def layers():
        set_random_seed(seed)
        dense = Dense(units, activation="relu" if relu_in_dense else None, use_bias=use_bias,
                      input_shape=(features,))
        chain = [dense] if relu_in_dense else [dense, ReLU()]
        if rate is not None:
            chain.append(Dropout(rate))
        return Sequential(chain).layers

    mine, twins = layers(), layers()
    (stage,) = engine.plan(list(mine))
    # a relu Dense with nothing after it has nothing to fuse: the plain threaded stage
    assert type(stage).__name__ == ("ThreadedDense" if relu_in_dense and rate is None else "DenseReluDropout")
    with blas.single_threaded():
        rng = np.random.default_rng(seed)
        for step in range(steps):
            x = rng.standard_normal((batch, features)).astype(np.float32)
            if specials:
                x.reshape(-1)[rng.integers(0, x.size, 3)] = [np.nan, np.inf, -0.0]
                mine[0].params["kernel"][0, :min(units, 2)] = -0.0
                twins[0].params["kernel"][0, :min(units, 2)] = -0.0
            training = step != 1
            y = stage.forward(x, training=training)
            expected = x
            for twin in twins:
                expected = twin.forward(expected, training=training)
            np.testing.assert_array_equal(y, expected)
            assert np.array_equal(np.signbit(y), np.signbit(expected))
            if not training:
                continue
            dy = rng.standard_normal(y.shape).astype(np.float32)
            dx = stage.backward(dy)
            gradient = dy
            for twin in reversed(twins):
                gradient = twin.backward(gradient)
            np.testing.assert_array_equal(dx, gradient)
            for name in mine[0].grads:
                np.testing.assert_array_equal(mine[0].grads[name], twins[0].grads[name])
    if rate:
        assert mine[-1].generator.bit_generator.state == twins[-1].generator.bit_generator.state


def test_inputs_of_higher_rank_and_the_first_layer_without_input_gradient(two_threads):
    set_random_seed(5)
    mine = Sequential([Dense(7, input_shape=(3, 5)), Activation("relu"), Dropout(0.4)]).layers
    set_random_seed(5)
    twins = Sequential([Dense(7, input_shape=(3, 5)), Activation("relu"), Dropout(0.4)]).layers
    (stage,) = engine.plan(list(mine))
    stage.needs_input_gradient = False
    x = np.random.default_rng(5).standard_normal((4, 3, 5)).astype(np.float32)
    y = stage.forward(x, training=True)
    dy = np.ones_like(y)
    expected, _ = _through_layers(twins, x, dy)
    assert y.shape == (4, 3, 7) and np.array_equal(y, expected)
    assert stage.backward(dy) is None
    for name in mine[0].grads:
        np.testing.assert_array_equal(mine[0].grads[name], twins[0].grads[name])
    with pytest.raises(RuntimeError, match="backward called without"):
        stage.backward(dy)
    with pytest.raises(ValueError, match="dy of shape"):
        stage.forward(x, training=True)
        stage.backward(dy[:, :2])


def test_what_the_planner_fuses_and_what_it_leaves():
    model = Sequential([Flatten(input_shape=(4, 4, 1)), Dense(8), ReLU(), Dropout(0.5, noise_shape=(1, 8)),
                        Dense(8, activation="relu"), Activation("relu"), Dense(8), ReLU(negative_slope=0.1),
                        Dense(8, activation="relu"), Dense(8, activation="tanh"), Dropout(0.2),
                        Dense(3, activation="softmax")])
    stages = engine.plan(model.layers)
    assert [type(stage).__name__ for stage in stages] == [
        "Flatten", "DenseReluDropout", "Dropout",  # a dropout sharing its mask along an axis runs on its own
        "ThreadedDense", "Activation",  # a relu Dense without dropout: the plain stage
        "ThreadedDense", "ReLU",  # a leaky ReLU is not a plain one
        "ThreadedDense", "ThreadedDense", "Dropout", "ThreadedDense"]
    assert stages[1].dropout is None and [layer.name for layer in stages[1].layers] == ["dense_1", "re_lu_1"]


def test_model_gradient_check_through_the_fused_stage(float64):
    set_random_seed(9)
    model = Sequential([Dense(6, input_shape=(5,)), Activation("relu"), Dropout(0.3), Dense(5, activation="relu"),
                        Dropout(0.2), Dense(3, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    assert [type(stage).__name__ for stage in passes.stages(model)] == [
        "DenseReluDropout", "DenseReluDropout", "ThreadedDense"]
    rng = np.random.default_rng(9)
    x = rng.standard_normal((6, 5))
    y = np.eye(3)[rng.integers(0, 3, 6)]
    report = check_model(model, x, y, seed=9, step=1e-5, rtol=1e-4, atol=1e-6)
    assert report.passed, str(report)
