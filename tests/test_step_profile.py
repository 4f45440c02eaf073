"""The benchmarks' step profile times the model's own public step: same bits, every piece seen, nothing left."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.step_profile import stage_kinds, training_step_by_piece
from benchmarks.timing import Stopwatch
from benchmarks.tutorial import build_tutorial_model, synthetic_batch


@pytest.mark.parametrize("fuse", [True, False])
def test_the_timed_step_is_the_step(fuse):
    timed, plain = build_tutorial_model(), build_tutorial_model()
    timed.fuse = plain.fuse = fuse
    x, y = synthetic_batch(8)
    watch = Stopwatch()
    loss = training_step_by_piece(timed, x, y, watch)
    figures = plain.train_step(x, y)
    assert loss == pytest.approx(figures["loss"], rel=0, abs=0)
    for a, b in zip(timed.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    pieces = {key.split("|")[0] for key in watch.samples}
    assert pieces == set(stage_kinds(timed))  # every stage, the loss and the optimizer were timed
    assert {"loss|forward", "loss|backward", "optimizer|update"} <= set(watch.samples)
    assert type(timed.loss).__name__ == type(plain.loss).__name__  # the loss got its own class back
    assert "apply_gradients" not in vars(timed.optimizer) and "gradient" not in vars(timed.loss)
