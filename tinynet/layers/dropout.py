"""Dropout: inverted dropout, seeded, the identity at inference."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinynet import backend
from tinynet.kernels.dropout import draw_random_words, dropout_backward, dropout_forward, keep_threshold
from tinynet.layers import batch_shard
from tinynet.layers.base import Layer


class Dropout(Layer):
    r"""Inverted dropout (Keras 2): at training, zero each element with probability ``rate`` and scale the
    survivors by ``1 / (1 - rate)`` so the expected activation is unchanged; at inference, the identity.

    Shapes: any ``(N, ...)`` in, the same shape out; no parameters.

    Forward (training)::

        m ~ Bernoulli(1 - rate) per element        (drawn from this layer's own seeded NumPy Generator)
        y = x * m / (1 - rate)

    Backward: ``y`` is linear in ``x`` with the mask fixed, so ``dx = dy * m / (1 - rate)``. Cache: the keep
    mask ``m`` as uint8 (``None`` after an inference forward, where ``dx = dy``).

    The mask is drawn from 16-bit words so one draw serves the layer and the engine alike: :meth:`draw_mask_words`
    takes raw 16-bit words from the generator, and an element is kept when its word is at least
    ``rate * 2**16`` (:mod:`tinynet.kernels.dropout`). The engine's fused stages call the same method, so a
    model draws identical masks with the engine on or off.

    In data-parallel training a process holding rows ``[a, b)`` of a global batch draws the global batch's mask
    and keeps rows ``[a, b)`` (:mod:`tinynet.layers.batch_shard`), so the masks do not depend on how many
    processes share the batch.

    ``seed`` gives the layer its own stream; otherwise it spawns one from :func:`tinynet.utils.set_random_seed`'s
    root, so masks repeat run to run. ``noise_shape`` (Keras) shares one mask value along axes of size 1.
    """

    def __init__(self, rate: float, noise_shape: tuple | None = None, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, int | float | np.floating) or not 0 <= rate < 1:
            raise ValueError(f"{self.name}: rate must be a float in [0, 1), got {rate!r}")
        self.rate = float(rate)
        if noise_shape is not None and (not isinstance(noise_shape, tuple | list) or not all(
                n is None or (isinstance(n, int | np.integer) and not isinstance(n, bool) and n > 0)
                for n in noise_shape)):
            raise TypeError(f"{self.name}: noise_shape must be None or a tuple of positive ints and None, "
                            f"got {noise_shape!r}")
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0):
            raise TypeError(f"{self.name}: seed must be None or a non-negative int, got {seed!r}")
        self.seed = seed
        self.generator = np.random.default_rng(seed) if seed is not None else backend.new_generator()

    def _mask_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if self.noise_shape is None:
            return shape
        if len(self.noise_shape) != len(shape):
            raise ValueError(f"{self.name}: noise_shape {self.noise_shape} must have rank {len(shape)}")
        if any(n not in (None, 1, s) for n, s in zip(self.noise_shape, shape, strict=True)):
            raise ValueError(f"{self.name}: noise_shape {self.noise_shape} must hold None, 1 or the input's size "
                             f"on each axis of an input of shape {shape}")
        return tuple(s if n is None else n for n, s in zip(self.noise_shape, shape, strict=True))

    def draw_mask_words(self, shape: tuple[int, ...],
                        draw: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray] = draw_random_words,
                        ) -> np.ndarray:
        """The next mask's random words (uint16, ``shape``) from this layer's generator: element kept where
        ``words >= keep_threshold(rate)``. The one way a mask is drawn, by this layer and by the engine's stages,
        so the two advance the generator identically. ``draw`` makes the words: any function that gives
        :func:`~tinynet.kernels.dropout.draw_random_words`'s words and leaves the generator where it does (the
        engine passes one that shares the drawing between its threads)."""
        if self.noise_shape is not None and self.noise_shape[0] == 1:
            return draw(self.generator, shape)  # one mask row shared by every sample
        return batch_shard.global_rows(lambda global_shape: draw(self.generator, global_shape), shape)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        if not training or self.rate == 0:
            self._cache = (None, x.shape)
            return x
        mask_shape = self._mask_shape(x.shape)
        words = self.draw_mask_words(mask_shape)
        if mask_shape == x.shape:
            y, keep = dropout_forward(x, words, self.rate)
        else:  # a mask shared along noise_shape's size-1 axes: broadcast it
            keep = (words >= keep_threshold(self.rate)).astype(np.uint8)
            y = x * (keep * self.dtype.type(1.0 / (1.0 - self.rate)))
        self._cache = (keep, x.shape)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        keep, shape = self._take_cache()
        dy = self._check_output_gradient(dy, shape)
        if keep is None:
            return dy
        if keep.shape == shape:
            return dropout_backward(dy, keep, self.rate)
        return dy * (keep * self.dtype.type(1.0 / (1.0 - self.rate)))

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"rate": self.rate, "noise_shape": self.noise_shape, "seed": self.seed}
