"""TensorBoard scalars written with TensorFlow alone (Keras's callback needs the ``tensorboard`` package)."""

from __future__ import annotations

import os
from typing import Any

from tfmtl._compat import keras, tf


class TensorBoardLogs(keras.callbacks.Callback):
    """Writes every logged metric as a TensorBoard scalar, like Keras's ``TensorBoard`` callback.

    Keras's ``TensorBoard`` callback calls ``tensorboard.summary``, which is not a
    dependency of TensorFlow (nor of tfmtl); this one writes the same event files
    with ``tf.summary.write`` and the scalar plugin's metadata. Layout and tags
    follow Keras: ``<log_dir>/train`` and ``<log_dir>/validation``, tags
    ``epoch_<key>`` (``epoch_click/auc``, ``epoch_loss``; ``val_`` stripped in
    ``validation``), the optimizer's ``epoch_learning_rate``, and with
    ``every_steps`` also ``batch_<key>`` in ``train``. TensorBoard groups tags on
    ``/``, so each task's metrics form one section.

    Args:
      log_dir: Folder for the event files (``tensorboard --logdir <log_dir>``).
      every_steps: Also write the training logs every this many batches (None = epochs only).

    Example:

    >>> import tempfile, tfmtl
    >>> logs = tfmtl.training.TensorBoardLogs(tempfile.mkdtemp(), every_steps=100)
    """

    def __init__(self, log_dir: str | os.PathLike, every_steps: int | None = None) -> None:
        super().__init__()
        self.log_dir = str(log_dir)
        self.every_steps = every_steps
        self._writers: dict[str, Any] = {}
        self._metadata = tf.compat.v1.SummaryMetadata()
        self._metadata.plugin_data.plugin_name = "scalars"

    def _write(self, split: str, tag: str, value: Any, step: int) -> None:
        if split not in self._writers:
            self._writers[split] = tf.summary.create_file_writer(os.path.join(self.log_dir, split))
        with self._writers[split].as_default():
            tf.summary.write(tag, tf.cast(value, tf.float32), step=step, metadata=self._metadata.SerializeToString())

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if self.every_steps and logs:
            step = int(self.model.optimizer.iterations)
            if step % self.every_steps == 0:
                for key, value in logs.items():
                    self._write("train", f"batch_{key}", value, step)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        for key, value in (logs or {}).items():
            split, key = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            self._write(split, f"epoch_{key}", value, epoch)
        optimizer = self.model.optimizer
        if optimizer is not None:
            rate = optimizer.learning_rate
            if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
                rate = rate(optimizer.iterations)
            self._write("train", "epoch_learning_rate", rate, epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs: Any = None) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
