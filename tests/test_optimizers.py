"""SGD against Keras 2's equations, step by step::

    lr_t = lr / (1 + decay * t)         t = updates already applied (0 for the first)
    v    = momentum * v - lr_t * g
    p   += v                            (plain)
    p   += momentum * v - lr_t * g      (nesterov)
"""

from __future__ import annotations

import numpy as np
import pytest

from tinynet import optimizers
from tinynet.layers import Dense
from tinynet.models import Sequential
from tinynet.optimizers import SGD


def keras_sgd_reference(p0, gradients, lr, momentum, decay, nesterov):
    """The Keras 2 update written out, one step per gradient; returns the parameter after every step."""
    p, v, trajectory = np.array(p0, dtype=np.float64), np.zeros_like(p0, dtype=np.float64), []
    for t, g in enumerate(gradients):
        lr_t = lr / (1 + decay * t)
        v = momentum * v - lr_t * g
        p = p + (momentum * v - lr_t * g if nesterov else v)
        trajectory.append(p.copy())
    return trajectory


def _layer(units=3, features=4, name=None):
    layer = Dense(units, dtype="float64", name=name)
    layer.build((features,))
    return layer


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize(("lr", "momentum", "decay"), [
    (0.1, 0.0, 0.0), (0.1, 0.0, 0.5), (0.05, 0.9, 0.0), (0.05, 0.9, 1e-2), (0.3, 0.5, 2.0),
])
def test_steps_follow_keras_equations(lr, momentum, decay, nesterov):
    rng = np.random.default_rng(0)
    layer = _layer()
    layer.set_weights([rng.standard_normal((4, 3)), rng.standard_normal(3)])
    start = [w.copy() for w in layer.get_weights()]
    gradients = [[rng.standard_normal((4, 3)), rng.standard_normal(3)] for _ in range(6)]
    optimizer = SGD(learning_rate=lr, momentum=momentum, decay=decay, nesterov=nesterov)
    expected = [keras_sgd_reference(start[i], [g[i] for g in gradients], lr, momentum, decay, nesterov)
                for i in range(2)]
    for step, (kernel_grad, bias_grad) in enumerate(gradients):
        assert optimizer.iterations == step
        assert optimizer.current_learning_rate() == pytest.approx(lr / (1 + decay * step))
        layer.grads["kernel"], layer.grads["bias"] = kernel_grad, bias_grad
        optimizer.apply_gradients([layer])
        np.testing.assert_allclose(layer.params["kernel"], expected[0][step], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(layer.params["bias"], expected[1][step], rtol=1e-12, atol=1e-14)
    assert optimizer.iterations == 6
    assert optimizer.lr == lr  # the base rate, not the decayed one


@pytest.mark.parametrize(("nesterov", "expected"), [
    # Worked by hand: p0 = 1, gradients 1, 2, -1, lr = 0.1, momentum = 0.9, decay = 0.5.
    # t=0: lr_t=0.1,  v=-0.1;                          plain p=0.9;       nesterov p=1-0.09-0.1=0.81
    # t=1: lr_t=0.1/1.5, v=-0.09-0.2/1.5=-0.2233333;   plain p=0.6766667; nesterov p=0.81-0.201-0.1333333=0.4756667
    # t=2: lr_t=0.05, v=-0.201+0.05=-0.151;            plain p=0.5256667; nesterov p=0.4756667-0.1359+0.05=0.3897667
    (False, [0.9, 0.6766667, 0.5256667]),
    (True, [0.81, 0.4756667, 0.3897667]),
])
def test_hand_worked_three_steps(nesterov, expected):
    layer = _layer(units=1, features=1)
    layer.set_weights([np.ones((1, 1)), np.zeros(1)])
    optimizer = SGD(lr=0.1, momentum=0.9, decay=0.5, nesterov=nesterov)
    for gradient, want in zip([1.0, 2.0, -1.0], expected, strict=True):
        layer.grads["kernel"] = np.full((1, 1), gradient)
        layer.grads["bias"] = np.zeros(1)
        optimizer.apply_gradients([layer])
        assert layer.params["kernel"][0, 0] == pytest.approx(want, abs=1e-7)
    assert layer.params["bias"][0] == 0


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_zero_is_plain_gradient_descent_with_decay(nesterov):
    layer = _layer()
    before = layer.get_weights()
    optimizer = SGD(lr=0.2, decay=1.0, nesterov=nesterov)
    for _ in range(3):
        layer.grads["kernel"] = np.ones((4, 3))
        layer.grads["bias"] = np.full(3, -2.0)
        optimizer.apply_gradients([layer])
    total_rate = 0.2 * (1 + 1 / 2 + 1 / 3)
    np.testing.assert_allclose(layer.params["kernel"], before[0] - total_rate, rtol=1e-12)
    np.testing.assert_allclose(layer.params["bias"], before[1] + 2 * total_rate, rtol=1e-12)
    assert optimizer.velocities == {}


def test_velocities_are_kept_per_layer_and_parameter():
    first, second = _layer(name="first"), _layer(units=2, features=3, name="second")
    optimizer = SGD(lr=0.5, momentum=0.9)
    for layer, value in ((first, 1.0), (second, -3.0)):
        for name, param in layer.params.items():
            layer.grads[name] = np.full_like(param, value)
    optimizer.apply_gradients([first, second])
    assert set(optimizer.velocities) == {("first", "kernel"), ("first", "bias"), ("second", "kernel"),
                                         ("second", "bias")}
    np.testing.assert_array_equal(optimizer.velocities[("first", "kernel")], np.full((4, 3), -0.5))
    np.testing.assert_array_equal(optimizer.velocities[("second", "bias")], np.full(2, 1.5))
    # A second step with zero gradients moves each parameter by momentum * its own velocity.
    before = second.params["kernel"].copy()
    for layer in (first, second):
        for name, param in layer.params.items():
            layer.grads[name] = np.zeros_like(param)
    optimizer.apply_gradients([first, second])
    np.testing.assert_allclose(second.params["kernel"], before + 0.9 * 1.5, rtol=1e-12)


def test_non_trainable_layers_are_not_updated_and_float32_stays_float32():
    frozen = Dense(2, trainable=False)
    frozen.build((3,))
    live = Dense(2)
    live.build((3,))
    before = frozen.get_weights()
    for layer in (frozen, live):
        layer.grads["kernel"] = np.ones((3, 2), dtype=np.float32)
        layer.grads["bias"] = np.ones(2, dtype=np.float32)
    SGD(lr=0.1, momentum=0.5).apply_gradients([frozen, live])
    for got, want in zip(frozen.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)
    assert live.params["kernel"].dtype == np.float32
    np.testing.assert_allclose(live.params["bias"], -0.1)


def test_gradient_shape_mismatch_names_the_parameter():
    layer = _layer()
    layer.grads["kernel"] = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"SGD: gradient dense_1.kernel has shape \(3, 4\), parameter has \(4, 3\)"):
        SGD().apply_gradients([layer])


