"""Inference of a small CNN as one compiled call per thread: no GIL handoff between its layers.

Stage by stage, an inference batch makes one parallel region per stage (the two convolution blocks, each dense
layer), and at every region's start the other thread must take Python's GIL from the calling thread: on a
virtual machine a thread that waits for the GIL sleeps, and waking it costs 20-90 us (measured on a Xeon guest:
0.2 ms of a 2.6 ms batch of 100, plus 0.3 ms of Python between the regions). Inference treats every image on its
own, so nothing forces the threads to meet between layers: here each thread runs one ``nogil`` call
(:func:`tinynet.engine.inference_lanes.inference_lanes`) over the whole network, with the very kernels the
stages run. The batch is cut into two halves and each half into slices (a few images, sized for the L2 cache like
the convolution block's slices); the threads claim the pieces as they go:

    each slice (claimed, the first half's first):
        y1 = relu(maxpool_2x2(conv3x3(x) + b1))             (kernels.direct_conv, one channel in)
        z2 = conv3x3(y1) + b2 by F(4x4, 3x3) or F(5x5, 3x3)  (kernels.winograd_f4 / winograd_f5, cblas_sgemm)
        features[rows] = relu(maxpool_2x2(z2))               (kernels.fused, flattened channels-last)
    each half (claimed once its slices are done), each dense layer in turn on its rows:
        h = relu(h @ W + b)                                  (cblas_sgemm, kernels.bias_relu_dropout)
        logits = h @ W + b                                   (the last layer; its activation runs after)

The calling thread then applies the last layer's activation (softmax) to all rows, as the stage does.

When it applies: ``model.fuse`` on, a BLAS compiled code can call (:func:`tinynet.engine.blas.gemm_functions`),
and a plan of exactly this shape: a direct one-channel 3x3 convolution block with 2x2 pooling, a 3x3 convolution
block computed by F(4x4, 3x3) with 2x2 pooling, ``Flatten``, any number of ``Dense -> ReLU [-> Dropout]``
stages and a last ``Dense`` (the Keras MNIST tutorial's network and its variations in filters, units and
depth of the dense part). Any other plan runs stage by stage. Dropout is off in inference.

The second convolution: the 2x2 pooling after it reads only ``2 * (out // 2)`` of each side of its map (10 of
the tutorial's 11), and F(5x5, 3x3) covers that with 4 tiles of 49 multiplications per (channel, filter) pair
where F(4x4, 3x3), the stage's, covers the whole map with 9 of 36: 196 against 324. The plan takes whichever
needs fewer (:attr:`CompiledInference.tile`; :data:`TILE_F5_ENABLED` off: always F(4x4, 3x3)). Tutorial CNN, Xeon
guest, alternating processes: batch 100 2.22-2.33 -> 1.94-2.01 ms, batch 1000 17.2-18.9 -> 16.2-17.0 ms; on the
AVX2 code paths (``OPENBLAS_CORETYPE=Haswell``, ``NUMBA_CPU_NAME=haswell``) batch 100 2.90-2.93 -> 2.39-2.57 ms,
batch 1000 22.8-23.4 -> 21.1-21.5 ms.

The numbers: with F(4x4, 3x3) each image goes through the same kernels as in the stages; F(5x5, 3x3) rounds a
little more (its transforms reach 12 and 16: 5.9e-6 of the largest output against 5.1e-6 on the tutorial's second
convolution). The batch is cut into two halves and each half into slices by a rule that depends only on the batch
size, never on the thread count, so a prediction has the same bits with 1 thread or 2; the dense products are
computed on row halves instead of the stages' column halves, which only changes which BLAS calls compute each
entry (with F(4x4, 3x3), equal to the stages' on the tutorial network at batch 100 and 1000; tests compare them
within float32 rounding).

What a batch size needs besides the weights (the cut, the work arrays, the counters) is made once and kept
(:class:`_Plan`, a few batch sizes at a time).

Measured on the tutorial CNN (Xeon guest, 2 threads; stage by stage -> here): batch 1 0.255 -> 0.162 ms,
batch 100 2.60 -> 2.05 ms, batch 1000 21.6 -> 17.3 ms. Each thread with a fixed half, the worker started 107 us
after the calling thread and ended 270 us after it at batch 100; with claimed pieces, the plan kept and the
region's gate (session 9, A/B in alternating processes): batch 100 2.35-2.46 -> 2.08-2.18 ms, batch 1000
18.6-19.6 -> 17.4-18.8 ms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from tinynet.engine import barrier, blas, threads
from tinynet.engine.conv_block import ConvPoolReluDropout, images_per_slice
from tinynet.engine.dense import ThreadedDense
from tinynet.engine.dense_relu_dropout import DenseReluDropout
from tinynet.engine.inference_lanes import inference_lanes
from tinynet.engine.scratch import Scratch
from tinynet.kernels import winograd_f5
from tinynet.kernels.winograd_f4 import tile_counts_f4
from tinynet.kernels.winograd_f5 import tile_counts_f5
from tinynet.layers.flatten import Flatten

__all__ = ["CompiledInference", "compiled_inference", "kept_plan", "ENABLED", "TILE_F5_ENABLED"]

# Whether matching plans take this path (tests turn it off to compare with the stages).
ENABLED = True
# Whether the second convolution may use F(5x5, 3x3) where it needs fewer multiplications (tests compare both).
TILE_F5_ENABLED = True

_POOL_2X2 = (2, 2, 2, 2, 0, 0)


PlanT = TypeVar("PlanT")


def kept_plan(plans: dict[int, PlanT], batch: int, make: Callable[[], PlanT]) -> PlanT:
    """``plans[batch]``, made by ``make`` when missing. A few batch sizes are kept (a data set's last, short batch
    beside the others); a fifth drops them all."""
    plan = plans.get(batch)
    if plan is None:
        if len(plans) >= 4:
            plans.clear()
        plan = plans[batch] = make()
    return plan


class _Plan:
    """Everything about a prediction of one batch size that does not change from call to call: the halves and
    their slices, the claim counters and barriers, and the work arrays (per thread, and whole-batch)."""

    def __init__(self, network: CompiledInference, batch: int) -> None:
        conv1, conv2 = network.first.conv, network.second.conv
        dtype = network.dtype
        halves = network._halves(batch)
        self.lanes = len(halves)
        self.slices = np.concatenate(halves)
        self.half_bounds = np.cumsum([0] + [len(h) for h in halves]).astype(np.int64)
        largest_slice = int(np.max(self.slices[:, 1] - self.slices[:, 0]))
        channels, filters = conv1.filters, conv2.filters
        self.pooled_shape = tuple(network.second.pool._built_output_shape[:2])
        tile, conv_map = network.tile, network.conv_map
        self.tile_grid = tile_counts_f4(*conv_map) if tile == 4 else tile_counts_f5(*conv_map)
        tile_room = (tile + 2) ** 2 * largest_slice * self.tile_grid[0] * self.tile_grid[1]
        # Per thread: the first block's pooled maps, the Winograd tiles and products (flat: shaped per slice)
        # and the part of the second convolution's map it computes, for one slice.
        self.work = [(np.empty((largest_slice, conv1.out_h // 2, conv1.out_w // 2, channels), dtype),
                      np.empty(tile_room * channels, dtype), np.empty(tile_room * filters, dtype),
                      np.empty((largest_slice, *conv_map, filters), dtype)) for _ in halves]
        self.features = np.empty((batch, int(np.prod(network.second.pool._built_output_shape))), dtype)
        self.hidden = tuple(np.empty((batch, stage.dense.units), dtype) for stage in network.dense[:-1])
        widest = max(stage.dense.units for stage in network.dense)
        self.pass_mask = np.empty((batch, widest), np.uint8)  # bias_relu_dropout_forward's record (unread)
        self.half_barriers = np.zeros((len(halves), 2), np.int32)  # a barrier.new_barrier() a half
        self.abort = np.zeros(1, np.int64)
        self.claims = np.zeros(2, np.int64)


class CompiledInference:
    """The whole-network inference of one plan (see the module docstring); made by :func:`compiled_inference`,
    which checks that the plan has the shape this runs."""

    def __init__(self, first: ConvPoolReluDropout, second: ConvPoolReluDropout, dense: list[ThreadedDense]) -> None:
        self.first, self.second, self.dense = first, second, dense
        self.dtype = first.conv.dtype
        self._scratch = Scratch(self.dtype)
        self._plans: dict[int, _Plan] = {}
        self._relus = np.array([isinstance(stage, DenseReluDropout) for stage in dense], dtype=np.bool_)
        self._use_biases = np.array([stage.dense.use_bias for stage in dense], dtype=np.bool_)
        # The second convolution: F(5x5, 3x3) over the part of its map the 2x2 pooling reads when that takes fewer
        # multiplications than F(4x4, 3x3) over the whole map (the tutorial's: 196 against 324 per channel and
        # filter), else F(4x4, 3x3) over the whole map, as the stage computes it.
        conv2, pooled = second.conv, second.pool._built_output_shape
        read = (2 * pooled[0], 2 * pooled[1])
        five = winograd_f5.multiplications(*read, 5) < winograd_f5.multiplications(conv2.out_h, conv2.out_w, 4)
        self.tile = 5 if five and TILE_F5_ENABLED else 4
        # The part of the second convolution's map computed: what the pooling reads, or the whole map.
        self.conv_map = read if self.tile == 5 else (conv2.out_h, conv2.out_w)

    def _halves(self, batch: int, slices_per_half: int = 1) -> list[np.ndarray]:
        """Two halves of the batch, each cut into slices of at most the second block's slice size, and into at
        least ``slices_per_half`` while they hold an image each, as ``(start, stop)`` rows: the same cut whatever
        the thread count."""
        size = images_per_slice(self.second.conv, winograd_f4=True)
        halves = []
        for first, stop in threads.split_range(batch, 2):
            count = max(-(-(stop - first) // size), min(slices_per_half, stop - first))
            halves.append(np.array([(first + a, first + b) for a, b in threads.split_range(stop - first, count)],
                                   dtype=np.int64))
        return halves

    def _plan(self, batch: int) -> _Plan:
        return kept_plan(self._plans, batch, lambda: _Plan(self, batch))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The network's output for ``x`` (checked by the first layer, as the stage does)."""
        conv1, conv2 = self.first.conv, self.second.conv
        x = np.ascontiguousarray(conv1.check_input(x))
        functions = blas.gemm_functions()
        if functions is None:  # (compiled_inference checked; this only keeps the type checker informed)
            raise RuntimeError("CompiledInference: the BLAS cannot be called from compiled code")
        gemm = functions[0] if self.dtype == np.float32 else functions[1]
        batch = x.shape[0]
        plan = self._plan(batch)
        images = x.reshape(x.shape[:3])
        channels, filters = conv1.filters, conv2.filters
        kernel1 = conv1.params["kernel"].reshape(9, channels)
        bias1 = conv1.params["bias"] if conv1.use_bias else self._zero_bias(channels)
        transformed2 = self.second._f4_kernel(channels) if self.tile == 4 else self.second._f5_kernel(channels)
        bias2 = conv2.params["bias"] if conv2.use_bias else self._zero_bias(filters)
        dense = [stage.dense for stage in self.dense]
        kernels = tuple(layer.params["kernel"] for layer in dense)
        biases = tuple(layer.params["bias"] if layer.use_bias else self._zero_bias(layer.units) for layer in dense)
        logits = np.empty((batch, dense[-1].units), dtype=self.dtype)  # returned (or its softmax): never kept
        outputs = (*plan.hidden, logits)
        plan.half_barriers.fill(0)
        plan.abort.fill(0)
        plan.claims.fill(0)
        system_call, waits, gate = barrier.system_calls(), barrier.waits(threads.watch_looks()), threads.region_gate()

        def run(slot: int, first_lane: int, stop_lane: int) -> None:
            pooled1, tiles, products, z2 = plan.work[first_lane]
            try:
                inference_lanes(gate, first_lane, stop_lane, plan.lanes, plan.half_barriers, plan.abort,
                                system_call, waits, plan.claims, plan.slices, plan.half_bounds, images, kernel1,
                                bias1, pooled1, transformed2, bias2, conv2.use_bias, tiles, products, z2,
                                plan.features, plan.pooled_shape, self.tile, plan.tile_grid, kernels, biases,
                                self._use_biases, self._relus, outputs, plan.pass_mask, gemm)
            except BaseException:
                plan.abort[0] = 1  # the other thread must not wait for this one's slices
                raise

        threads.parallel_ranges(plan.lanes, run, gate_opened_by_task=True)
        return self.dense[-1].dense.activation.forward(logits) if not self._relus[-1] else logits

    def _zero_bias(self, units: int) -> np.ndarray:
        return self._scratch.get(f"zero_bias_{units}", (units,), fill=0.0)


