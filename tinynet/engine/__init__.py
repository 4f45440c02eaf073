"""The engine: the speed wing that runs a model's layers (or runs of them) as faster stages.

The layers (:mod:`tinynet.layers`) are the reference: plain NumPy and the kernels their docstrings name, no
threads, no knowledge of this package. The engine stands in for them when a model runs with ``model.fuse``
on (the default):

- :mod:`tinynet.engine.stage`: what a stage is (the :class:`Stage` protocol the model's passes run, and
  ``StandIn``, the base the engine's stages share);
- :mod:`tinynet.engine.planner`: maps each layer, or a run of layers, to the stage that computes it
  (:func:`plan`), as Caffe's layer factory picks an engine;
- the stages: :mod:`~tinynet.engine.pool_relu_dropout`, :mod:`~tinynet.engine.conv_block` (fused runs),
  :mod:`~tinynet.engine.dense`, :mod:`~tinynet.engine.conv` (single layers with threaded products); each keeps
  its own cache and work arrays (:mod:`~tinynet.engine.scratch`);
- :mod:`tinynet.engine.compiled_inference`: for a plan of the tutorial CNN's shape, a prediction as one compiled
  call per thread, each taking half of the batch through every stage (no GIL handoff between the layers);
  :mod:`tinynet.engine.compiled_training` (with :mod:`~tinynet.engine.training_lanes`): its training step's
  forward and backward passes as one compiled call per thread each, the threads claiming pieces phase by phase
  and meeting at a barrier that sleeps in the kernel (:mod:`~tinynet.engine.barrier`);
- :mod:`tinynet.engine.threads`: the worker threads (:func:`set_num_threads`, ``TINYNET_NUM_THREADS``), and how
  they give way on a shared machine (:mod:`~tinynet.engine.contention`, :func:`set_adaptive_threads`,
  ``TINYNET_ADAPTIVE_THREADS``, :func:`thread_decision`);
- :mod:`tinynet.engine.blas`: OpenBLAS's thread count; :mod:`tinynet.engine.allocator`: glibc's allocator;
- :mod:`tinynet.engine.startup`: :func:`start` and :func:`engine_scope`. Importing the engine changes nothing in
  the process; the allocator setting, the threads and their fork handler come when it first runs.
"""

from tinynet.engine.planner import ENGINE_IMPLEMENTATIONS, plan
from tinynet.engine.stage import SoftmaxOutputStage, Stage
from tinynet.engine.startup import engine_scope, start, started
from tinynet.engine.threads import num_threads, set_adaptive_threads, set_num_threads, thread_decision

__all__ = [
    "ENGINE_IMPLEMENTATIONS",
    "SoftmaxOutputStage",
    "Stage",
    "engine_scope",
    "num_threads",
    "plan",
    "set_adaptive_threads",
    "set_num_threads",
    "start",
    "started",
    "thread_decision",
]
