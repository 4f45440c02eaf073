"""Data-parallel training (tinynet.distributed): ``mpiexec -n 2`` and ``-n 4`` against one process.

The runs are in tests/distributed_worker.py: a reduced tutorial-shaped CNN on 38 samples in global batches of 12
(the last batch of 2 leaves two of four ranks without a row). Ranks other than 0 seed differently, so only the
broadcast of rank 0's state can make them agree. Every mpiexec has a timeout, so a hang fails instead of blocking.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinynet import backend
from tinynet.layers import Dropout, batch_shard
from tinynet.models import Sequential, load_model

HERE = Path(__file__).parent
WORKER = HERE / "distributed_worker.py"
TIMEOUT = 180


def _environment() -> dict[str, str]:
    environment = dict(os.environ)
    root = str(HERE.parent)
    environment["PYTHONPATH"] = root + os.pathsep + environment.get("PYTHONPATH", "")
    environment.pop("TINYNET_NUM_THREADS", None)
    return environment


def _mpiexec() -> str:
    pytest.importorskip("mpi4py")
    found = Path(sys.executable).parent / "mpiexec"
    found = str(found) if found.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.skip("mpiexec not found (pip install 'tinynet[mpi]')")
    return found


def _run(command: list[str], check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=_environment(), capture_output=True, text=True, timeout=TIMEOUT)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def _mpi(processes: int, *arguments: str, check: bool = True) -> subprocess.CompletedProcess:
    return _run([_mpiexec(), "-n", str(processes), sys.executable, str(WORKER), *arguments], check=check)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The one-process reference, the runs on 2 and 4 ranks, and resumptions of a checkpoint saved by 2 ranks
    on 4 (another N) and of one saved by 4 ranks on 4 (the same N), each in a new mpiexec."""
    _mpiexec()
    folders = {name: tmp_path_factory.mktemp(name) for name in ("reference", "n2", "n4", "same")}
    _run([sys.executable, str(WORKER), "reference", str(folders["reference"])])
    _mpi(2, "distributed", str(folders["n2"]))
    _mpi(4, "distributed", str(folders["n4"]), str(folders["n2"] / "resume.tnz"))
    _mpi(4, "resume", str(folders["same"]), str(folders["n4"] / "resume.tnz"))
    return folders


def _relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(a))), 1e-300) if a.size else 1.0
    return float(np.max(np.abs(a - b))) / scale if a.size else 0.0


TOLERANCE = {"sgd64": 1e-12, "adam64": 1e-12, "sgd32": 1e-6, "allreduce32": 1e-6}


@pytest.mark.parametrize("processes", [2, 4])
def test_every_rank_identical_and_equal_to_one_process(runs, processes):
    reference = np.load(runs["reference"] / "rank0.npz")
    ranks = [np.load(runs[f"n{processes}"] / f"rank{rank}.npz") for rank in range(processes)]
    assert set(ranks[0].files) == {key for key in reference.files if not key.startswith("uninterrupted/")}
    for key in ranks[0].files:
        for other in ranks[1:]:
            assert np.array_equal(ranks[0][key], other[key]), f"{key}: ranks differ"
        tolerance = TOLERANCE[key.split("/")[0]]
        difference = _relative_difference(reference[key], ranks[0][key])
        assert difference <= tolerance, f"{key}: {difference:.3g} from one process (tolerance {tolerance})"
    # Adam's slots and BatchNormalization's moving statistics are among the arrays compared.
    assert any("/slot/second_moments/" in key for key in ranks[0].files)


@pytest.mark.parametrize("processes", [2, 4])
def test_only_rank_0_writes_and_its_checkpoint_is_the_final_model(runs, processes):
    folder = runs[f"n{processes}"]
    assert sorted(path.name for path in folder.glob("checkpoint_rank*")) == ["checkpoint_rank0.tnz"]
    assert sorted(path.name for path in folder.glob("log_rank*")) == ["log_rank0.csv"]
    final = np.load(folder / "rank0.npz")
    backend.set_floatx("float64")
    model = load_model(folder / "checkpoint_rank0.tnz")
    for index, weight in enumerate(model.get_weights()):
        assert np.array_equal(weight, final[f"sgd64/weight{index}"])
    assert type(model.optimizer).__name__ == "SGD"  # the plain optimizer: the file loads anywhere


@pytest.mark.parametrize("resumed_in", ["n4", "same"])
def test_resumed_run_equals_the_uninterrupted_one(runs, resumed_in):
    reference = np.load(runs["reference"] / "rank0.npz")
    ranks = [np.load(runs[resumed_in] / f"resumed_rank{rank}.npz") for rank in range(4)]
    for key in ranks[0].files:
        for other in ranks[1:]:
            assert np.array_equal(ranks[0][key], other[key]), f"{key}: ranks differ"
        expected = reference[key.replace("resumed/", "uninterrupted/")]
        if "/history/" in key:
            expected = expected[-len(ranks[0][key]):]  # the resumed history holds the resumed epochs
        assert _relative_difference(expected, ranks[0][key]) <= 1e-12, key


@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failing_rank_stops_every_rank(tmp_path, how):
    started = time.monotonic()
    result = _mpi(2, "fail", how, check=False)
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert elapsed < 60, f"the job took {elapsed:.0f} s to stop"
    if how == "raise":
        assert "rank 1 failed on purpose" in result.stderr
        assert "[tinynet rank 1/2]" in result.stderr