def compiled_inference(planned: list[Any]) -> CompiledInference | None:
    """A :class:`CompiledInference` for the plan ``planned`` (the engine's stages of a model), or ``None`` when
    the plan does not have the shape it runs (or :data:`ENABLED` is off, or the BLAS is not callable from
    compiled code: then the stages run)."""
    if not ENABLED or len(planned) < 4:
        return None
    first, second, flatten, *dense = planned
    if not (isinstance(first, ConvPoolReluDropout) and isinstance(second, ConvPoolReluDropout)
            and type(flatten) is Flatten and dense):
        return None
    layers = [layer for stage in planned for layer in getattr(stage, "layers", (stage,))]
    if not all(layer.built for layer in layers):
        return None  # the first call builds them, stage by stage; the plan is made again then
    dtype = first.conv.dtype
    if blas.gemm_functions() is None or dtype not in (np.float32, np.float64):
        return None
    if any(layer.dtype != dtype for layer in layers):
        return None
    if not (first._direct_pooled(first.pool.window[:6], (1, *first.pool._built_output_shape))
            and first.conv.filters == second.conv._built_input_shape[-1]
            and second._uses_winograd() and second.conv.pad_top == 0 and second.conv.pad_left == 0
            and second.pool.window[:6] == _POOL_2X2
            and tuple(second.pool._built_output_shape[:2]) == (second.conv.out_h // 2, second.conv.out_w // 2)):
        return None
    for index, stage in enumerate(dense):
        last = index == len(dense) - 1
        if not (type(stage) is DenseReluDropout or (last and type(stage) is ThreadedDense)):
            return None
    return CompiledInference(first, second, dense)
