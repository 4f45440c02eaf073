"""The compiled training passes (tinynet.engine.compiled_training) against the stages and finite differences."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinynet import backend
from tinynet.applications import mnist_cnn
from tinynet.engine import barrier, compiled_training, conv_block, threads
from tinynet.kernels.winograd_f4 import tile_counts_f4
from tinynet.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from tinynet.learn.gradcheck import check_model
from tinynet.models import Sequential, passes
from tinynet.optimizers import SGD
from tinynet.utils import set_random_seed


def _cnn(size, filters, hidden, classes, use_bias, rates, seed):
    set_random_seed(seed)
    layers = [Conv2D(filters[0], 3, use_bias=use_bias, input_shape=(size, size, 1)), MaxPooling2D(),
              Activation("relu"), Dropout(rates[0]),
              Conv2D(filters[1], 3, use_bias=use_bias), MaxPooling2D(), Activation("relu"), Dropout(rates[1]),
              Flatten()]
    for units in hidden:
        layers += [Dense(units, use_bias=use_bias), Activation("relu"), Dropout(rates[2])]
    layers.append(Dense(classes, activation="softmax"))
    model = Sequential(layers)
    model.compile(SGD(lr=0.05, momentum=0.9, nesterov=True), "categorical_crossentropy", metrics=["accuracy"])
    return model


def _batch(seed, batch, size, classes):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, size, size, 1)).astype(backend.floatx())
    return x, np.eye(classes, dtype=backend.floatx())[rng.integers(0, classes, batch)]


def _steps(model, x, y, enabled, monkeypatch, steps=2):
    monkeypatch.setattr(compiled_training, "ENABLED", enabled)
    figures = [model.train_step(x, y) for _ in range(steps)]
    assert (passes.compiled_training(model) is not None) == enabled
    return figures, [{k: v.copy() for k, v in layer.grads.items()} for layer in model.layers], model.get_weights()


@pytest.mark.usefixtures("two_threads")
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(12, 18), filters=st.tuples(st.sampled_from([16, 24]), st.sampled_from([4, 8])),
       hidden=st.lists(st.integers(1, 40), max_size=2), classes=st.integers(2, 9), use_bias=st.booleans(),
       rates=st.tuples(*(st.sampled_from([0.0, 0.25, 0.5]) for _ in range(3))), batch=st.integers(1, 21),
       small_slices=st.booleans(), seed=st.integers(0, 2**16))
def test_the_compiled_step_trains_as_the_stages_do(size, filters, hidden, classes, use_bias, rates, batch,
                                                  small_slices, seed, monkeypatch):
    monkeypatch.setattr(conv_block, "_SLICE_BYTES", 1 if small_slices else None)
    x, y = _batch(seed, batch, size, classes)
    staged = _steps(_cnn(size, filters, hidden, classes, use_bias, rates, seed), x, y, False, monkeypatch)
    whole = _steps(_cnn(size, filters, hidden, classes, use_bias, rates, seed), x, y, True, monkeypatch)
    for a, b in zip(staged[0], whole[0], strict=True):  # the same masks: the same figures, up to rounding
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6)
    for a, b in zip(staged[1], whole[1], strict=True):
        for key in a:  # step two starts from weights that differ by rounding: judge on the array's scale
            np.testing.assert_allclose(b[key], a[key], rtol=1e-4, atol=1e-6 + 2e-5 * np.abs(a[key]).max())
    for a, b in zip(staged[2], whole[2], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 7, 32])
def test_the_same_seed_gives_the_same_bits_with_one_thread_or_two(batch, two_threads):
    results = []
    for count in (1, 2):
        threads.set_num_threads(count)
        model = _cnn(16, (16, 8), [20], 5, True, (0.25, 0.25, 0.5), seed=3)
        x, y = _batch(3, batch, 16, 5)
        for _ in range(3):
            model.train_step(x, y)
        assert passes.compiled_training(model) is not None
        results.append(model.get_weights())
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_thread_that_falls_behind_leaves_its_pieces_to_the_other_and_nothing_changes(monkeypatch, two_threads):
    def run(count):
        threads.set_num_threads(count)
        model = _cnn(16, (16, 8), [20, 12], 5, True, (0.25, 0.25, 0.5), seed=4)
        x, y = _batch(4, 13, 16, 5)
        for _ in range(3):
            model.train_step(x, y)
        return model.get_weights()

    alone = run(1)
    taken = []
    for name in ("forward_lanes", "backward_lanes"):
        lanes = getattr(compiled_training, name)

        def late(gate, first_lane, *rest, lanes=lanes):
            if first_lane == 1:  # the worker starts late: the calling thread claims every piece it can meanwhile
                time.sleep(0.02)
            taken.append(first_lane)
            return lanes(gate, first_lane, *rest)

        monkeypatch.setattr(compiled_training, name, late)
    behind = run(2)
    assert 1 in taken  # the worker did run its compiled calls (it was not left out)
    for a, b in zip(alone, behind, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_tutorial_step_draws_the_stages_masks_and_gets_their_gradients(monkeypatch, two_threads):
    runs = []
    for enabled in (False, True):
        monkeypatch.setattr(compiled_training, "ENABLED", enabled)
        set_random_seed(7)
        model = mnist_cnn()
        model.compile(SGD(lr=0.01, momentum=0.9, nesterov=True, decay=1e-6), "categorical_crossentropy",
                      metrics=["accuracy"])
        x, y = _batch(7, 32, 28, 10)
        figures = model.compute_gradients(x, y)
        states = [layer.generator.bit_generator.state for layer in model.layers if isinstance(layer, Dropout)]
        runs.append((figures, [g.copy() for layer in model.layers for g in layer.grads.values()], states))
    assert runs[0][0] == runs[1][0]  # the dense products are the stages' blocks: the same loss, bit for bit
    assert runs[0][2] == runs[1][2]  # every Dropout's generator moved exactly as the stages move it
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("size", [28, 26])  # a map whose last row the pooling skips (11x11), one it reads (10x10)
def test_the_input_gradient_skips_only_tiles_no_output_gradient_reaches(size, monkeypatch, two_threads):
    runs = []
    for skip in (True, False):
        monkeypatch.setattr(compiled_training, "SKIP_UNREACHED_TILES", skip)
        model = _cnn(size, (16, 8), [12], 4, True, (0.25, 0.25, 0.5), seed=3)
        x, y = _batch(3, 9, size, 4)
        model.compute_gradients(x, y)
        plan = passes.compiled_training(model)._plans[9]
        all_tiles = tile_counts_f4(*model.layers[4]._built_input_shape[:2])
        # 13x13 inputs whose last row and column no gradient reaches: 3x3 tiles of 4x4 instead of 4x4 tiles
        assert plan.input_tile_grid == ((3, 3) if skip and size == 28 else all_tiles)
        runs.append([g.copy() for layer in model.layers for g in layer.grads.values()])
    for skipped, every_tile in zip(*runs, strict=True):
        assert np.array_equal(skipped, every_tile)


def test_float64_gradients_pass_a_central_difference_check(float64):
    model = _cnn(14, (16, 4), [6], 3, True, (0.3, 0.3, 0.3), seed=5)
    assert passes.compiled_training(model) is not None
    x, y = _batch(5, 5, 14, 3)
    report = check_model(model, x, y, seed=5, step=1e-5, rtol=1e-4, atol=1e-7)
    assert report.passed, str(report)


def test_another_generator_than_pcg64_is_drawn_from_python_with_the_same_words(monkeypatch):
    runs = []
    for enabled in (False, True):
        monkeypatch.setattr(compiled_training, "ENABLED", enabled)
        model = _cnn(14, (16, 4), [6], 3, True, (0.5, 0.5, 0.5), seed=9)
        for layer in model.layers:
            if isinstance(layer, Dropout):
                layer.generator = np.random.Generator(np.random.MT19937(4))
        x, y = _batch(9, 6, 14, 3)
        runs.append(model.compute_gradients(x, y)["loss"])
    assert runs[0] == pytest.approx(runs[1], rel=1e-6)


@pytest.mark.parametrize("change", ["mse loss", "frozen layer", "noise shape", "sigmoid output", "fuse off"])
def test_other_models_train_stage_by_stage(change):
    model = _cnn(14, (16, 4), [6], 3, True, (0.5, 0.5, 0.5), seed=2)
    if change == "mse loss":
        model.compile(SGD(), "mse")
    elif change == "frozen layer":
        model.layers[0].trainable = False
    elif change == "noise shape":
        model.layers[3].noise_shape = (None, 1, 1, None)
    elif change == "sigmoid output":
        model = Sequential([*model.layers[:-1], Dense(3, activation="sigmoid")])
        model.compile(SGD(), "binary_crossentropy")
    else:
        model.fuse = False
    assert passes.compiled_training(model) is None
    x, y = _batch(2, 4, 14, 3)
    model.train_step(x, y)  # and it trains, stage by stage


def test_a_backward_without_its_forward_is_refused():
    model = _cnn(14, (16, 4), [6], 3, True, (0.5, 0.5, 0.5), seed=2)
    whole = passes.compiled_training(model)
    assert whole is not None and not whole.pending()
    with pytest.raises(RuntimeError, match="without a training forward pass"):
        whole.backward(np.zeros((4, 3), dtype=np.float32))
    x, _ = _batch(2, 4, 14, 3)
    model(x, training=True)  # a training-mode call keeps nothing for a backward pass
    assert not whole.pending()


@pytest.mark.parametrize("watch", [1, 10_000_000])  # asleep in the kernel at once / watching all along
def test_the_barrier_lets_two_threads_meet_and_an_abort_frees_a_lone_waiter(watch):
    meeting, abort = barrier.new_barrier(), np.zeros(1, np.int64)
    system_call, waits = barrier.system_calls(), barrier.waits(watch)
    arrived = []

    def meet(target):
        barrier.arrive_and_wait(meeting, target, abort, system_call, waits)
        arrived.append(time.perf_counter())

    for phase in (1, 2, 3):  # phase after phase, as the lanes meet
        first = threading.Thread(target=meet, args=(2 * phase,))
        first.start()
        time.sleep(0.05)
        assert len(arrived) == 2 * (phase - 1)  # alone, it waits
        meet(2 * phase)
        first.join(5)
        assert len(arrived) == 2 * phase and meeting[barrier.ARRIVALS] == 2 * phase
        assert meeting[barrier.SLEEPERS] == 0
    lone = threading.Thread(target=meet, args=(8,))
    lone.start()
    time.sleep(0.05)
    assert lone.is_alive()
    abort[0] = 1
    lone.join(5)
    assert not lone.is_alive() and meeting[barrier.SLEEPERS] == 0


def _waiting_thread(wait):
    """``wait()`` started on another thread; the list gets the time at which it returned."""
    released: list[float] = []
    thread = threading.Thread(target=lambda: (wait(), released.append(time.perf_counter())))
    thread.start()
    return thread, released


def _until_asleep(meeting):
    deadline = time.perf_counter() + 5
    while meeting[barrier.SLEEPERS] == 0 and time.perf_counter() < deadline:  # until it has gone to sleep
        time.sleep(0.001)


def test_a_sleeping_waiter_is_woken_at_once_not_by_its_timeout():
    meeting, abort = barrier.new_barrier(), np.zeros(1, np.int64)
    system_call, waits = barrier.system_calls(), barrier.waits(1, sleep_nanoseconds=20 * 10**9)
    thread, woken = _waiting_thread(lambda: barrier.arrive_and_wait(meeting, 2, abort, system_call, waits))
    _until_asleep(meeting)
    released = time.perf_counter()
    barrier.arrive_and_wait(meeting, 2, abort, system_call, waits)
    thread.join(5)
    assert woken and woken[0] - released < 0.5  # not the 20 s timeout: the last arrival woke it


def test_a_phase_ends_when_its_pieces_are_done_whoever_has_arrived():
    # The lanes count finished pieces (barrier.arrive once a piece) and wait for a phase's total (wait_for): a
    # thread that took no piece of the phase, or is descheduled between pieces, is not waited for.
    meeting, abort = barrier.new_barrier(), np.zeros(1, np.int64)
    system_call, waits = barrier.system_calls(), barrier.waits(1, sleep_nanoseconds=20 * 10**9)
    thread, released = _waiting_thread(lambda: barrier.wait_for(meeting, 3, abort, system_call, waits))
    for piece in range(3):  # three pieces finished by this thread alone, while the waiter sleeps
        _until_asleep(meeting)
        assert not released
        finished = time.perf_counter()
        assert barrier.arrive(meeting, 3, system_call, waits) == piece + 1
    thread.join(5)
    assert released and released[0] - finished < 0.5  # woken by the third piece, not by its 20 s timeout
    assert meeting[barrier.ARRIVALS] == 3 and meeting[barrier.SLEEPERS] == 0
    barrier.wait_for(meeting, 3, abort, system_call, waits)  # a late thread finds the phase done and goes on


@settings(max_examples=25, deadline=None)
@given(parts=st.integers(1, 5), channels=st.integers(1, 9), filters=st.integers(1, 7), data=st.data())
def test_a_range_of_channels_of_the_kernel_parts_sums_in_slice_order(parts, channels, filters, data):
    from tinynet.engine.training_lanes import _sum_channel_parts

    start = data.draw(st.integers(0, channels - 1))
    stop = data.draw(st.integers(start + 1, channels))
    values = np.random.default_rng(parts * 100 + channels).standard_normal((parts, 36, channels, filters))
    values = values.astype(np.float32)
    out = np.full((36, stop - start, filters), np.nan, np.float32)
    _sum_channel_parts(values, start, stop, out)
    expected = values[0, :, start:stop].copy()
    for part in range(1, parts):
        expected += values[part, :, start:stop]  # part by part, in order: the bits the stages' sum has
    assert np.array_equal(out, expected)


def _compiled_with(optimizer, seed=5):
    model = _cnn(16, (16, 8), [20, 12], 5, True, (0.25, 0.25, 0.5), seed=seed)
    model.compile(optimizer, "categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("settings_", [dict(momentum=0.9, nesterov=True, decay=1e-3), dict(momentum=0.5),
                                       dict(momentum=0.0, decay=0.1)])
@pytest.mark.parametrize("count", [1, 2])
def test_the_update_in_the_backward_pass_is_apply_gradients_bit_for_bit(settings_, count, two_threads):
    threads.set_num_threads(count)
    x, y = _batch(6, 13, 16, 5)
    fused, separate = _compiled_with(SGD(lr=0.05, **settings_)), _compiled_with(SGD(lr=0.05, **settings_))
    applied = []
    for model in (fused, separate):
        run = model.optimizer._run_sliced
        model.optimizer._run_sliced = lambda *args, model=model, run=run: applied.append(model) or run(*args)
    for _ in range(3):
        fused.train_step(x, y)  # the backward pass updates: apply_gradients' own loop never runs
        separate.compute_gradients(x, y)  # the same compiled passes, then the update on its own
        separate.optimizer.apply_gradients(separate.layers)
    assert applied == [separate] * 3
    assert fused.optimizer.iterations == separate.optimizer.iterations == 3
    for a, b in zip(fused.get_weights(), separate.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    slots = [fused.optimizer.get_slots(fused.layers), separate.optimizer.get_slots(separate.layers)]
    assert slots[0].keys() == slots[1].keys()
    for kind in slots[0]:  # (the models' layers have other names: compared in order)
        assert len(slots[0][kind]) == len(slots[1][kind]) == (10 if settings_["momentum"] else 0)
        for a, b in zip(slots[0][kind].values(), slots[1][kind].values(), strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make", [lambda: SGD(lr=0.05, momentum=0.9, clipnorm=1.0),
                                  lambda: __import__("tinynet.optimizers", fromlist=["Adam"]).Adam()])
def test_an_update_the_backward_pass_cannot_run_is_applied_after_it(make, two_threads):
    model = _compiled_with(make())
    assert passes.update_in_backward(model) is None
    before = [w.copy() for w in model.get_weights()]
    model.train_step(*_batch(6, 13, 16, 5))
    assert model.optimizer.iterations == 1
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_a_step_with_a_non_finite_loss_updates_nothing_in_the_backward_pass(two_threads):
    from tinynet.models.numerics import NumericalFaultError

    model = _compiled_with(SGD(lr=0.05, momentum=0.9, nesterov=True))
    x, y = _batch(6, 13, 16, 5)
    model.train_step(x, y)
    before = [w.copy() for w in model.get_weights()]
    x[3, 5, 5, 0] = np.nan
    with pytest.raises(NumericalFaultError):
        model.train_step(x, y)
    assert model.optimizer.iterations == 1
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
