"""A training step of a small CNN as a few compiled calls per thread: the GIL changes hands four times a step.

Stage by stage, a batch-32 step of the tutorial CNN makes nine parallel regions, and at each region's start the
other thread must take Python's GIL from the calling thread (20-90 us on a virtual machine), with Python glue
between the stages on the calling thread alone: 0.54 ms of waiting and 0.7 ms of glue in a 4.7 ms step (a Xeon
guest). Here, as :mod:`tinynet.engine.compiled_inference` does for a prediction, each thread takes half of the
batch through the network in one ``nogil`` call forward and one backward, running the kernels the stages run:

    forward, per half (compiled), keeping what the backward pass reads:
        y1, argmax1, pass1 = dropout(relu(maxpool_2x2(conv3x3(x) + b1)))          (kernels.direct_conv)
        per slice: z2 = conv3x3(y1) + b2 by F(4x4, 3x3); features, argmax2, pass2 = dropout(relu(maxpool(z2)))
        h_k = dropout(relu(h_{k-1} @ W_k + b_k)) for the hidden dense layers, logits = h @ W + b
    the calling thread: p = softmax(logits), the loss and metrics, dL/dlogits = (p - y) / N (weighted) as now
    backward, per half (compiled):
        dz_last = dL/dlogits;  dz_{k-1} = relu_dropout_backward(dz_k @ W_k^T)    dfeatures = dz_1 @ W_1^T
        per slice: dz2 = unpool(dfeatures) (pass2, scale);  dU_part[s] = V^T dM;  dy1 = F(4x4, 3x3) adjoint of dz2
                   db2_part[s] = 1^T dz2;  [dK1, db1]_part[s] from dy1 and the winners (no dz1 at all)
    then one region for the dense weight gradients, dW_k = h_{k-1}^T @ dz_k (threads.matmuls: the stages' very
    products), and the parts summed in slice order on the calling thread.
    optionally, in the same call, the optimizer's update (:class:`SgdInPass`), once every gradient is written
    and found finite: one parallel region less per step, and none of the Python around it.

The slices (each half of the batch cut into at least ``SLICES_PER_HALF``) depend only on the batch size, never on
the thread count, and the threads claim slices and dense blocks as they go (:mod:`tinynet.engine.training_lanes`):
a thread that starts late or is descheduled leaves the other more (batch-32 step 2 % faster on a quiet Xeon guest
than halves fixed per thread). Every piece computes the same numbers whoever runs it, so a seeded run has the
same bits with 1 thread or 2. The numbers equal the stages' up to rounding (the dense products of the forward
pass and ``dx`` on row halves, the convolutions' parts on other slices): tests compare the gradients and a few
steps with the stages' and the layers'.

When it applies: a plan :func:`tinynet.engine.compiled_inference.compiled_inference` accepts, whose last stage is
``Dense(activation="softmax")`` with a cross-entropy loss (the fused softmax gradient), every parameter trainable,
and any Dropout without ``noise_shape``. Anything else trains stage by stage.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinynet.engine import barrier, blas, threads
from tinynet.engine.compiled_inference import CompiledInference, kept_plan
from tinynet.engine.dense_relu_dropout import DenseReluDropout
from tinynet.engine.mask_words import RowsDrawnLater
from tinynet.engine.training_lanes import DW, DX, FORWARD, KERNEL_SUM, SMALL_SUMS, TURN, backward_lanes, forward_lanes
from tinynet.kernels.dropout import keep_scale, keep_threshold
from tinynet.kernels.matmul import matmul_blocks
from tinynet.kernels.pcg64 import split_state
from tinynet.kernels.winograd_f4 import tile_counts_f4
from tinynet.layers.dropout import Dropout

__all__ = ["CompiledTraining", "compiled_training", "SgdInPass", "sgd_in_pass", "ENABLED"]

# Whether matching plans train this way (tests turn it off to compare with the stages).
ENABLED = True

# Each half of the batch is cut into at least this many slices for the convolution blocks: pieces for the threads
# to claim, so that a thread that falls behind leaves the other some to take.
SLICES_PER_HALF = 2

# Pieces of the forward pass's kernel transform (its first phase).
TRANSFORM_PIECES = 4

# Whether the input gradient leaves out the tiles no output gradient reaches (see _Plan; tests compare both).
SKIP_UNREACHED_TILES = True

# The words a layer without dropout gets (never read), by number of axes.
_NO_WORDS = {axes: np.zeros((1,) * axes, dtype=np.uint16) for axes in (2, 4)}


class _Plan:
    """Everything about a step of one batch size that does not change from step to step: the halves and slices,
    the dense phases' pieces and the whole-batch work arrays (the records the backward pass reads, the
    gradients' parts)."""

    def __init__(self, training: CompiledTraining, batch: int) -> None:
        network = training.network
        first, second = network.first, network.second
        conv1, conv2 = first.conv, second.conv
        dtype = training.dtype
        dense = [stage.dense for stage in network.dense]
        halves = network._halves(batch, SLICES_PER_HALF)
        self.lanes = len(halves)
        self.slices = np.concatenate(halves)
        self.half_bounds = np.cumsum([0] + [len(h) for h in halves]).astype(np.int64)
        largest_slice = int(np.max(self.slices[:, 1] - self.slices[:, 0]))
        self.channels, self.filters = channels, filters = conv1.filters, conv2.filters
        self.pooled1 = pooled1 = (batch, *first.pool._built_output_shape)
        self.pooled2 = pooled2 = (batch, *second.pool._built_output_shape)
        self.tile_grid = tile_counts_f4(conv2.out_h, conv2.out_w)
        self.covers_plane = 2 * pooled2[1] == conv2.out_h and 2 * pooled2[2] == conv2.out_w
        # The input gradient's tiles: only those that some output gradient reaches. The 2x2 pooling reads the top
        # 2 * pooled rows of the map (10 of the tutorial's 11), so the gradient of the last row and column is
        # zero, and so is the input gradient of every input row past read + 1 - pad (the tutorial's 13th): tiles
        # wholly past it would transform zeros into zeros. 3x3 tiles instead of 4x4 for the tutorial (324
        # multiplications per channel and filter instead of 576); the rows past them are set to zero.
        in_h, in_w = conv2._built_input_shape[:2]
        reached = (min(in_h, 2 * pooled2[1] + 2 - conv2.pad_top), min(in_w, 2 * pooled2[2] + 2 - conv2.pad_left))
        self.input_tile_grid = tile_counts_f4(*(reached if SKIP_UNREACHED_TILES else (in_h, in_w)))
        forward, backward = [], []
        forward_bounds, backward_bounds = [0], [0]
        for k, layer in enumerate(dense):
            inner, units = layer.params["kernel"].shape
            forward += _pieces(FORWARD, k, batch, inner, units)
            forward_bounds.append(len(forward) // 5)
        # The forward pass's first phase: the kernel transform in channel ranges, more than there are threads.
        self.channel_bounds = np.array([0] + [stop for _, stop in threads.split_range(channels, TRANSFORM_PIECES)],
                                       dtype=np.int64)
        channel_ranges = threads.split_range(channels, self.lanes)
        for k in range(len(dense) - 1, -1, -1):
            inner, units = dense[k].params["kernel"].shape
            backward += _pieces(DX, k, batch, units, inner) + _pieces(DW, k, inner, batch, units)
            if k == len(dense) - 1:  # the turned kernel's transform, wanted by the convolutions' phase
                backward += [value for a, b in channel_ranges for value in (TURN, 0, 0, a, b)]
            backward_bounds.append(len(backward) // 5)
        # The final sums: the small ones first (about 10 us), then the kernel gradient's halves (70 us each: the
        # slices' parts are read from the other core's cache). Cut finer, the phase took longer (92 against 78 us).
        final = [SMALL_SUMS, 0, 0, 0, 0] + [value for a, b in channel_ranges
                                             for value in (KERNEL_SUM, 0, 0, a, b)]
        self.final_pieces = np.array(final, dtype=np.int64).reshape(-1, 5)
        self.forward_pieces = np.array(forward, dtype=np.int64).reshape(-1, 5)
        self.forward_bounds = np.array(forward_bounds, dtype=np.int64)
        self.backward_pieces = np.array(backward, dtype=np.int64).reshape(-1, 5)
        self.backward_bounds = np.array(backward_bounds, dtype=np.int64)
        # The records of the forward pass, and the backward pass's whole-batch arrays.
        self.y1, self.dy1 = np.empty(pooled1, dtype), np.empty(pooled1, dtype)
        self.argmax1, self.pass1 = np.empty(pooled1, np.int32), np.empty(pooled1, np.uint8)
        self.features = np.empty((batch, int(np.prod(pooled2[1:]))), dtype)
        self.dfeatures = np.empty_like(self.features)
        self.argmax2, self.pass2 = np.empty(pooled2, np.int32), np.empty(pooled2, np.uint8)
        self.activations = tuple(np.empty((batch, layer.units), dtype) for layer in dense)
        self.gradients = tuple(np.empty((batch, layer.units), dtype) for layer in dense[:-1])
        self.pass_masks = tuple(np.empty((batch, layer.units), np.uint8) for layer in dense[:-1]) + (
            np.zeros((1, 1), np.uint8),)
        slice_count = len(self.slices)
        self.kernel_parts2 = np.empty((slice_count, 36, channels, filters), dtype)
        self.bias_parts2 = np.empty((slice_count, filters), dtype)
        self.parts1 = np.empty((slice_count, 10, channels), dtype)
        self.transformed2 = np.empty((36, channels, filters), dtype)  # the second kernel's F(4x4, 3x3) transform
        self.turned2 = np.empty((36, filters, channels), dtype)  # and its turned kernel's (the input gradient's)
        self.summed_parts = np.empty(36 * channels * filters, dtype)  # a (36, channels, filters) block a piece
        self.no_bias = np.zeros(channels, dtype)
        self.no_bias1, self.no_bias2 = np.empty(channels, dtype), np.empty(filters, dtype)  # (written, never read)
        # Per thread: the F(4x4, 3x3) work arrays (flat: shaped per slice) and a slice's convolution map.
        tiles = max(self.tile_grid[0] * self.tile_grid[1], self.input_tile_grid[0] * self.input_tile_grid[1])
        room = 36 * largest_slice * tiles * max(channels, filters)
        conv_map = (largest_slice, conv2.out_h, conv2.out_w, filters)
        widest = max(layer.params["kernel"].shape[0] for layer in dense)  # a dense layer's dx block, transposed
        # A pass's meeting place: the barrier, the abort flag and one claim counter per phase (forward: the masks,
        # the convolutions, each dense layer; backward: each dense layer, the convolutions, the final sums, the
        # optimizer's update).
        self.meeting, self.abort = barrier.new_barrier(), np.zeros(1, np.int64)
        self.claims = np.zeros(len(dense) + 3, np.int64)
        self.work = [(np.empty(room, dtype), np.empty(room, dtype), np.empty(conv_map, dtype),
                      np.empty(widest * batch, dtype)) for _ in halves]
        self.no_update: SgdInPass | None = None  # the update's arguments when there is none


def _pieces(kind: int, layer: int, rows: int, inner: int, columns: int) -> list[int]:
    """The pieces (kind, layer, by_columns, start, stop) of a ``(rows, inner) @ (inner, columns)`` product: the
    blocks :func:`tinynet.kernels.matmul.matmul_blocks` cuts it into, as the stages do."""
    by_columns, blocks = matmul_blocks(rows, inner, columns)
    return [value for start, stop in blocks for value in (kind, layer, int(by_columns), start, stop)]


class CompiledTraining:
    """Forward (training mode) and backward passes of one plan (see the module docstring), made by
    :func:`compiled_training`. Between the two it holds the forward pass's records."""

    def __init__(self, network: CompiledInference, dropouts: tuple[Dropout | None, ...]) -> None:
        self.network = network
        self.name = "+".join(stage.name for stage in (network.first, network.second, *network.dense))
        self.dropouts = dropouts  # after block 1, block 2, and each hidden dense layer (None: no dropout there)
        self.dtype = network.dtype
        self._plans: dict[int, _Plan] = {}
        self._cache: Any = None
        self.kept_update: SgdInPass | None = None  # sgd_in_pass's, reused while the arrays are the same
        # Whether the last backward pass's gradients were all finite (checked where each was written), or None.
        self.gradients_finite: bool | None = None

    def pending(self) -> bool:
        """Whether a training forward pass waits for its backward pass."""
        return self._cache is not None

    def clear(self) -> None:
        """Drop the forward pass's records: no backward pass will come."""
        self._cache = None

    @staticmethod
    def _meeting(plan: _Plan) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any, np.ndarray, np.ndarray]:
        """The plan's barrier, abort flag and claim counters, zeroed for a new pass, with what its waits call."""
        plan.meeting.fill(0)
        plan.abort.fill(0)
        plan.claims.fill(0)
        return (plan.meeting, plan.abort, plan.claims, barrier.system_calls(), barrier.waits(threads.watch_looks()),
                threads.region_gate())

    def _plan(self, batch: int) -> _Plan:
        return kept_plan(self._plans, batch, lambda: _Plan(self, batch))

    def _draw(self, index: int, shape: tuple[int, ...]) -> tuple[np.ndarray, RowsDrawnLater | None, bool, Any, Any]:
        """Dropout ``index``'s words, as the stages draw them (unfilled: each thread draws its own rows), whether
        it drops, its threshold and its scale."""
        dropout = self.dropouts[index]
        if dropout is None or dropout.rate <= 0:
            return _NO_WORDS[len(shape)], None, False, keep_threshold(0.0), keep_scale(0.0, self.dtype, False)
        later = RowsDrawnLater()
        words = dropout.draw_mask_words(shape, later)
        return words, later, True, keep_threshold(dropout.rate), keep_scale(dropout.rate, self.dtype, True)

    @staticmethod
    def _streams(draws: list[tuple[RowsDrawnLater | None, np.ndarray]]) -> tuple[list[Any], tuple[Any, ...]]:
        """The masks to draw: those of a PCG64 generator as compiled code's streams ``(states, first words,
        words a row, flat masks)``, the others (``(later, mask)``) for each thread to fill from Python."""
        fills: list[Any] = []
        states: list[tuple[Any, ...]] = []
        firsts: list[int] = []
        widths: list[int] = []
        masks: list[np.ndarray] = []
        for later, mask in draws:
            if later is None:
                continue
            stream = later.pcg64_stream(mask)
            if stream is None:
                fills.append((later, mask))
                continue
            state, increment, first = stream
            states.append((*split_state(state), *split_state(increment)))
            firsts.append(first)
            widths.append(math.prod(mask.shape[1:]))
            masks.append(mask.reshape(-1))
        if not masks:  # one empty stream: compiled code then has a mask tuple to type
            states, firsts, widths, masks = [(0, 0, 0, 0)], [0], [0], [np.zeros(0, np.uint16)]
        return fills, (np.array(states, dtype=np.uint64), np.array(firsts, dtype=np.int64),
                       np.array(widths, dtype=np.int64), tuple(masks))

    def _dense_parameters(self) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], np.ndarray]:
        dense = [stage.dense for stage in self.network.dense]
        kernels = tuple(layer.params["kernel"] for layer in dense)
        biases = tuple(layer.params["bias"] if layer.use_bias else self.network._zero_bias(layer.units)
                       for layer in dense)
        return kernels, biases, np.array([layer.use_bias for layer in dense], dtype=np.bool_)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The probabilities for ``x`` in training mode (dropout on), keeping what :meth:`backward` needs."""
        network = self.network
        first, second = network.first, network.second
        conv1, conv2 = first.conv, second.conv
        x = np.ascontiguousarray(conv1.check_input(x))
        gemm = _gemm(self.dtype)
        batch = x.shape[0]
        plan = self._plan(batch)
        images = x.reshape(x.shape[:3])
        # The masks first, each from its own Dropout's generator, as the stages draw them.
        words1, later1, dropout1, threshold1, scale1 = self._draw(0, plan.pooled1)
        words2, later2, dropout2, threshold2, scale2 = self._draw(1, plan.pooled2)
        draws = [self._draw(2 + k, (batch, stage.dense.units)) for k, stage in enumerate(network.dense[:-1])]
        words = tuple(draw[0] for draw in draws) + (_NO_WORDS[2],)
        dropouts = np.array([draw[2] for draw in draws] + [False], dtype=np.bool_)
        thresholds = np.array([draw[3] for draw in draws] + [0], dtype=np.uint16)
        scales = np.array([draw[4] for draw in draws] + [1], dtype=self.dtype)
        fills, streams = self._streams([(later1, words1), (later2, words2), *((draw[1], draw[0]) for draw in draws)])
        kernels, biases, use_biases = self._dense_parameters()
        kernel1 = conv1.params["kernel"].reshape(9, plan.channels)
        bias1 = conv1.params["bias"] if conv1.use_bias else first._scratch.get("zero_bias", (plan.channels,), fill=0.0)
        bias2 = conv2.params["bias"] if conv2.use_bias else second._scratch.get("zero_bias", (plan.filters,), fill=0.0)
        meeting, abort, claims, system_call, waits, gate = self._meeting(plan)

        def run(slot: int, first_lane: int, stop_lane: int) -> None:
            try:
                for lane in range(first_lane, stop_lane):  # this thread's rows of every mask
                    rows = slice(int(plan.slices[plan.half_bounds[lane], 0]),
                                 int(plan.slices[plan.half_bounds[lane + 1] - 1, 1]))
                    for later, mask in fills:
                        later.fill(mask[rows])
            except BaseException:
                abort[0] = 1  # the other thread must not wait at a barrier for this one
                raise
            tiles, products, z2, _ = plan.work[first_lane]
            forward_lanes(gate, first_lane, stop_lane, plan.lanes, meeting, abort, system_call, waits, claims,
                          streams[0], streams[1], streams[2], streams[3], plan.slices, images,
                          kernel1, bias1, plan.y1, plan.argmax1, plan.pass1, words1, dropout1, threshold1, scale1,
                          conv2.params["kernel"], plan.channel_bounds, plan.transformed2, bias2, conv2.use_bias,
                          tiles, products, z2, plan.features, plan.argmax2, plan.pass2, words2, dropout2, threshold2,
                          scale2, plan.tile_grid, plan.forward_pieces, plan.forward_bounds, kernels, biases,
                          use_biases, plan.activations, plan.pass_masks, words, dropouts, thresholds, scales, gemm)

        threads.parallel_ranges(plan.lanes, run, gate_opened_by_task=True)
        self._cache = (x, plan, scale1, scale2, scales)
        self.gradients_finite = None
        return network.dense[-1].dense.activation.forward(plan.activations[-1])

    def backward(self, dlogits: np.ndarray, update: SgdInPass | None = None) -> None:
        """From ``dL/dlogits`` (the last layer's pre-activation gradient) to every layer's ``grads``; then, given
        ``update`` (made for this step by :func:`sgd_in_pass`), the optimizer's update when ``update.allowed`` and
        every gradient is finite (``update.applied`` tells whether it ran)."""
        if self._cache is None:
            raise RuntimeError("CompiledTraining.backward called without a training forward pass before it")
        x, plan, scale1, scale2, scales = self._cache
        self._cache = None
        network = self.network
        conv1, conv2 = network.first.conv, network.second.conv
        gemm = _gemm(self.dtype)
        batch = x.shape[0]
        images = x.reshape(x.shape[:3])
        dense = [stage.dense for stage in network.dense]
        dlogits = np.ascontiguousarray(dense[-1].check_output_gradient(dlogits, (batch, dense[-1].units)),
                                       dtype=self.dtype)
        gradients = (*plan.gradients, dlogits)
        kernels, _, _ = self._dense_parameters()
        kernel_gradients = tuple(layer.grads["kernel"] for layer in dense)
        nonfinite = np.zeros(plan.lanes, np.int64)
        bias_gradients = tuple(layer.grads["bias"] if layer.use_bias else layer.grads["kernel"][0] for layer in dense)
        use_biases = np.array([layer.use_bias for layer in dense], dtype=np.bool_)
        no_bias1 = plan.no_bias1
        meeting, abort, claims, system_call, waits, gate = self._meeting(plan)
        pad2 = (conv2.pad_top, conv2.pad_left)
        step = update if update is not None else self._no_update(plan)

        def run(slot: int, first_lane: int, stop_lane: int) -> None:
            tiles, products, dz2, dx_scratch = plan.work[first_lane]
            backward_lanes(gate, first_lane, stop_lane, plan.lanes, meeting, abort, system_call, waits, claims,
                            plan.slices, plan.backward_pieces, plan.backward_bounds, kernels, kernel_gradients,
                            plan.activations, plan.features, gradients, plan.pass_masks, scales, plan.dfeatures,
                            images, plan.argmax2, plan.pass2, scale2, plan.covers_plane, plan.y1, pad2, tiles,
                            products, dz2, plan.kernel_parts2, plan.bias_parts2, conv2.use_bias,
                            conv2.params["kernel"], plan.turned2, plan.no_bias, plan.dy1, plan.tile_grid,
                            plan.input_tile_grid, plan.argmax1, plan.pass1, scale1, plan.parts1, plan.final_pieces,
                            plan.summed_parts, conv2.grads["kernel"], conv2.grads["bias"] if conv2.use_bias
                            else plan.no_bias2, conv1.grads["kernel"].reshape(9, plan.channels),
                            conv1.grads["bias"] if conv1.use_bias else no_bias1, conv1.use_bias, bias_gradients,
                            use_biases, nonfinite, dx_scratch, gemm, update is not None, step.allowed,
                            step.params, step.velocities, step.grads, step.pieces, step.scalars, step.momentum_on,
                            step.nesterov, step.non_finite)

        step.non_finite.fill(0)
        threads.parallel_ranges(plan.lanes, run, gate_opened_by_task=True)
        # Every sum was taken in a fixed order (slices, rows): the same bits with any thread count.
        self.gradients_finite = not nonfinite.any()
        if update is not None:
            update.applied = update.allowed and self.gradients_finite

    def _no_update(self, plan: _Plan) -> SgdInPass:
        """Arrays of the right types for the update's arguments when there is no update (one compiled backward
        pass serves both): the network's parameters and gradients, never written."""
        if plan.no_update is None:
            pairs = self.parameters()
            plan.no_update = SgdInPass(tuple(param for param, _ in pairs), tuple(grad for _, grad in pairs), None,
                                       self.dtype)
        return plan.no_update

    def parameters(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(parameter, its gradient array)`` of every layer of the network, in the layers' order."""
        network = self.network
        return [(param, layer.grads[name]) for stage in (network.first, network.second, *network.dense)
                for layer in stage.layers for name, param in layer.params.items()]


# The update's pieces: runs of one parameter's values, claimed by the threads as the other phases' pieces are.
UPDATE_PIECE = 1 << 15


class SgdInPass:
    """SGD's update of every parameter (:mod:`tinynet.kernels.sgd`'s loops: the bits of
    ``optimizer.apply_gradients``) as the compiled backward pass's last phase, made for one step by
    :func:`sgd_in_pass`.

    The phase runs after a barrier, once every thread knows that every gradient it wrote is finite, and only when
    ``allowed`` (the step's loss was finite): otherwise nothing changes, as when the model refuses a step before
    ``apply_gradients``. ``applied`` says whether it ran, and ``non_finite`` (one count per lane) how many updated
    values are NaN or infinite."""

    def __init__(self, params: tuple[np.ndarray, ...], grads: tuple[np.ndarray, ...],
                 velocities: tuple[np.ndarray, ...] | None, dtype: np.dtype, arrays: tuple[int, ...] = ()) -> None:
        self.params = tuple(param.reshape(-1) for param in params)
        self.grads = tuple(grad.reshape(-1) for grad in grads)
        self.momentum_on = velocities is not None
        # (without momentum the loops never read a velocity: the parameters stand in, for the compiled types)
        self.velocities = tuple(v.reshape(-1) for v in velocities) if velocities is not None else self.params
        self.pieces = np.array([(index, start, min(start + UPDATE_PIECE, param.size))
                                for index, param in enumerate(self.params)
                                for start in range(0, param.size, UPDATE_PIECE)], dtype=np.int64).reshape(-1, 3)
        self.scalars = np.zeros(2, dtype=dtype)  # this step's learning rate and momentum
        self.nesterov = False
        self.non_finite = np.zeros(2, np.int64)  # a count per lane (a batch has at most two halves)
        self.allowed = False
        self.applied = False
        self.arrays = arrays  # the ids of the arrays it was made for (sgd_in_pass keeps it for them)

    def start(self, learning_rate: float, momentum: float, nesterov: bool) -> None:
        """Ready for a step: its learning rate and momentum (in the parameters' dtype, as apply_gradients
        passes them), not yet allowed nor applied."""
        self.scalars[:] = (learning_rate, momentum)
        self.nesterov = bool(nesterov)
        self.allowed = self.applied = False

    def finite(self) -> bool:
        """Whether every value the update wrote is finite."""
        return not self.non_finite.any()


def sgd_in_pass(training: CompiledTraining, optimizer: Any, layers: list[Any]) -> SgdInPass | None:
    """The optimizer's update for the backward pass to run (:class:`SgdInPass`), prepared as
    ``apply_gradients`` prepares it (the same checks, learning rate and velocities), or ``None`` when it cannot
    run there: an optimizer other than :class:`tinynet.optimizers.SGD` (or a subclass that changes its update),
    gradient clipping (it needs every gradient first), a data-parallel optimizer (the gradients are exchanged
    between the passes), an ``apply_gradients`` wrapped on the instance (a profiler timing it: it is called), or
    parameters that are not exactly the network's, in its float type."""
    from tinynet.optimizers.base import Optimizer
    from tinynet.optimizers.sgd import SGD

    kind = type(optimizer)
    if (not isinstance(optimizer, SGD) or kind.update_step is not SGD.update_step
            or kind.prepare_step is not Optimizer.prepare_step or kind.finish_step is not Optimizer.finish_step
            or kind.apply_gradients is not Optimizer.apply_gradients or optimizer.clipnorm or optimizer.clipvalue
            or hasattr(optimizer, "combine_shares") or "apply_gradients" in vars(optimizer)):
        return None
    learning_rate, updates = optimizer.prepare_update(layers)
    arrays = tuple(id(array) for param, grad, slots in updates for array in (param, grad, *slots))
    kept = training.kept_update
    if kept is None or kept.arrays != arrays:  # (kept's views hold its arrays: their ids are not reused)
        # The pass writes the network's own gradient arrays: the update must read exactly those (not copies
        # converted to another dtype), for exactly the network's parameters.
        network = training.parameters()
        if len(network) != len(updates) or any(
                param is not mine or grad is not written or param.dtype != training.dtype
                for (mine, written), (param, grad, _) in zip(network, updates, strict=True)):
            return None
        velocities = tuple(slots[0] for _, _, slots in updates) if optimizer.momentum != 0 else None
        kept = training.kept_update = SgdInPass(tuple(param for param, _, _ in updates),
                                                tuple(grad for _, grad, _ in updates), velocities, training.dtype,
                                                arrays)
    kept.start(learning_rate, optimizer.momentum, optimizer.nesterov)
    return kept


def _gemm(dtype: np.dtype) -> Any:
    functions = blas.gemm_functions()
    if functions is None:  # (compiled_training checked; this keeps the type checker informed)
        raise RuntimeError("CompiledTraining: the BLAS cannot be called from compiled code")
    return functions[0] if dtype == np.float32 else functions[1]


def compiled_training(network: CompiledInference | None, fused_softmax: bool) -> CompiledTraining | None:
    """A :class:`CompiledTraining` for the plan ``network`` was made for, or ``None``: no network, ``ENABLED``
    off, no fused softmax gradient (``fused_softmax``: a softmax output and a cross-entropy loss), a layer
    frozen, or a dropout this path does not draw (``noise_shape``). Then the stages train."""
    if network is None or not ENABLED or not fused_softmax:
        return None
    last = network.dense[-1]
    if type(last) is DenseReluDropout or getattr(last.dense.activation, "name", None) != "softmax":
        return None
    stages = [network.first, network.second, *network.dense]
    if not all(layer.trainable for stage in stages for layer in stage.layers if layer.params):
        return None
    dropouts: list[Dropout | None] = [network.first.dropout, network.second.dropout]
    dropouts += [stage.dropout for stage in network.dense[:-1] if isinstance(stage, DenseReluDropout)]
    if any(dropout is not None and dropout.noise_shape is not None for dropout in dropouts):
        return None
    return CompiledTraining(network, tuple(dropouts))
