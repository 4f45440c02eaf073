"""Inference of a small CNN as one compiled call per thread: no GIL handoff between its layers.

Stage by stage, an inference batch makes one parallel region per stage (the two convolution blocks, each dense
layer), and at every region's start the other thread must take Python's GIL from the calling thread: on a
virtual machine a thread that waits for the GIL sleeps, and waking it costs 20-90 us (measured on a Xeon guest:
0.2 ms of a 2.6 ms batch of 100, plus 0.3 ms of Python between the regions). Inference treats every image on its
own, so nothing forces the threads to meet between layers: here each thread takes half of the batch through the
whole network in one ``nogil`` call, which runs the very kernels the stages run:

    per slice of its half (a few images, sized for the L2 cache like the convolution block's slices):
        y1 = relu(maxpool_2x2(conv3x3(x) + b1))             (kernels.direct_conv, one channel in)
        z2 = conv3x3(y1) + b2 by F(4x4, 3x3)                 (engine.winograd_slices.forward_slice)
        features[rows] = relu(maxpool_2x2(z2))               (kernels.fused, flattened channels-last)
    then for its half's rows, each dense layer in turn:
        h = relu(h @ W + b)                                  (cblas_sgemm, kernels.bias_relu_dropout)
        logits = h @ W + b                                   (the last layer; its activation runs after)

The calling thread then applies the last layer's activation (softmax) to all rows, as the stage does.

When it applies: ``model.fuse`` on, a BLAS compiled code can call (:func:`tinynet.engine.blas.gemm_functions`),
and a plan of exactly this shape: a direct one-channel 3x3 convolution block with 2x2 pooling, a 3x3 convolution
block computed by F(4x4, 3x3) with 2x2 pooling, ``Flatten``, any number of ``Dense -> ReLU [-> Dropout]``
stages and a last ``Dense`` (the Keras MNIST tutorial's network and its variations in filters, units and
depth of the dense part). Any other plan runs stage by stage. Dropout is off in inference.

The numbers: each image goes through the same kernels as in the stages. The batch is cut into two halves and
each half into slices by a rule that depends only on the batch size, never on the thread count, so a prediction
has the same bits with 1 thread or 2; the dense products are computed on row halves instead of the stages'
column halves, which only changes which BLAS calls compute each entry (equal to the stages' on the tutorial
network at batch 100 and 1000; a test compares them within float32 rounding).

Measured on the tutorial CNN (Xeon guest, 2 threads; stage by stage -> here): batch 1 0.255 -> 0.162 ms,
batch 100 2.60 -> 2.05 ms, batch 1000 21.6 -> 17.3 ms.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from tinynet.engine import blas, threads
from tinynet.engine.conv_block import ConvPoolReluDropout, images_per_slice
from tinynet.engine.dense import ThreadedDense
from tinynet.engine.dense_relu_dropout import DenseReluDropout
from tinynet.engine.scratch import Scratch
from tinynet.engine.winograd_slices import forward_slice
from tinynet.kernels.bias_relu_dropout import bias_relu_dropout_forward
from tinynet.kernels.direct_conv import conv3x3_one_channel_pool_relu
from tinynet.kernels.dropout import NO_WORDS
from tinynet.kernels.fused import _forward_2x2_batch
from tinynet.kernels.winograd_f4 import tile_counts_f4
from tinynet.layers.flatten import Flatten

__all__ = ["CompiledInference", "compiled_inference", "ENABLED"]

# Whether matching plans take this path (tests turn it off to compare with the stages).
ENABLED = True

_ROW_MAJOR, _NO_TRANS = 101, 111
_POOL_2X2 = (2, 2, 2, 2, 0, 0)


@numba.njit(cache=True, nogil=True)
def _dense_rows(h, kernel, bias, use_bias, relu, out, pass_mask, gemm):
    """``out = h @ kernel`` (the call ``numpy.matmul`` makes for two matrices), then ``+ bias`` and, when
    ``relu``, ReLU (:func:`bias_relu_dropout_forward` without dropout; ``pass_mask`` is its unread record)."""
    rows, inner, units = h.shape[0], h.shape[1], kernel.shape[1]
    one, zero = out.dtype.type(1), out.dtype.type(0)
    gemm(np.int32(_ROW_MAJOR), np.int32(_NO_TRANS), np.int32(_NO_TRANS), rows, units, inner, one, h.ctypes.data,
         inner, kernel.ctypes.data, units, zero, out.ctypes.data, units)
    if relu:
        bias_relu_dropout_forward(out, bias, use_bias, NO_WORDS.reshape(1, -1), False, np.uint16(0), one, pass_mask)
    elif use_bias:
        for n in range(rows):
            for u in range(units):
                out[n, u] += bias[u]


@numba.njit(cache=True, nogil=True)
def _half_forward(images, slices, kernel1, bias1, pooled1, transformed2, bias2, use_bias2, tiles, products, z2,
                  features, pooled_shape, tile_grid, kernels, biases, use_biases, relus, outputs, pass_mask, gemm):
    """One half of the batch, ``images[slices[0, 0]:slices[-1, 1]]``, through the network: the last dense
    layer's pre-activation into ``outputs[-1]``. The work arrays are this thread's; ``tiles`` and ``products``
    are flat, shaped here for each slice's tile count (a shorter last slice has fewer tiles)."""
    first = slices[0, 0]
    channels, filters = transformed2.shape[1], transformed2.shape[2]
    tiles_h, tiles_w = tile_grid
    no_index = np.empty((1, 1, 1, 1), dtype=np.int32)  # pooling records nothing in inference
    no_mask = np.empty((1, 1, 1, 1), dtype=np.uint8)
    no_words = NO_WORDS
    for s in range(slices.shape[0]):
        start, stop = slices[s, 0], slices[s, 1]
        count = stop - start
        block1 = pooled1[:count]
        conv3x3_one_channel_pool_relu(images[start:stop], kernel1, bias1, block1)
        tile_count = count * tiles_h * tiles_w
        slice_tiles = tiles[:36 * tile_count * channels].reshape((36, tile_count, channels))
        slice_products = products[:36 * tile_count * filters].reshape((36, tile_count, filters))
        forward_slice(block1, slice_tiles, slice_products, transformed2, bias2, use_bias2, z2[:count], 0, 0,
                      tiles_h, tiles_w, gemm)
        pooled2 = features[start - first:stop - first].reshape((count, pooled_shape[0], pooled_shape[1], filters))
        _forward_2x2_batch(z2[:count], pooled2, no_index, no_mask, no_words, False, np.uint16(0),
                           z2.dtype.type(1), False)
    rows = slices[-1, 1] - first
    h = features[:rows]
    for layer in range(len(kernels)):
        out = outputs[layer][:rows]
        _dense_rows(h, kernels[layer], biases[layer], use_biases[layer], relus[layer], out, pass_mask[:rows], gemm)
        h = out


