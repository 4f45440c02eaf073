"""Tools for learners: check a backward pass, trace one step, record what training does to every layer.

The package, one tool per file:

``gradcheck.py``  :func:`check_layer`, :func:`check_model`: a layer's or a model's hand-written backward pass
                  against central differences (float64)
``hooks.py``      :func:`install_hooks`: see every forward and backward call of a layer, with no layer changed
``trace.py``      :func:`trace_step`: one forward and backward pass, per layer, what went in and out both ways
``recorder.py``   :class:`TrainingRecorder`: a ``fit`` callback recording activation statistics, dead ReLUs,
                  gradient norms and update ratios per layer, as a long pandas table
``pictures.py``   :func:`plot_gradient_norms`, :func:`plot_update_ratios`, :func:`plot_activations` and
                  :func:`save_inspection` (``tinynet train --inspect``)
``explain/``      :func:`tinynet.learn.explain.explain`: real training steps, every tensor and gradient, checked,
                  in one self-contained HTML page (``tinynet explain``)

What each layer costs (FLOPs, activation memory) is :mod:`tinynet.models.costs`; ``model.summary(batch_size=32)``
prints it. Every tool here goes through the model's public step or the layers' own methods.
"""

from __future__ import annotations

from tinynet.learn.gradcheck import check_layer, check_model
from tinynet.learn.recorder import TrainingRecorder
from tinynet.learn.trace import trace_step

__all__ = ["TrainingRecorder", "check_layer", "check_model", "trace_step"]
