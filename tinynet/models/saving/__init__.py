"""Saving and loading: whole models (``model.save`` / ``load_model``) and bare weights (``save_weights``).

A model file holds everything needed to carry on training exactly where it stopped:

* the architecture: the model's name, whether it runs fused stages (``model.fuse``) and, per layer, its class
  name and ``get_config()``;
* the weights, per layer, by name (``kernel``, ``bias``, state arrays);
* the compile settings: loss, metrics, the optimizer's class and ``get_config()``;
* the optimizer's state: ``iterations``, every per-parameter slot (SGD's ``velocities``, Adam's moments, ...) and
  any scalar state (Nadam's ``m_schedule``); a learning-rate schedule is part of the optimizer's config;
* the random streams: the model's shuffle generator and every ``numpy.random.Generator`` attribute of a layer
  (``Dropout.generator``), so epoch ``e`` shuffles and drops out the same whether or not the process restarted;
* ``epochs_done`` (the ``initial_epoch`` to continue from) and the history of the epochs done so far.

Layout of the file (all integers little-endian)::

    offset  size  field
    0       8     MAGIC            b"\\x93TINYNET"
    8       4     format version   uint32 (FORMAT_VERSION)
    12      8     payload length   uint64, bytes after the header
    20      32    SHA-256          of the payload
    52      ...   payload          an uncompressed np.savez archive: the arrays, plus the JSON document stored as
                                   a uint8 array under DOCUMENT_KEY; read back with allow_pickle=False

JSON holds the configuration and the generator states (PCG64's 128-bit integers are plain JSON integers); the
document names the archive entry of each array. The file is written through :func:`tinynet.fileio.atomic_write`,
so an interrupted save leaves the previous file whole, and it is written at exactly the path given (no extension
is added). :func:`load_model` checks the magic bytes, the version, the length and the checksum before it reads
anything, and raises a ``ValueError`` naming the file and the problem rather than return a half-built model.

Reading trusts nothing in the file (anyone can recompute a checksum). Before memory is spent on a field, it is
checked: the path must be a regular file (``os.stat`` then ``fstat``: not ``/dev/zero``, not a FIFO that would
block), and no more than its size is read; archive members are read through :class:`tinynet.archive.NpzArchive`
(stored uncompressed, declared sizes that add up, each ``.npy`` header's dtype, shape and size checked before its
data is read, members the document never names refused unread); every layer is built under
:func:`tinynet.layers.base.checking_weight_allocations`, so a config can allocate only the weights whose headers
the file holds, in their shapes and dtype, and no layer takes more than :data:`MAX_SAMPLE_ELEMENTS` numbers per
sample; weights must be finite; random generators are restored only under names the rebuilt layer already uses
for a generator; ``epochs_done`` and the history must be epoch counts; abstract classes are no layers or losses.
Each refusal is one ``ValueError`` line naming the file and the field.

Not saved: the random streams of seeded initializers (they only matter when a layer is built, and a loaded model
is already built), and the process-wide seed of :mod:`tinynet.backend`.

Bare weights (:func:`save_weights` / :func:`load_weights`) stay a plain ``.npz`` with one array per weight, named
``<layer>/<weight>`` in model order, also written atomically.

The package, one concept per file: ``file_format.py`` (the header and its checks, the payload's arrays),
``document.py`` (a model's JSON document), ``rebuild.py`` (a model from a document, with all its checks),
``compile_state.py`` (loss, metrics, optimizer and its state), ``history.py``, ``generators.py`` (random streams),
``model_file.py`` (:func:`save_model`, :func:`load_model`) and ``weights.py`` (:func:`save_weights`,
:func:`load_weights`). ``Sequential.save`` and friends import this package when called, and it imports
:mod:`tinynet.models.sequential`, never the other way round at import time.
"""

from __future__ import annotations

from tinynet.models.saving.file_format import DOCUMENT_KEY, FORMAT_VERSION, HEADER, HEADER_SIZE, MAGIC, file_header
from tinynet.models.saving.generators import generator_state, restore_generator
from tinynet.models.saving.history import merged_history
from tinynet.models.saving.model_file import load_model, save_model
from tinynet.models.saving.weights import load_weights, save_weights

__all__ = [
    "DOCUMENT_KEY",
    "FORMAT_VERSION",
    "HEADER",
    "HEADER_SIZE",
    "MAGIC",
    "file_header",
    "generator_state",
    "load_model",
    "load_weights",
    "merged_history",
    "restore_generator",
    "save_model",
    "save_weights",
]