class CompiledInference:
    """The whole-network inference of one plan (see the module docstring); made by :func:`compiled_inference`,
    which checks that the plan has the shape this runs."""

    def __init__(self, first: ConvPoolReluDropout, second: ConvPoolReluDropout, dense: list[ThreadedDense]) -> None:
        self.first, self.second, self.dense = first, second, dense
        self.dtype = first.conv.dtype
        self._scratch = [Scratch(self.dtype), Scratch(self.dtype)]  # one per slot (thread)
        self._masks: list[np.ndarray | None] = [None, None]

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

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The network's output for ``x`` (checked by the first layer, as the stage does)."""
        conv1, conv2 = self.first.conv, self.second.conv
        x = np.ascontiguousarray(conv1.check_input(x))
        functions = blas.gemm_functions()
        if functions is None:  # (compiled_inference checked; this only keeps the type checker informed)
            raise RuntimeError("CompiledInference: the BLAS cannot be called from compiled code")
        gemm = functions[0] if self.dtype == np.float32 else functions[1]
        batch = x.shape[0]
        images = x.reshape(x.shape[:3])
        halves = self._halves(batch)
        largest_half = max(int(h[-1, 1] - h[0, 0]) for h in halves)
        largest_slice = max(int(np.max(h[:, 1] - h[:, 0])) for h in halves)
        channels, filters = conv1.filters, conv2.filters
        pooled_shape = self.second.pool._built_output_shape
        tiles_h, tiles_w = tile_counts_f4(conv2.out_h, conv2.out_w)
        zeros1 = self.first._scratch.get("zero_bias", (channels,), fill=0.0)
        zeros2 = self.second._scratch.get("zero_bias", (filters,), fill=0.0)
        kernel1 = conv1.params["kernel"].reshape(9, channels)
        bias1 = conv1.params["bias"] if conv1.use_bias else zeros1
        transformed2 = self.second._f4_kernel(channels)
        bias2 = conv2.params["bias"] if conv2.use_bias else zeros2
        kernels = tuple(stage.dense.params["kernel"] for stage in self.dense)
        biases = tuple(stage.dense.params["bias"] if stage.dense.use_bias
                       else self._zero_bias(stage.dense.units) for stage in self.dense)
        use_biases = np.array([stage.dense.use_bias for stage in self.dense], dtype=np.bool_)
        relus = np.array([isinstance(stage, DenseReluDropout) for stage in self.dense], dtype=np.bool_)
        widest = max(stage.dense.units for stage in self.dense)
        logits = np.empty((batch, self.dense[-1].dense.units), dtype=self.dtype)
        tile_room = 36 * largest_slice * tiles_h * tiles_w

        def run(slot: int, first: int, stop: int) -> None:
            scratch = self._scratch[slot]
            work = (scratch.get("pooled1", (largest_slice, conv1.out_h // 2, conv1.out_w // 2, channels)),
                    scratch.get("tiles", (tile_room * channels,)), scratch.get("products", (tile_room * filters,)),
                    scratch.get("z2", (largest_slice, conv2.out_h, conv2.out_w, filters)),
                    scratch.get("features", (largest_half, int(np.prod(pooled_shape)))))
            pass_mask = self._pass_mask(slot, (largest_half, widest))
            for half in range(first, stop):
                slices = halves[half]
                rows = slice(int(slices[0, 0]), int(slices[-1, 1]))
                outputs = tuple(scratch.get(f"dense_{k}", (largest_half, stage.dense.units))
                                for k, stage in enumerate(self.dense[:-1])) + (logits[rows],)
                _half_forward(images, slices, kernel1, bias1, work[0], transformed2, bias2, conv2.use_bias,
                              work[1], work[2], work[3], work[4], pooled_shape[:2], (tiles_h, tiles_w), kernels,
                              biases, use_biases, relus, outputs, pass_mask, gemm)

        threads.parallel_ranges(len(halves), run)
        return self.dense[-1].dense.activation.forward(logits) if not relus[-1] else logits

    def _zero_bias(self, units: int) -> np.ndarray:
        return self._scratch[0].get(f"zero_bias_{units}", (units,), fill=0.0)

    def _pass_mask(self, slot: int, shape: tuple[int, int]) -> np.ndarray:
        mask = self._masks[slot]
        if mask is None or mask.shape != shape:
            mask = self._masks[slot] = np.empty(shape, dtype=np.uint8)
        return mask


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
