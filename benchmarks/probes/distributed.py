"""Probe for the ``distributed`` suite, run as ``mpiexec -n N python -m benchmarks.probes.distributed``.

Every rank trains the tutorial CNN on its share of global batches of ``--batch`` synthetic images through the fit
loop's own path (``DataParallel.share`` then ``train_step``); rank 0 prints one JSON line: the median time per
global batch, the median time of the step's gradient exchange (pack, gather, sum in rank order) and of the wait for the
slowest rank before it, and the times of
a bare ``Allreduce`` and ``Allgather`` of the gradients' 2.25 MB, from which the suite derives bandwidths.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--exchanges", type=int, default=30)
    options = parser.parse_args()

    import numpy as np

    import tinynet.distributed as tnd
    from tinynet import applications
    from tinynet.distributed.data_parallel import DataParallel
    from tinynet.engine import num_threads
    from tinynet.optimizers import SGD
    from tinynet.utils import set_random_seed

    world = tnd.init()
    set_random_seed(1)
    model = applications.mnist_cnn()
    model.compile(tnd.DistributedOptimizer(SGD(lr=0.01, momentum=0.9, nesterov=True), world),
                  "categorical_crossentropy", ["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((options.batch, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, options.batch)]
    parallel = DataParallel(world, model.optimizer)

    # The exchange alone, timed inside the step: wrap combine_shares.
    # A barrier first, timed apart (waiting for the slowest rank, which on a shared machine can be most of it).
    exchange_times: list[float] = []
    wait_times: list[float] = []
    combine = model.optimizer.combine_shares

    def timed_combine(layers, figures):
        started = time.perf_counter()
        world.barrier()
        arrived = time.perf_counter()
        result = combine(layers, figures)
        wait_times.append(arrived - started)
        exchange_times.append(time.perf_counter() - arrived)
        return result

    model.optimizer.combine_shares = timed_combine
    step_times = []
    for step in range(options.steps + 2):
        world.barrier()
        started = time.perf_counter()
        with parallel.share(x, y, None) as (x_share, y_share, weights):
            model.train_step(x_share, y_share, sample_weight=weights)
        world.barrier()
        if step >= 2:  # the first steps start the engine and allocate
            step_times.append(time.perf_counter() - started)
    exchange_times, wait_times = exchange_times[2:], wait_times[2:]

    gradients = np.ones(model.count_params(), dtype=np.float32)
    allreduce, allgather = [], []
    if world.comm is not None:
        from mpi4py import MPI

        gathered = np.empty((world.size, gradients.size), dtype=np.float32)
        for _ in range(options.exchanges):
            world.barrier()
            started = time.perf_counter()
            world.comm.Allreduce(MPI.IN_PLACE, gradients, op=MPI.SUM)
            allreduce.append(time.perf_counter() - started)
            world.barrier()
            started = time.perf_counter()
            world.comm.Allgather(gradients, gathered)
            allgather.append(time.perf_counter() - started)
    if world.is_chief:
        print(json.dumps({
            "ranks": world.size, "threads_per_rank": num_threads(), "global_batch": options.batch,
            "gradient_bytes": int(gradients.nbytes),
            "step_s": statistics.median(step_times),
            "exchange_s": statistics.median(exchange_times) if world.size > 1 else 0.0,
            "wait_s": statistics.median(wait_times) if world.size > 1 else 0.0,
            "allreduce_s": statistics.median(allreduce) if allreduce else 0.0,
            "allgather_s": statistics.median(allgather) if allgather else 0.0,
        }))


if __name__ == "__main__":
    main()
