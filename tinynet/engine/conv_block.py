"""The fused convolution block: ``Conv2D -> MaxPooling2D -> ReLU [-> Dropout]`` run slice by slice.

The unfused layers make each step walk whole-batch arrays several times: the im2col matrix (8.9 MB for the
tutorial's second convolution at batch 32), the convolution output (5.5 MB after the first), its gradient, the
column gradient. None fits in a core's 1 MB L2 cache, so every pass goes to the shared L3 cache or to memory.
This stage instead cuts the batch into slices of a few images, sized so that a slice's im2col matrix and
convolution output fit in L2, and runs the whole block on one slice before the next:

Forward, per slice ``s`` (the layers' own equations; see :class:`tinynet.layers.Conv2D` and
:mod:`tinynet.kernels.fused`)::

    X_col[s] = im2col(x[s])
    Z[s]     = X_col[s] @ W + b                     (never leaves the cache)
    y[s], argmax_index[s], pass_mask[s] = pool_relu_dropout(Z[s], dropout words[s])

(For a 3x3, stride-1, unpadded kernel over one channel, ``Z[s]`` is computed directly, nine multiply-adds per
output with the filters innermost, see :mod:`tinynet.kernels.direct_conv`; with 2x2 pooling each window's
four outputs are computed together and go straight on through the pooling, ReLU and dropout, never written.
For a 3x3, stride-1 kernel over 16 or more channels, ``Z[s]`` comes from Winograd's F(4x4, 3x3) instead of
im2col and the product: the same convolution with 3.4x fewer multiplications on the tutorial's 11x11 maps, see
:mod:`tinynet.kernels.winograd_f4`. With a kernel of 32 or fewer inputs per output, ``b`` is a last row of
``W`` against a column of ones in ``X_col``, and that column's row of ``dW_part`` below is ``db_part``.)

Backward, per slice, with ``dy`` the gradient of the block's output::

    dZ[s]      = route dy[s] * pass_mask[s] * scale to the argmax pixels (zero elsewhere)
    X_col[s]   = im2col(x[s])                       (made again: cheaper than keeping 8.9 MB)
    dW_part[s] = X_col[s]^T @ dZ[s]        db_part[s] = 1^T dZ[s]
    dx[s]      = col2im(dZ[s] @ W^T)                (skipped when no layer before needs it; for a 3x3, stride-1
                                                    kernel over 16 or more channels, F(4x4, 3x3) instead)

    dW = sum over s of dW_part[s], in slice order;  db likewise

(When the one-pass direct kernel ran forward and no input gradient is wanted, the model's first layer, the
slice's ``dW_part`` and ``db_part`` come straight from ``dy[s]``, the recorded winners and the images, without
``dZ`` or ``X_col``: :func:`tinynet.kernels.direct_conv.conv3x3_one_channel_pooled_parameter_gradients`.)

The slices are spread over the engine's threads (:mod:`tinynet.engine.threads`), each slice with its own single-threaded
BLAS calls. Slice sizes depend only on the layer shapes, never on the thread count, and the partial weight
gradients are added in slice order, so a run is bit-for-bit the same with 1 thread or 2. The results equal the
unfused layers' up to rounding: the same products, cut into other BLAS calls, and the weight gradients' terms
added in another order (tests compare them, and the model gradient checks run through this stage).

Measured on the tutorial CNN at batch 32 (2 cores): the unfused block-2 convolution took 3.4 ms a step; see
``docs/performance.md`` for the block's time now.
"""

from __future__ import annotations

import numpy as np

from tinynet.engine import machine, threads
from tinynet.engine.mask_words import RowsDrawnLater
from tinynet.engine.pool_relu_dropout import PoolReluDropout
from tinynet.engine.scratch import Scratch
from tinynet.engine.stage import StandIn
from tinynet.engine.winograd_slices import winograd_forward, winograd_input_gradient, winograd_kernel_gradient
from tinynet.kernels.direct_conv import (
    conv3x3_one_channel,
    conv3x3_one_channel_pool_relu,
    conv3x3_one_channel_pool_relu_dropout_unchecked,
    conv3x3_one_channel_pooled_parameter_gradients,
)
from tinynet.kernels.dropout import keep_scale
from tinynet.kernels.fused import pool_relu_dropout_backward_unchecked, pool_relu_dropout_forward_unchecked
from tinynet.kernels.im2col import col2im_unchecked, im2col_unchecked
from tinynet.kernels.winograd_f4 import kernel_transform_f4, tile_counts_f4
from tinynet.kernels.winograd_f4_gradients import kernel_gradient_transform_f4
from tinynet.kernels.winograd_f5 import kernel_transform_f5
from tinynet.layers.conv import Conv2D

