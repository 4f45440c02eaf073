"""``tinynet train --optimizer NAME`` and ``--lr-schedule NAME:key=value,...`` from the command line."""

from __future__ import annotations

import pytest

from tinynet import cli
from tinynet.models import load_model
from tinynet.optimizers import schedules


def _train(tmp_path, data, *flags):
    checkpoint = tmp_path / "model.tnz"
    code = cli.main(["train", "--data", str(data), "--epochs", "1", "--initial-epoch", "0", "--batch-size", "16",
                     "--limit", "16", "--verbose", "0", "--output", str(tmp_path / "run"), "--checkpoint",
                     str(checkpoint), *flags])
    assert code == 0
    return load_model(checkpoint).optimizer


@pytest.mark.parametrize("name", cli.OPTIMIZERS)
def test_every_optimizer_trains_from_the_command_line_with_keras_defaults(tmp_path, tiny_idx_dataset, capsys, name):
    optimizer = _train(tmp_path, tiny_idx_dataset(train=16, test=10), "--optimizer", name)
    assert type(optimizer).__name__.lower() == name
    assert optimizer.iterations == 1
    defaults = {"sgd": 0.001, "rmsprop": 0.001, "adagrad": 0.01, "adadelta": 1.0, "adam": 0.001, "adamax": 0.002,
                "nadam": 0.002, "adamw": 0.001}
    assert optimizer.learning_rate == defaults[name]
    assert optimizer.decay == (1e-6 if name == "sgd" else 0.0)  # the tutorial's decay is SGD's only


def test_learning_rate_and_decay_apply_to_any_optimizer(tmp_path, tiny_idx_dataset, capsys):
    optimizer = _train(tmp_path, tiny_idx_dataset(train=16, test=10), "--optimizer", "adam", "--lr", "0.01",
                       "--decay", "0.5")
    assert (optimizer.learning_rate, optimizer.decay) == (0.01, 0.5)


@pytest.mark.parametrize(("spec", "expected"), [
    ("exponential:decay_steps=1000,decay_rate=0.9",
     schedules.ExponentialDecay(0.001, decay_steps=1000, decay_rate=0.9)),
    ("inverse_time:decay_steps=10,decay_rate=0.5,staircase=true",
     schedules.InverseTimeDecay(0.001, decay_steps=10, decay_rate=0.5, staircase=True)),
    ("cosine:decay_steps=100,alpha=0.1,initial_learning_rate=0.5",
     schedules.CosineDecay(0.5, decay_steps=100, alpha=0.1)),
    ("piecewise:boundaries=10/20,values=0.1/0.01/0.001",
     schedules.PiecewiseConstantDecay([10, 20], [0.1, 0.01, 0.001])),
])
def test_lr_schedule_is_built_from_its_spec_and_saved(tmp_path, tiny_idx_dataset, capsys, spec, expected):
    optimizer = _train(tmp_path, tiny_idx_dataset(train=16, test=10), "--optimizer", "adam", "--lr", "0.001",
                       "--lr-schedule", spec)
    assert type(optimizer.learning_rate) is type(expected)
    assert optimizer.learning_rate.get_config() == expected.get_config()
    assert optimizer.decay == 0.0


def test_sgd_keeps_the_tutorial_settings_unless_told_otherwise(tmp_path, tiny_idx_dataset, capsys):
    optimizer = _train(tmp_path, tiny_idx_dataset(train=16, test=10), "--momentum", "0.5", "--no-nesterov")
    assert (optimizer.learning_rate, optimizer.momentum, optimizer.nesterov, optimizer.decay) == (0.001, 0.5,
                                                                                                   False, 1e-6)


@pytest.mark.parametrize(("flags", "message"), [
    (["--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
    (["--optimizer", "adam", "--momentum", "0.9"], "--momentum applies to --optimizer sgd only, not adam"),
    (["--optimizer", "nadam", "--decay", "0.1"], "nadam has no decay in Keras 2.2.4"),
    (["--lr-schedule", "exponential:decay_steps=10,decay_rate=0.5", "--decay", "0.1"],
     "--decay and --lr-schedule cannot be combined"),
    (["--lr-schedule", "linear:decay_steps=10"], "unknown schedule 'linear'; expected one of exponential"),
    (["--lr-schedule", "exponential:decay_steps=10"], "missing 1 required positional argument: 'decay_rate'"),
    (["--lr-schedule", "exponential:decay_steps=0,decay_rate=0.5"], "decay_steps must be > 0"),
    (["--lr-schedule", "exponential:decay_steps"], "expected key=value, got 'decay_steps'"),
    (["--lr-schedule", "exponential:decay_steps=ten,decay_rate=0.5"], "could not convert string to float"),
    (["--lr-schedule", "piecewise:boundaries=10,values=1"], "one more entry than boundaries"),
    (["--lr-schedule", "cosine:decay_steps=10,bogus=1"], "unexpected keyword argument 'bogus'"),
])
def test_bad_optimizer_flags_are_refused_with_a_clear_message(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_help_describes_the_schedule_syntax(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "exponential:decay_steps=S,decay_rate=R" in text and "piecewise:boundaries=B1/B2,values=V0/V1/V2" in text
    assert "{sgd,rmsprop,adagrad,adadelta,adam,adamax,nadam,adamw}" in text and "(default: sgd)" in text
