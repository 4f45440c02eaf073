"""The ``tinynet`` command's option values: argparse types for numbers, and the optimizer and learning-rate
schedule a ``tinynet train`` command line asks for."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tinynet.optimizers.base import Optimizer

# The tutorial's settings: SGD lr 0.001 with decay 1e-6 and Nesterov (momentum 0), batch 32, epochs numbered 2..10.
TUTORIAL = {"epochs": 10, "initial_epoch": 1, "batch_size": 32, "learning_rate": 0.001, "momentum": 0.0,
            "decay": 1e-6, "dropout": 0.25}


def integer_at_least(minimum: int, meaning: str):
    """An argparse type: an integer >= ``minimum``; ``meaning`` ("positive integer") names it in errors."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {meaning}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {meaning}, got {value}")
        return value

    return parse


positive_int = integer_at_least(1, "positive integer")
non_negative_int = integer_at_least(0, "non-negative integer")


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def rate(text: str) -> float:
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 1), got {text}")
    return value


OPTIMIZERS = ("sgd", "rmsprop", "adagrad", "adadelta", "adam", "adamax", "nadam", "adamw")

# --lr-schedule NAME:key=value,...: the schedule classes by their short names, and how each key's text is read.
SCHEDULES = {"exponential": "ExponentialDecay", "inverse_time": "InverseTimeDecay",
              "piecewise": "PiecewiseConstantDecay", "cosine": "CosineDecay"}
LR_SCHEDULE_HELP = (
    "a learning-rate schedule evaluated at every step (tf.keras's formulas), written NAME:key=value,... as in "
    "exponential:decay_steps=S,decay_rate=R (lr * R ** (step / S)); "
    "inverse_time:decay_steps=S,decay_rate=R (lr / (1 + R * step / S)); both take staircase=true too; "
    "cosine:decay_steps=S (optional: alpha=A, warmup_target=T, warmup_steps=W); "
    "piecewise:boundaries=B1/B2,values=V0/V1/V2 (V0 up to step B1, ...). The schedule starts from "
    "--learning-rate unless initial_learning_rate= is given; it replaces --decay")


def schedule_value(key: str, text: str) -> float | bool | list[float]:
    if key in ("boundaries", "values"):
        return [float(part) for part in text.split("/")]
    if key == "staircase":
        if text.lower() not in ("true", "false"):
            raise ValueError(f"staircase must be true or false, got {text!r}")
        return text.lower() == "true"
    return float(text)


def lr_schedule(text: str) -> tuple[str, dict]:
    """``--lr-schedule``: ``(class name, arguments)``, checked by building the schedule once."""
    from tinynet.optimizers import schedules

    name, _, arguments = text.partition(":")
    class_name = SCHEDULES.get(name.strip().lower())
    if class_name is None:
        raise argparse.ArgumentTypeError(f"unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)} "
                                         "(NAME:key=value,...)")
    config: dict = {}
    try:
        for item in filter(None, (part.strip() for part in arguments.split(","))):
            key, equals, value = item.partition("=")
            if not equals:
                raise ValueError(f"expected key=value, got {item!r}")
            config[key.strip()] = schedule_value(key.strip(), value.strip())
        trial = dict(config)
        if class_name != "PiecewiseConstantDecay":
            trial.setdefault("initial_learning_rate", 1.0)
        schedules.deserialize({"class_name": class_name, "config": trial})
    except (TypeError, ValueError) as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None
    return class_name, config


def optimizer_from_args(args: argparse.Namespace) -> Optimizer:
    """The optimizer the flags describe: Keras 2.2.4's defaults, except SGD's, which are the tutorial's."""
    from tinynet.optimizers import SGD, get, schedules

    optimizer = get(args.optimizer)
    if args.learning_rate is not None:
        optimizer.learning_rate = args.learning_rate
    elif args.optimizer == "sgd":
        optimizer.learning_rate = TUTORIAL["learning_rate"]
    if args.optimizer == "sgd" and isinstance(optimizer, SGD):
        optimizer.momentum, optimizer.nesterov = args.momentum, args.nesterov
    if args.lr_schedule is not None:
        class_name, config = args.lr_schedule
        if class_name != "PiecewiseConstantDecay":
            config = {"initial_learning_rate": optimizer.learning_rate, **config}
        optimizer.learning_rate = schedules.deserialize({"class_name": class_name, "config": config})
    elif args.decay is not None:
        optimizer.decay = args.decay
    elif args.optimizer == "sgd":
        optimizer.decay = TUTORIAL["decay"]
    return optimizer
