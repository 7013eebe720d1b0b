"""Atomic training checkpoints: model, optimizer, balancing strategy and the data position."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import shutil
import uuid
from typing import Any

from tfmtl._compat import keras, tf

_NAME = re.compile(r"^ckpt-(\d{6})-(\d{9})$")
_TEMP_PREFIX = ".tmp-"


@dataclasses.dataclass(frozen=True, order=True)
class Position:
    """Where training stands: ``step`` batches of epoch ``epoch`` (0-based) are done.

    Example:

    >>> import tfmtl
    >>> tfmtl.training.Position(epoch=2, step=150)
    Position(epoch=2, step=150)
    """

    epoch: int
    step: int


class Checkpoints:
    """A directory of atomic checkpoints of a compiled :class:`~tfmtl.models.MultiTaskModel`.

    Each checkpoint holds the model's variables, the optimizer's (step counter and
    slots), the balancing strategy's (``model.balancer``, which Keras does not track)
    and the :class:`Position` in the data. It is written into a hidden temporary
    folder that is renamed to ``ckpt-<epoch>-<step>`` only once complete (a rename is
    atomic), so a process killed while saving leaves a temporary folder that is never
    read, and is removed by the next ``save``. The newest ``keep`` checkpoints are kept.

    Not saved: the state of Keras callbacks (e.g. ``EarlyStopping``'s patience
    counter) and of random ops (dropout masks draw new values after a resume).

    Args:
      directory: Where the checkpoints live (created if needed).
      keep: How many of the newest checkpoints to keep.

    Example:

    >>> import tempfile, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click")], bottom_units=(4,))
    >>> model.compile()
    >>> checkpoints = tfmtl.training.Checkpoints(tempfile.mkdtemp())
    >>> checkpoints.save(model, tfmtl.training.Position(epoch=1, step=20)).name
    'ckpt-000001-000000020'
    >>> checkpoints.restore(model)
    Position(epoch=1, step=20)
    """

    def __init__(self, directory: str | os.PathLike, *, keep: int = 2) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = pathlib.Path(directory)
        self.keep = keep

    def all(self) -> list[pathlib.Path]:
        """The complete checkpoints, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(path for path in self.directory.iterdir() if path.is_dir() and _NAME.match(path.name))

    def latest(self) -> pathlib.Path | None:
        """The newest complete checkpoint, or None."""
        found = self.all()
        return found[-1] if found else None

    def save(self, model: Any, position: Position) -> pathlib.Path:
        """Write a checkpoint of ``model`` at ``position``; returns its folder."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob(f"{_TEMP_PREFIX}*"):  # left by a killed process
            shutil.rmtree(stale, ignore_errors=True)
        final = self.directory / f"ckpt-{position.epoch:06d}-{position.step:09d}"
        temp = self.directory / f"{_TEMP_PREFIX}{uuid.uuid4().hex}"
        temp.mkdir()
        _checkpoint(model).write(str(temp / "state"))
        (temp / "position.json").write_text(json.dumps(dataclasses.asdict(position)))
        if final.exists():  # the same position saved again (e.g. resumed at an epoch's end)
            shutil.rmtree(final)
        os.rename(temp, final)
        for old in self.all()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def restore(self, model: Any, path: str | os.PathLike | None = None) -> Position | None:
        """Load the newest (or the given) checkpoint into ``model``; returns its position, None if there is none."""
        path = pathlib.Path(path) if path is not None else self.latest()
        if path is None:
            return None
        _checkpoint(model).read(str(path / "state")).assert_existing_objects_matched()
        return Position(**json.loads((path / "position.json").read_text()))


def _checkpoint(model: Any) -> tf.train.Checkpoint:
    if getattr(model, "optimizer", None) is None or getattr(model, "balancer", None) is None:
        raise ValueError("compile the model first: checkpoints hold its optimizer and balancer too")
    model.optimizer.build(model._variables_to_train())  # slots exist before the first step: saved and read alike
    return tf.train.Checkpoint(model=model, optimizer=model.optimizer, balancer=model.balancer)


class CheckpointCallback(keras.callbacks.Callback):
    """Saves a checkpoint every ``every_steps`` batches and at the end of every epoch.

    Used by :func:`tfmtl.training.fit`, which also resumes from them; ``first_step``
    is the number of batches of the first epoch already done before this ``fit``.

    Example:

    >>> import tempfile, tfmtl
    >>> callback = tfmtl.training.CheckpointCallback(tfmtl.training.Checkpoints(tempfile.mkdtemp()), every_steps=100)
    """

    def __init__(self, checkpoints: Checkpoints, every_steps: int | None = None, first_step: int = 0) -> None:
        super().__init__()
        if every_steps is not None and every_steps < 1:
            raise ValueError(f"every_steps must be >= 1 (or None for epoch ends only), got {every_steps}")
        self.checkpoints = checkpoints
        self.every_steps = every_steps
        self._offset = first_step
        self._epoch = 0
        self._last = first_step

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        step = self._offset + batch + 1
        if self.every_steps and step - self._last >= self.every_steps:
            self.checkpoints.save(self.model, Position(self._epoch, step))
            self._last = step

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.checkpoints.save(self.model, Position(epoch + 1, 0))
        self._offset = self._last = 0
