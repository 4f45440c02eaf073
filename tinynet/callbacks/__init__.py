"""Callbacks: hooks ``fit`` calls around epochs and batches (Keras 2's protocol), History and the progress bar.

Order of calls during ``fit``::

    on_train_begin
      on_epoch_begin(epoch)
        on_batch_begin(batch, logs={'batch', 'size'})
        on_batch_end(batch, logs={'batch', 'size', 'loss', 'acc', ...})          # figures of that batch
      on_epoch_end(epoch, logs={'loss', 'acc', ..., 'val_loss', 'val_acc', ...}) # epoch means, then validation
    on_train_end

A callback sees the model as ``self.model`` and the run's settings as ``self.params`` (``epochs``, ``samples``,
``steps``, ``verbose``, ``do_validation``, ``metrics``); setting ``model.stop_training = True`` ends ``fit`` after
the current epoch.

Ready-made callbacks with Keras 2's names and arguments: :class:`ModelCheckpoint`, :class:`EarlyStopping`,
:class:`TerminateOnNaN`, :class:`CSVLogger`, :class:`LearningRateScheduler`, :class:`ReduceLROnPlateau`,
:class:`LambdaCallback` (plus :class:`History` and :class:`ProgbarLogger`, which ``fit`` adds).

The learning rate ``lr`` is logged, as in Keras 2.2.4, only by :class:`LearningRateScheduler` and
:class:`ReduceLROnPlateau`; without them ``history.history`` has no ``'lr'``. Keras calls :class:`History` after
every callback; ``fit`` calls those marked ``adds_to_epoch_logs`` (these two) before it, so that it records their
``lr``, and the others after it, so that a checkpoint saved at an epoch's end holds that epoch's history and the
reduced rate the next epoch will use (a resumed run then continues exactly).

The package, one concept per file: ``base.py`` (the protocol, History, ProgbarLogger), ``checkpoint.py``,
``stopping.py`` (TerminateOnNaN, EarlyStopping), ``csv_logger.py``, ``learning_rate.py`` (LearningRateScheduler,
ReduceLROnPlateau), ``lambda_callback.py``; ``_monitor.py`` holds the helpers they share.
"""

from __future__ import annotations

from tinynet.callbacks.base import Callback, CallbackList, History, Logs, ProgbarLogger
from tinynet.callbacks.checkpoint import ModelCheckpoint
from tinynet.callbacks.csv_logger import CSVLogger
from tinynet.callbacks.lambda_callback import LambdaCallback
from tinynet.callbacks.learning_rate import LearningRateScheduler, ReduceLROnPlateau
from tinynet.callbacks.stopping import EarlyStopping, TerminateOnNaN

__all__ = [
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "Logs",
    "ModelCheckpoint",
    "ProgbarLogger",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
]