def test_defaults_lr_alias_and_config():
    default = SGD()
    assert (default.lr, default.momentum, default.decay, default.nesterov) == (0.01, 0.0, 0.0, False)
    assert SGD(lr=0.5).learning_rate == 0.5
    assert SGD(learning_rate=0.1, lr=0.5).lr == 0.5  # Keras 2.3 lets lr= win
    optimizer = SGD(lr=0.001, momentum=0.0, decay=1e-6, nesterov=True)  # the tutorial's
    optimizer.lr = 0.002
    assert optimizer.learning_rate == 0.002
    clone = SGD.from_config(optimizer.get_config())
    assert clone.get_config() == {"learning_rate": 0.002, "momentum": 0.0, "decay": 1e-6, "nesterov": True}
    assert isinstance(optimizers.get("sgd"), SGD) and isinstance(optimizers.get("SGD"), SGD)
    assert optimizers.get(optimizer) is optimizer


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    (dict(lr=-0.1), ValueError, r"SGD: learning_rate must be >= 0, got -0.1"),
    (dict(momentum=-0.5), ValueError, r"SGD: momentum must be in \[0, 1\], got -0.5"),
    (dict(momentum=2), ValueError, r"SGD: momentum must be in \[0, 1\], got 2"),
    (dict(momentum=1.0000001), ValueError, r"SGD: momentum must be in \[0, 1\], got 1.0000001"),
    (dict(learning_rate=1e309), TypeError, r"SGD: learning_rate must be a finite number, got inf"),
    (dict(decay=-1), ValueError, r"SGD: decay must be >= 0, got -1"),
    (dict(momentum="0.9"), TypeError, r"SGD: momentum must be a finite number, got '0.9'"),
    (dict(learning_rate=float("nan")), TypeError, r"SGD: learning_rate must be a finite number, got nan"),
    (dict(decay=True), TypeError, r"SGD: decay must be a finite number, got True"),
    (dict(rho=0.9), TypeError, r"SGD: unexpected keyword argument\(s\) rho"),
])
def test_invalid_arguments_raise(kwargs, error, message):
    with pytest.raises(error, match=message):
        SGD(**kwargs)


def test_unknown_optimizer_names_raise():
    with pytest.raises(ValueError, match=r"optimizer: unknown optimizer 'adamm'; expected one of sgd, rmsprop"):
        optimizers.get("adamm")
    with pytest.raises(TypeError, match=r"optimizer: expected an optimizer name or instance, got float"):
        optimizers.get(0.1)


def test_iterations_continue_across_fit_calls_and_ignore_initial_epoch(float64):
    """A linear model trained with mse, one full batch per epoch, against the Keras equations by hand."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    model = Sequential([Dense(2, input_shape=(3,))])
    optimizer = SGD(lr=0.1, momentum=0.5, decay=0.3, nesterov=True)
    model.compile(optimizer, "mse")
    kernel, bias = model.get_weights()
    v_kernel, v_bias = np.zeros_like(kernel), np.zeros_like(bias)

    def reference_step(t, xb, yb):
        nonlocal kernel, bias, v_kernel, v_bias
        dz = 2 * (xb @ kernel + bias - yb) / (2 * len(xb))  # d mean((z - y)^2) / dz
        g_kernel, g_bias = xb.T @ dz, dz.sum(axis=0)
        lr_t = 0.1 / (1 + 0.3 * t)
        v_kernel = 0.5 * v_kernel - lr_t * g_kernel
        v_bias = 0.5 * v_bias - lr_t * g_bias
        kernel = kernel + 0.5 * v_kernel - lr_t * g_kernel
        bias = bias + 0.5 * v_bias - lr_t * g_bias

    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert optimizer.iterations == 2
    model.fit(x, y, batch_size=4, epochs=3, initial_epoch=1, shuffle=False, verbose=0)
    assert optimizer.iterations == 4
    model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    assert optimizer.iterations == 6
    for t in range(4):
        reference_step(t, x, y)
    reference_step(4, x[:2], y[:2])  # the last fit ran two half batches, t going on from 4
    reference_step(5, x[2:], y[2:])
    got_kernel, got_bias = model.get_weights()
    np.testing.assert_allclose(got_kernel, kernel, rtol=1e-12)
    np.testing.assert_allclose(got_bias, bias, rtol=1e-12)
