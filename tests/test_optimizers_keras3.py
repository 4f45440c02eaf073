"""Where Keras 3's update equations are Keras 2.2.4's, tinynet's optimizers match Keras 3 itself.

Runs when Keras 3 is installed (the test extra installs it, on its numpy backend); 100 steps in float64 of a
parameter and a random gradient sequence, the same numbers fed to both. RMSprop, Adagrad and Nadam are left out on
purpose: Keras 3 changed their equations (epsilon inside the square root, Adagrad's accumulator starting at 0.1,
Nadam's momentum schedule), and tinynet follows Keras 2.2.4 (tests/test_optimizer_equations.py). Keras 3 keeps its
learning rate in float32 and its numpy backend computes parts of an update in float32 whatever the variable's
dtype, so the hyperparameters and gradients here are numbers float32 holds exactly, and the comparison allows
float32 rounding (2e-5 relative after 100 steps); a difference in the equations shows far above that, as the
RMSprop control below does (Keras 3 moved its epsilon inside the square root).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "numpy")
keras = pytest.importorskip("keras")

from tinynet import optimizers  # noqa: E402
from tinynet.backend import set_floatx  # noqa: E402
from tinynet.layers import Dense  # noqa: E402

# Hyperparameters that are the same number in float32 and float64 (powers of two and short binary fractions).
EPSILON = 2.0**-7  # large enough that where epsilon sits in the equation shows
CASES = [
    ("SGD", dict(learning_rate=0.0625, momentum=0.875, nesterov=False), {}),
    ("SGD", dict(learning_rate=0.0625, momentum=0.875, nesterov=True), {}),
    ("Adam", dict(learning_rate=0.0078125, beta_1=0.875, beta_2=0.998046875, epsilon=EPSILON), {}),
    ("Adam", dict(learning_rate=0.0078125, beta_1=0.875, beta_2=0.998046875, epsilon=EPSILON, amsgrad=True), {}),
    ("Adamax", dict(learning_rate=0.015625, beta_1=0.875, beta_2=0.998046875, epsilon=EPSILON), {}),
    ("Adadelta", dict(learning_rate=1.0, rho=0.9375, epsilon=EPSILON), {}),
    ("AdamW", dict(learning_rate=0.0078125, beta_1=0.875, beta_2=0.998046875, epsilon=EPSILON,
                   weight_decay=0.00390625), {}),
]


def _run_both(name, arguments, keras_only):
    set_floatx("float64")
    try:
        layer = Dense(3, input_shape=(4,))
        layer.build((4,))
    finally:
        set_floatx("float32")
    rng = np.random.default_rng(11)
    start = {key: rng.normal(size=value.shape) for key, value in layer.params.items()}
    for key, value in start.items():
        layer.params[key][...] = value
    ours = getattr(optimizers, name)(**arguments)
    theirs = getattr(keras.optimizers, name)(**arguments, **keras_only)
    variables = {key: keras.Variable(value.copy(), dtype="float64") for key, value in start.items()}
    for _ in range(100):
        for key, param in layer.params.items():
            # Keras 3 takes the gradients in as float32 (its floatx): numbers that float32 holds exactly.
            layer.grads[key][...] = rng.normal(size=param.shape).astype(np.float32)
        theirs.apply_gradients([(layer.grads[key].copy(), variables[key]) for key in layer.params])
        ours.apply_gradients([layer])
    return layer.params, {key: np.asarray(variable.numpy()) for key, variable in variables.items()}


@pytest.mark.parametrize(("name", "arguments", "keras_only"), CASES)
def test_100_steps_match_keras_3(name, arguments, keras_only):
    ours, theirs = _run_both(name, arguments, keras_only)
    for key, param in ours.items():
        np.testing.assert_allclose(param, theirs[key], rtol=2e-5, atol=1e-7,
                                   err_msg=f"{name} {arguments}: {key}")


def test_the_comparison_sees_a_changed_equation():
    # Keras 3's RMSprop divides by sqrt(v + eps), Keras 2.2.4's (tinynet's) by sqrt(v) + eps.
    ours, theirs = _run_both("RMSprop", dict(learning_rate=0.0078125, rho=0.875, epsilon=EPSILON), {})
    assert max(float(np.max(np.abs(ours[key] - theirs[key]) / np.maximum(np.abs(theirs[key]), 1e-7)))
               for key in ours) > 1e-3