def test_without_mpi4py_everything_else_works_and_init_says_how_to_install(tmp_path):
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nsys.modules['mpi4py'] = None\n")  # import mpi4py then raises ImportError
    script = (
        "import warnings, tinynet, tinynet.distributed as tnd\n"
        "from tinynet.models import Sequential\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    world = tnd.init()\n"
        "assert (world.size, tnd.rank(), tnd.is_chief()) == (1, 0, True)\n"
        "print(caught[0].message)\n"
    )
    environment = _environment()
    environment["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{environment['PYTHONPATH']}"
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS"):
        environment.pop(name, None)
    alone = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True,
                           timeout=TIMEOUT)
    assert alone.returncode == 0, alone.stderr
    assert "pip install 'tinynet[mpi]'" in alone.stdout
    launched = subprocess.run([sys.executable, "-c", script], env=environment | {"PMI_SIZE": "2"},
                              capture_output=True, text=True, timeout=TIMEOUT)
    assert launched.returncode != 0
    assert "ImportError" in launched.stderr and "pip install 'tinynet[mpi]'" in launched.stderr


def test_dropout_in_a_shard_draws_the_rows_of_the_global_mask():
    one, split = Dropout(0.5, seed=11), [Dropout(0.5, seed=11) for _ in range(3)]
    whole = one.draw_mask_words((7, 5))
    rows = []
    for rank, layer in enumerate(split):
        start, stop = rank * 7 // 3, (rank + 1) * 7 // 3
        with batch_shard.holding(batch_shard.BatchShard(7, start, stop, lambda array: array)):
            rows.append(layer.draw_mask_words((stop - start, 5)))
    assert np.array_equal(np.concatenate(rows), whole)
    assert all(layer.generator.bit_generator.state == one.generator.bit_generator.state for layer in split)


def test_distributed_optimizer_in_one_process_trains_exactly_as_the_plain_one():
    from tinynet.distributed import DistributedOptimizer
    from tinynet.distributed.world import World
    from tinynet.layers import Dense
    from tinynet.optimizers import SGD

    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(10) % 3]
    results = []
    for wrap in (False, True):
        backend.clear_session()
        backend.set_random_seed(5)
        model = Sequential([Dense(6, activation="relu", input_shape=(4,)), Dropout(0.3),
                            Dense(3, activation="softmax")])
        optimizer = SGD(lr=0.1, momentum=0.9)
        model.compile(DistributedOptimizer(optimizer, World()) if wrap else optimizer, "categorical_crossentropy")
        history = model.fit(x, y, batch_size=4, epochs=3, verbose=0)
        results.append((model.get_weights(), history.history["loss"]))
        if wrap:
            assert type(model.optimizer).__name__ == "SGD" and model.optimizer.get_config() == optimizer.get_config()
    for plain, wrapped in zip(results[0][0], results[1][0], strict=True):
        assert np.array_equal(plain, wrapped)
    assert results[0][1] == results[1][1]


def test_cli_train_distributed_prints_and_writes_once(tiny_idx_dataset, tmp_path):
    folder = tiny_idx_dataset(train=40, test=20)
    output = tmp_path / "run"
    result = _run([_mpiexec(), "-n", "2", sys.executable, "-m", "tinynet", "train", "--distributed", "--data",
                   str(folder), "--epochs", "2", "--batch-size", "16", "--output", str(output), "--checkpoint",
                   str(output / "model.tnz"), "--verbose", "2"])
    assert result.stdout.count("Train on 40 samples") == 1  # rank 1 prints nothing
    assert result.stdout.count("Overall accuracy") == 1
    assert (output / "model.tnz").exists() and (output / "history.csv").exists()


@pytest.mark.parametrize("processes", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("weighted", [False, True])
def test_shares_cover_the_batch_and_their_losses_add_up_to_the_global_mean(processes, weighted):
    """Every global batch size, even or not, smaller than the number of processes or not: the shares' rows tile it
    in order, and the shares' weighted-mean losses (as the loss computes them) add up to the global one."""
    from types import SimpleNamespace

    from tinynet.distributed.data_parallel import DataParallel
    from tinynet.losses.base import weighted_mean

    rng = np.random.default_rng(processes)
    for global_size in range(1, 14):
        values = rng.random(global_size)
        weights = rng.random(global_size) * (rng.random(global_size) > 0.3) if weighted else None
        expected = weighted_mean(values, np.ones(global_size) if weights is None else weights)
        covered, total = [], 0.0
        for rank in range(processes):
            world = SimpleNamespace(rank=rank, size=processes, is_chief=rank == 0)
            shard, share_weights = DataParallel(world, None)._shard(np.zeros((global_size, 1)), weights)
            assert len(share_weights) == shard.rows
            if shard.counted:
                covered.extend(range(shard.start, shard.stop))
            else:
                assert shard.rows == 1 and not share_weights.any()  # a stand-in row of weight zero
            total += weighted_mean(values[shard.start:shard.stop], share_weights)
        assert covered == list(range(global_size))
        assert total == pytest.approx(expected, rel=1e-14, abs=1e-300)