# What one slice's im2col matrix plus convolution output may take: this share of a core's L2 cache
# (tinynet.engine.machine), leaving room for the kernel matrix, BLAS's packing buffers and the slice's outputs.
# Measured on the tutorial CNN with 1 MiB of L2 (batch-32 step, A/B in alternating processes): 640 KB (3 and 2
# images a slice) 5.53-5.62 ms, 512 KB (2 and 1) 5.73-5.83 ms, 1 MB (5 and 3) 5.90-5.95 ms.
_SLICE_SHARE_OF_L2 = 0.625
# The budget in bytes, when set (tests set 1 to get one image a slice); None: the share of this machine's L2.
_SLICE_BYTES: int | None = None
# Inference by F(4x4, 3x3) keeps no im2col matrix: a slice is the transformed tiles and their products, and
# larger slices make the 36 products taller. Measured (single thread, batch 1000, 1 MiB L2): 2 images a slice
# 31.9 ms, 4 29.8, 8 28.4, 17 28.7: a slice's tiles and products may fill the whole L2.
_WINOGRAD_SLICE_SHARE_OF_L2 = 1.0
# ... but no more than this many images: with 2 MiB of L2 (Xeon guest, tutorial CNN, 2 threads, alternating runs)
# 16 images a slice (the share's) against 8: inference at batch 1000 19.5-20.4 against 18.6-19.8 ms, the batch-128
# training step 11.9-12.5 against 11.5-12.2 ms. The tiles and products of 16 images (2 MB) fill that L2 alone,
# and the slice's input and convolution map (0.9 MB more) then spill; 8 was also best with 1 MiB (above).
_WINOGRAD_SLICE_MAX_IMAGES = 8
# A kernel this shallow (3x3 on grey images: 9) gets the bias as one more column of the product, which then
# also yields db: a separate pass adding the bias to each slice's output cost as much as the product itself.
_BIAS_COLUMN_MAX_DEPTH = 32
# A whole-batch im2col matrix up to this size is kept from the forward to the backward pass instead of being
# made again (the first convolution's: 0.8 MB at batch 32; the second's, 8.9 MB, is rebuilt slice by slice).
_KEEP_COLUMNS_BYTES = 1 << 20
# A 3x3, stride-1 convolution over at least this many channels computes its forward pass and its input gradient
# with Winograd's F(4x4, 3x3) (tinynet.kernels.winograd_f4): 36 products of (tiles x C) by (C x F) instead of one
# of (pixels x 9C) by (9C x F), 3.4x fewer multiplications on the tutorial's 11x11 maps. The transforms' adds
# only pay off with enough channels to share them.
_WINOGRAD_MIN_CHANNELS = 16


def slice_budget(share: float = _SLICE_SHARE_OF_L2) -> int:
    """Bytes a slice's work arrays may take: ``_SLICE_BYTES`` when set, else ``share`` of a core's L2 cache."""
    return _SLICE_BYTES if _SLICE_BYTES is not None else int(share * machine.l2_cache_bytes())


def images_per_slice(conv: Conv2D, winograd_f4: bool = False) -> int:
    """How many images one slice holds for ``conv``: as many as fit the cache budget, at least one.

    A slice's working set is its im2col matrix and convolution output, or, for inference by F(4x4, 3x3), its
    transformed tiles and their products (36 planes of tiles x (channels + filters))."""
    if winograd_f4:
        tiles_h, tiles_w = tile_counts_f4(conv.out_h, conv.out_w)
        per_image = 36 * tiles_h * tiles_w * (conv._built_input_shape[-1] + conv.filters) * conv.dtype.itemsize
        return max(1, min(_WINOGRAD_SLICE_MAX_IMAGES, slice_budget(_WINOGRAD_SLICE_SHARE_OF_L2) // per_image))
    kh, kw = conv.kernel_size
    depth = kh * kw * conv._built_input_shape[-1]
    per_image = conv.out_h * conv.out_w * (depth + conv.filters) * conv.dtype.itemsize
    return max(1, slice_budget() // per_image)


class ConvPoolReluDropout(StandIn):
    """A ``Conv2D`` (no activation) followed by the fused ``MaxPooling2D -> ReLU [-> Dropout]`` stage.

    Cache: the block's input ``x`` (the im2col matrix is rebuilt from it slice by slice, or, when the whole
    batch's fits in 1 MB, kept from the forward pass), ``argmax_index`` and ``pass_mask``.
    """

    _forward_needed = "a forward pass (in training mode)"

    def __init__(self, conv: Conv2D, pool_stage: PoolReluDropout) -> None:
        super().__init__(conv, *pool_stage.layers)
        self.conv = conv
        self.pool, self.dropout = pool_stage.pool, pool_stage.dropout
        # Work arrays (per-thread slices, the kernel with its bias row, Winograd's transforms): the stage's own.
        self._scratch = Scratch(conv.dtype)
        # Per transform (4: F(4x4, 3x3), 5: F(5x5, 3x3)): (the weights it was made from, the transform).
        self._transform_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # ------------------------------------------------------------------------------------------- geometry
    def _geometry(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, int, int]]:
        """The im2col window, the pooling kernels' window and one image's convolution map ``(out_h, out_w,
        filters)``. Read from the layers once per pass (so the stage follows their current geometry), not once per
        slice: the slice loops then build no tuples."""
        conv = self.conv
        return conv.window, self.pool.window[:6], (conv.out_h, conv.out_w, conv.filters)

    def _plan(self, batch: int, winograd_f4: bool = False) -> tuple[list[tuple[int, int]], int, int, int, np.ndarray]:
        """The slices (first and stop image of each), rows of a full slice's matrices, the kernel's depth, the
        width of the im2col matrix (one more with the bias column) and the kernel as a matrix.

        Two halves of the batch, each cut into the same number of slices: two threads then get equal shares
        (11 slices of 3 images at batch 32 left one thread 4 images more than the other)."""
        conv = self.conv
        size = images_per_slice(conv, winograd_f4)
        count = -(-batch // size)
        if count > 1 and count % 2:
            count += 1
        kh, kw = conv.kernel_size
        depth = kh * kw * conv._built_input_shape[-1]
        width = depth + 1 if self._bias_in_product(depth) else depth
        kernel = conv.params["kernel"].reshape(depth, conv.filters)
        halves = threads.split_range(batch, 2 if count > 1 else 1)
        slices = [(first + start, first + stop) for first, last in halves
                  for start, stop in threads.split_range(last - first, count // len(halves))]
        return slices, size * conv.out_h * conv.out_w, depth, width, kernel

    def _winograd(self, slot: int, source: np.ndarray, transformed_kernel: np.ndarray, out: np.ndarray,
                  bias: np.ndarray) -> None:
        """``out (images, out_h, out_w, filters)``: the convolution of ``source`` (plus ``bias`` when the layer
        uses one; any array of ``filters`` values otherwise) by F(4x4, 3x3).

        The work arrays are per thread and per tile count (a batch's last slice may be shorter), so each is made
        once and reused from step to step."""
        conv = self.conv
        images, out_h, out_w, filters = out.shape
        tiles_h, tiles_w = tile_counts_f4(out_h, out_w)
        tiles = images * tiles_h * tiles_w
        inputs = self._scratch.get(f"winograd_inputs_{slot}_{tiles}", (36, tiles, source.shape[-1]))
        products = self._scratch.get(f"winograd_products_{slot}_{tiles}", (36, tiles, filters))
        winograd_forward(source, inputs, products, transformed_kernel, bias, conv.use_bias, out, conv.pad_top,
                         conv.pad_left, tiles_h, tiles_w)

    def _f4_kernel(self, channels: int) -> np.ndarray:
        """The kernel transformed for F(4x4, 3x3), kept from call to call while the weights stay the same.

        Predictions call this once per batch, and the transform (50 us for the tutorial's 64 x 32 kernel) costs
        four times the comparison with the copy of the weights it was made from. The weights can change in place
        (an optimizer, ``set_weights``), so only their values can tell; in training they change every step and
        the comparison is the small price of one code path. NaN weights never compare equal: transformed every
        time."""
        return self._transformed_kernel(4, channels)

    def _f5_kernel(self, channels: int) -> np.ndarray:
        """The kernel transformed for F(5x5, 3x3) (inference only), kept as :meth:`_f4_kernel` keeps its own."""
        return self._transformed_kernel(5, channels)

    def _transformed_kernel(self, tile: int, channels: int) -> np.ndarray:
        transform = kernel_transform_f4 if tile == 4 else kernel_transform_f5
        kernel = self.conv.params["kernel"]
        cached = self._transform_cache.get(tile)
        if cached is None or cached[0].shape != kernel.shape or cached[0].dtype != kernel.dtype:
            cached = self._transform_cache[tile] = (kernel.copy(), transform(kernel))
        elif not np.array_equal(cached[0], kernel):  # into the same two arrays, step after step
            transform(kernel, out=cached[1])
            np.copyto(cached[0], kernel)
        return cached[1]

    def _winograd_input_gradient(self, slot: int, dz: np.ndarray, transformed_kernel: np.ndarray, out: np.ndarray,
                                 tiles: tuple[int, int], no_bias: np.ndarray) -> None:
        """``out = dx`` of a slice by F(4x4, 3x3), for a 3x3, stride-1 convolution (see the module docstring).

        ``dx[h, w, c] = sum over (a, b, f) of dZ[h + p - a, w + p - b, f] K[a, b, c, f]``: a correlation of
        ``dZ``, padded by ``2 - p``, with the kernel turned half a turn and its channel axes swapped, whose output
        is the size of the block's input. Measured on the tutorial's second block (single thread, per image):
        60 us for ``dZ @ W^T`` and col2im, 33 us this way. Its rounding (about 1e-5 of the gradient's scale in
        float32, see :mod:`tinynet.kernels.winograd_f4`) is far inside what a gradient step tolerates, and the
        gradient checks (float64) see 1e-12."""
        conv = self.conv
        tiles_h, tiles_w = tiles
        count = dz.shape[0] * tiles_h * tiles_w
        inputs = self._scratch.get(f"dx_inputs_{slot}_{count}", (36, count, dz.shape[-1]))
        products = self._scratch.get(f"dx_products_{slot}_{count}", (36, count, out.shape[-1]))
        winograd_input_gradient(dz, inputs, products, transformed_kernel, no_bias, out, 2 - conv.pad_top,
                                2 - conv.pad_left, tiles_h, tiles_w)

    def _winograd_kernel_gradient(self, slot: int, source: np.ndarray, dz: np.ndarray, tiles: tuple[int, int],
                                  out: np.ndarray) -> None:
        """``out (36, C, F) = V^T @ dM`` for a slice: its share of the weight gradient in the Winograd domain
        (:mod:`tinynet.kernels.winograd_f4_gradients`), ``V`` the input tiles the forward pass made (made again
        into the same buffers: cheaper than keeping them) and ``dM = A dZ A^T``. Measured on the tutorial's second
        block (single thread, per image, 8-image slices): 22-25 us against 59 for im2col and ``X_col^T @ dZ``."""
        tiles_h, tiles_w = tiles
        count = source.shape[0] * tiles_h * tiles_w
        inputs = self._scratch.get(f"winograd_inputs_{slot}_{count}", (36, count, source.shape[-1]))
        products = self._scratch.get(f"winograd_products_{slot}_{count}", (36, count, dz.shape[-1]))
        winograd_kernel_gradient(source, dz, inputs, products, out, self.conv.pad_top, self.conv.pad_left, tiles_h,
                                 tiles_w)

    def _uses_winograd(self) -> bool:
        conv = self.conv
        return (conv.kernel_size == (3, 3) and conv.strides == (1, 1)
                and conv._built_input_shape[-1] >= _WINOGRAD_MIN_CHANNELS)

    def _uses_direct(self) -> bool:
        """A 3x3, stride-1, unpadded convolution of one-channel images: :mod:`tinynet.kernels.direct_conv`
        (an im2col matrix nine columns wide makes a product too thin for BLAS)."""
        conv = self.conv
        return (conv.kernel_size == (3, 3) and conv.strides == (1, 1) and conv._built_input_shape[-1] == 1
                and conv.pad_top == 0 and conv.pad_left == 0)

    def _direct_slice(self, images: np.ndarray, kernel: np.ndarray, bias: np.ndarray, y: np.ndarray,
                      argmax_index: np.ndarray, pass_mask: np.ndarray, words: np.ndarray | None, rate: float,
                      training: bool) -> None:
        """A slice of one-channel images to the block's output in one pass (:mod:`tinynet.kernels.direct_conv`):
        for inference the kernel that only pools, in training the one that also applies the dropout words and
        records the pooling's winners and the pass mask for the backward pass."""
        if training:
            conv3x3_one_channel_pool_relu_dropout_unchecked(images, kernel, bias, y, argmax_index, pass_mask,
                                                            words, rate)
        else:
            conv3x3_one_channel_pool_relu(images, kernel, bias, y)

    def _direct_pooled(self, pool_window: tuple[int, ...], output_shape: tuple[int, ...]) -> bool:
        """Whether the direct convolution goes on through pooling, ReLU and dropout itself, in one pass (and its
        backward pass computes the parameters' gradients from the pooled gradient): 2x2 pooling inside the map."""
        conv = self.conv
        return (self._uses_direct() and pool_window == (2, 2, 2, 2, 0, 0)
                and tuple(output_shape[1:3]) == (conv.out_h // 2, conv.out_w // 2))

    def _bias_in_product(self, depth: int) -> bool:
        return self.conv.use_bias and depth <= _BIAS_COLUMN_MAX_DEPTH

    def _batch_columns(self, batch: int, width: int, keep: bool) -> np.ndarray | None:
        """The whole-batch im2col matrix kept for the backward pass, or ``None``. Made on the calling thread,
        before the slices are handed out: two threads making it at once would each write into their own."""
        if not keep:
            return None
        conv = self.conv
        return self._scratch.get("cols_batch", (batch * conv.out_h * conv.out_w, width), fill=1.0)

    def _columns(self, slot: int, start: int, end: int, rows: int, full_rows: int, width: int,
                 batch_columns: np.ndarray | None) -> np.ndarray:
        """Where slice ``[start, end)``'s im2col matrix lives: its rows of the whole-batch matrix when that is
        kept, else the thread's slice buffer. Both are made with every element 1, so that a bias column (the
        last), which im2col never writes, stays all ones."""
        conv = self.conv
        if batch_columns is not None:
            per_image = conv.out_h * conv.out_w
            return batch_columns[start * per_image:end * per_image]
        return self._scratch.get(f"cols_{slot}", (full_rows, width), fill=1.0)[:rows]

    def _keeps_columns(self, batch: int, width: int) -> bool:
        conv = self.conv
        return batch * conv.out_h * conv.out_w * width * conv.dtype.itemsize <= _KEEP_COLUMNS_BYTES

    def _rows(self, start: int, end: int) -> int:
        """Rows of the im2col and output matrices of the images ``[start, end)``."""
        return (end - start) * self.conv.out_h * self.conv.out_w

    def _slice_buffer(self, name: str, slot: int, shape: tuple[int, ...], rows: int) -> np.ndarray:
        """The first ``rows`` rows of a per-thread work array sized for a full slice."""
        return self._scratch.get(f"{name}_{slot}", shape)[:rows]

    # -------------------------------------------------------------------------------------------- forward
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        conv, pool = self.conv, self.pool
        x = np.ascontiguousarray(conv.check_input(x))
        batch = x.shape[0]
        output_shape = (batch, *pool._built_output_shape)
        dropout = self.dropout if training and self.dropout is not None and self.dropout.rate > 0 else None
        dropout_on = dropout is not None
        # The whole batch's mask, as the Dropout layer draws it (the same words as unfused), each thread drawing the
        # rows of its own slices inside the region below.
        later = RowsDrawnLater()
        words = dropout.draw_mask_words(output_shape, later) if dropout is not None else None
        rate = dropout.rate if dropout is not None else 0.0
        y = np.empty(output_shape, dtype=conv.dtype)
        window, pool_window, conv_map = self._geometry()
        argmax_index = np.empty(output_shape, dtype=np.int32)  # (untouched in inference: no page is faulted in)
        pass_mask = np.empty(output_shape, dtype=np.uint8)
        winograd = self._uses_winograd()  # then the forward pass makes no im2col matrix to keep
        direct = self._uses_direct()  # nor then
        slices, full_rows, depth, width, kernel = self._plan(batch, winograd_f4=winograd)
        count = len(slices)
        direct_pooled = self._direct_pooled(pool_window, output_shape)
        keep = training and not winograd and not direct and self._keeps_columns(batch, width)
        batch_columns = self._batch_columns(batch, width, keep)
        bias = conv.params["bias"] if conv.use_bias else None
        weights = kernel
        if width > depth:  # Z = [X_col 1] @ [W; b]: the bias rides in the product instead of a pass over Z
            weights = self._scratch.get("kernel_and_bias", (width, conv.filters))
            weights[:depth] = kernel
            weights[depth] = bias

        if direct:
            direct_kernel = kernel.reshape(9, conv.filters)
            direct_bias = bias if bias is not None else self._scratch.get("zero_bias", (conv.filters,), fill=0.0)
            images = x.reshape(x.shape[:3])

        if winograd:  # the kernel's transform, once for all slices (and on this thread, like every shared buffer)
            channels = conv._built_input_shape[-1]
            transformed_kernel = self._f4_kernel(channels)
            winograd_bias = bias if bias is not None else self._scratch.get("zero_bias", (conv.filters,), fill=0.0)

        def convolve(slot: int, start: int, end: int, rows: int) -> np.ndarray:
            """The slice's convolution output Z, bias included, as (rows, filters)."""
            z = self._slice_buffer("z", slot, (full_rows, conv.filters), rows)
            if direct:
                conv3x3_one_channel(images[start:end], direct_kernel, direct_bias, z.reshape(end - start, *conv_map))
                return z
            if winograd:
                self._winograd(slot, x[start:end], transformed_kernel, z.reshape(end - start, *conv_map),
                               winograd_bias)
                return z
            cols = self._columns(slot, start, end, rows, full_rows, width, batch_columns)
            im2col_unchecked(x[start:end], cols[:, :depth], *window)
            np.matmul(cols, weights, out=z)
            if bias is not None and width == depth:
                z += bias
            return z

        def run(slot: int, first: int, stop: int) -> None:
            if words is not None:  # this thread's images' rows of the mask, in one draw
                later.fill(words[slices[first][0]:slices[stop - 1][1]])
            for index in range(first, stop):
                start, end = slices[index]
                if direct_pooled:
                    self._direct_slice(images[start:end], direct_kernel, direct_bias, y[start:end],
                                       argmax_index[start:end], pass_mask[start:end],
                                       words[start:end] if words is not None else None, rate, training)
                    continue
                rows = self._rows(start, end)
                z = convolve(slot, start, end, rows)
                pool_relu_dropout_forward_unchecked(
                    z.reshape(end - start, *conv_map), y[start:end], argmax_index[start:end],
                    pass_mask[start:end], words[start:end] if words is not None else None, rate, pool_window,
                    record=training)  # inference needs no argmax_index or pass_mask

        threads.parallel_ranges(count, run)
        self._cache = (x, argmax_index, pass_mask, dropout_on, rate, keep) if training else None
        return y

    # ------------------------------------------------------------------------------------------- backward
    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        x, argmax_index, pass_mask, dropout_on, rate, kept = self._take_cache()
        conv = self.conv
        dy = np.ascontiguousarray(self.pool.check_output_gradient(dy, argmax_index.shape))
        batch = x.shape[0]
        winograd = self._uses_winograd()  # then the slices are the forward pass's, and so are the input tiles
        slices, full_rows, depth, width, kernel = self._plan(batch, winograd_f4=winograd)
        window, pool_window, conv_map = self._geometry()
        count = len(slices)
        filters = conv.filters
        # Per slice: X_col^T @ dZ, whose last row is db = 1^T dZ when the im2col matrix has the bias column; or, by
        # Winograd, V^T @ dM in the transformed domain (kernels.winograd_f4_gradients), brought back after the sum.
        batch_columns = self._batch_columns(batch, width, kept)
        tiles_h, tiles_w = tile_counts_f4(conv.out_h, conv.out_w)
        # With a shallow kernel (the first convolution's 10 rows) BLAS makes the part twice as fast as its transpose,
        # (F x 10) = dZ^T @ X_col, than as (10 x F) (15.5 against 29.5 us an image); with a deep one, the other way
        # round (27 against 35-41). Each part is then kept (filters, width) and read through its transpose.
        transposed_parts = width < filters
        if winograd:
            parts = self._scratch.get("winograd_gradient_parts", (count, 36, conv._built_input_shape[-1], filters))
        elif transposed_parts:
            parts = self._scratch.get("gradient_parts_transposed", (count, filters, width)).transpose(0, 2, 1)
        else:
            parts = self._scratch.get("gradient_parts", (count, width, filters))
        bias_parts = self._scratch.get("bias_parts", (count, filters)) if conv.use_bias and width == depth else None
        ones = self._scratch.get("ones_slice", (full_rows,), fill=1.0) if bias_parts is not None else None
        dx = np.empty(x.shape, dtype=conv.dtype) if self.needs_input_gradient else None
        if dx is None and self._direct_pooled(pool_window, argmax_index.shape):
            self._direct_parameter_gradients(x, dy, argmax_index, pass_mask, dropout_on, rate, slices)
            return None
        winograd_dx = dx is not None and winograd
        if winograd_dx:  # the kernel turned for the adjoint, transformed once for all slices (on this thread)
            in_h, in_w, channels = conv._built_input_shape
            turned = self._scratch.get("turned_kernel", (3, 3, filters, channels))
            np.copyto(turned, conv.params["kernel"][::-1, ::-1].transpose(0, 1, 3, 2))
            dx_kernel = kernel_transform_f4(turned, out=self._scratch.get("dx_kernel", (36, filters, channels)))
            dx_tiles = tile_counts_f4(in_h, in_w)
            no_bias = self._scratch.get("zero_channels", (channels,), fill=0.0)

        def run(slot: int, first: int, stop: int) -> None:
            for index in range(first, stop):
                start, end = slices[index]
                rows = self._rows(start, end)
                dz = self._slice_buffer("dz", slot, (full_rows, filters), rows)
                pool_relu_dropout_backward_unchecked(
                    dy[start:end], argmax_index[start:end], pass_mask[start:end],
                    dz.reshape(end - start, *conv_map), rate, dropout_on, pool_window)
                if winograd:
                    self._winograd_kernel_gradient(slot, x[start:end], dz.reshape(end - start, *conv_map),
                                                   (tiles_h, tiles_w), parts[index])
                else:
                    cols = self._columns(slot, start, end, rows, full_rows, width, batch_columns)
                    if batch_columns is None:
                        im2col_unchecked(x[start:end], cols[:, :depth], *window)
                    np.matmul(cols.T, dz, out=parts[index])
                if bias_parts is not None and ones is not None:  # both or neither
                    np.matmul(ones[:rows], dz, out=bias_parts[index])
                if dx is not None and winograd_dx:
                    self._winograd_input_gradient(slot, dz.reshape(end - start, *conv_map), dx_kernel, dx[start:end],
                                                  dx_tiles, no_bias)
                elif dx is not None:
                    dcols = np.matmul(dz, kernel.T, out=self._slice_buffer("dcols", slot, (full_rows, depth), rows))
                    col2im_unchecked(dcols, dx[start:end], *window)

        threads.parallel_ranges(count, run)
        # Summed in slice order, whichever thread made each part: the same bits with any number of threads.
        if winograd:
            kernel_gradient_transform_f4(np.sum(parts, axis=0), out=conv.grads["kernel"])
        else:
            np.sum(parts[:, :depth], axis=0, out=conv.grads["kernel"].reshape(depth, filters))  # (either layout)
        if width > depth:
            np.sum(parts[:, depth], axis=0, out=conv.grads["bias"])
        elif bias_parts is not None:
            np.sum(bias_parts, axis=0, out=conv.grads["bias"])
        return dx

    def _direct_parameter_gradients(self, x: np.ndarray, dy: np.ndarray, argmax_index: np.ndarray,
                                    pass_mask: np.ndarray, dropout_on: bool, rate: float,
                                    slices: list[tuple[int, int]]) -> None:
        """The backward pass of the one-pass direct kernel when no input gradient is wanted (the first layer):
        the kernel's and bias's gradients straight from the pooled gradient ``dy``, without ``dz`` or an im2col
        matrix (:func:`tinynet.kernels.direct_conv.conv3x3_one_channel_pooled_parameter_gradients`), one part
        per slice, summed in slice order (the same bits with any number of threads)."""
        conv = self.conv
        filters = conv.filters
        images = x.reshape(x.shape[:3])
        parts = self._scratch.get("direct_gradient_parts", (len(slices), 10, filters))
        scale = keep_scale(rate, conv.dtype, dropout_on)

        def run(slot: int, first: int, stop: int) -> None:
            for index in range(first, stop):
                start, end = slices[index]
                conv3x3_one_channel_pooled_parameter_gradients(
                    images[start:end], dy[start:end], argmax_index[start:end], pass_mask[start:end], scale,
                    parts[index, :9], parts[index, 9])

        threads.parallel_ranges(len(slices), run)
        np.sum(parts[:, :9], axis=0, out=conv.grads["kernel"].reshape(9, filters))
        if conv.use_bias:
            np.sum(parts[:, 9], axis=0, out=conv.grads["bias"])
