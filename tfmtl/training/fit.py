"""``fit`` with checkpoints that resume mid-epoch on exactly the batches not yet consumed."""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence, Union

from tfmtl._compat import keras, tf
from tfmtl.training.checkpoint import CheckpointCallback, Checkpoints, Position
from tfmtl.training.parameter_server import is_parameter_server_strategy, per_worker_dataset, worker_count
from tfmtl.training.selection import CombinedMetric

#: Training data: one epoch's batches (the same on every pass), or ``epoch -> that epoch's batches``.
EpochData = Union[tf.data.Dataset, Callable[[int], tf.data.Dataset]]


class _Epoch(keras.callbacks.CallbackList):
    """One epoch's callbacks: ``on_train_begin`` reaches them only in the session's first epoch.

    :func:`fit` runs one Keras ``fit`` per epoch (so an interrupted epoch can restart
    at a batch); this keeps the callbacks seeing one training session.
    """

    def __init__(self, callbacks: Sequence[Any], *, first: bool, **kwargs: Any) -> None:
        super().__init__(list(callbacks), **kwargs)
        self._first = first

    def on_train_begin(self, logs: Any = None) -> None:
        for callback in self.callbacks:
            if self._first or isinstance(callback, keras.callbacks.ProgbarLogger):
                callback.on_train_begin(logs)

    def on_train_end(self, logs: Any = None) -> None:
        pass  # once, by fit(), when the session ends

    def end_session(self, logs: Any = None) -> None:
        super().on_train_end(logs)


def fit(
    model: Any,
    data: EpochData,
    *,
    epochs: int,
    validation_data: Any = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    keep_checkpoints: int = 2,
    verbose: Any = "auto",
    steps_per_epoch: int | None = None,
) -> keras.callbacks.History:
    """Train a compiled :class:`~tfmtl.models.MultiTaskModel` for ``epochs``, checkpointing and resuming.

    With ``checkpoint_dir``, a checkpoint (:class:`Checkpoints`: model, optimizer,
    balancing strategy, epoch and step) is written atomically every
    ``checkpoint_every`` batches and at every epoch's end, and a later call with the
    same directory first restores the newest one and continues from it: the
    interrupted epoch goes on with ``data(epoch).skip(step)``, so a run killed at any
    point and restarted ends with the weights of an uninterrupted run (within float
    tolerance). That needs ``data`` to give the same batches in the same order each
    time it is asked for an epoch: a dataset without shuffling or with a seeded,
    non-reshuffling shuffle (``read_csv(..., shuffle_buffer=..., seed=s)``), or a
    function of the epoch such as ``lambda epoch: read_tfrecord(..., seed=seed + epoch)``.

    :class:`CombinedMetric` callbacks run first, so ``EarlyStopping`` and
    ``ModelCheckpoint`` can monitor their score. Learning-rate schedules are Keras's
    own (``keras.optimizers.schedules.*`` as the optimizer's ``learning_rate``): their
    step is the optimizer's ``iterations``, which the checkpoint restores.

    Under ``ParameterServerStrategy`` (:func:`parameter_server_strategy`), ``data``
    must be a function of the epoch: each worker calls it to build its own pipeline
    (reading and preprocessing run on the workers) and keeps every N-th batch
    (:func:`sharded_dataset_fn`); an epoch is ``steps_per_epoch``
    steps (default: the number of batches, when the dataset knows it). Keras runs no
    batch-level callbacks there, so checkpoints are written at epoch ends only, the
    logs are one line per epoch, and ``validation_data`` is refused (evaluate after
    training, or on a model given :func:`full_weights`).

    Args:
      model: A compiled MultiTaskModel.
      data: One epoch's batches of ``(features, labels)``, or a function ``epoch -> batches``.
      epochs: Total epochs (a resumed run trains only the rest).
      validation_data: Passed to Keras ``fit`` each epoch.
      callbacks: Keras callbacks; they see one training session across the epochs.
      checkpoint_dir: Directory of checkpoints to write and resume from (None = no checkpoints).
      checkpoint_every: Also checkpoint every this many batches (None = at epoch ends only).
      keep_checkpoints: How many of the newest checkpoints to keep.
      verbose: Keras ``verbose`` (``"auto"``: a progress bar on a terminal, else a line per epoch).
      steps_per_epoch: Steps per epoch under ``ParameterServerStrategy`` (needed
        when the dataset's size is unknown, e.g. read from files); elsewhere the
        epoch is the whole dataset and this must be None.

    Returns:
      A Keras ``History`` of the epochs trained by this call.

    Example:

    >>> import tempfile, numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click")], bottom_units=(4,))
    >>> model.compile()
    >>> data = tfmtl.data.MultiTaskData({"price": np.arange(8.0)}, {"click": np.arange(8.0) % 2}, schema, model.tasks)
    >>> history = tfmtl.training.fit(model, data.to_dataset(4), epochs=2, checkpoint_dir=tempfile.mkdtemp(), verbose=0)
    >>> history.epoch, int(model.optimizer.iterations)
    ([0, 1], 4)
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if checkpoint_every is not None and checkpoint_dir is None:
        raise ValueError("checkpoint_every needs checkpoint_dir")
    epoch_data = data if callable(data) else (lambda epoch: data)
    coordinated = is_parameter_server_strategy(model.distribute_strategy)
    _check_coordinated(coordinated, data, checkpoint_every, validation_data, steps_per_epoch)
    if verbose == "auto":
        verbose = 1 if os.isatty(1) and not coordinated else 2
    if coordinated and verbose == 1:
        verbose = 2  # Keras refuses a per-step progress bar under ParameterServerStrategy
    history = keras.callbacks.History()
    ordered = sorted(callbacks, key=lambda callback: not isinstance(callback, CombinedMetric))
    position = Position(0, 0)
    saver = None
    if checkpoint_dir is not None:
        checkpoints = Checkpoints(checkpoint_dir, keep=keep_checkpoints)
        latest = checkpoints.latest()
        position = checkpoints.restore(model) or position
        if latest is not None and verbose:
            if position.epoch >= epochs:
                print(f"already trained for {epochs} epoch(s) (checkpoint {latest}): nothing to train; "
                      "raise epochs, or use another checkpoint_dir, to train more")
            else:
                print(f"resuming from checkpoint {latest}: epoch {position.epoch + 1} of {epochs}, "
                      f"after step {position.step}")
        saver = CheckpointCallback(checkpoints, checkpoint_every, first_step=position.step)
        if not coordinated:  # (no batch-level callbacks there: saved below, at each epoch's end)
            ordered.append(saver)
    phase = None
    if coordinated and position.step:
        raise ValueError(
            f"the checkpoint in {checkpoint_dir} was written mid-epoch (epoch {position.epoch + 1}, step "
            f"{position.step}); under ParameterServerStrategy training resumes at epoch ends only: resume it "
            "without the strategy, or from an epoch-end checkpoint"
        )
    for epoch in range(position.epoch, epochs):
        if coordinated:  # the workers build the pipelines; here only its size, when not given
            steps = steps_per_epoch or _coordinated_steps(int(epoch_data(epoch).cardinality()))
            dataset = per_worker_dataset(epoch_data, epoch, worker_count(model.distribute_strategy))
        else:
            dataset = epoch_data(epoch)
            if epoch == position.epoch and position.step:
                dataset = dataset.skip(position.step)  # the batches the interrupted run had not trained on
            steps = int(dataset.cardinality())
        phase = _Epoch(
            [*ordered, history], first=phase is None, add_progbar=verbose != 0, model=model, verbose=verbose,
            epochs=epochs, steps=steps if steps >= 0 else None,
        )
        model.fit(dataset, epochs=epoch + 1, initial_epoch=epoch, validation_data=validation_data, callbacks=phase,
                  verbose=verbose, steps_per_epoch=steps if coordinated else None)
        if coordinated and saver is not None:
            saver.checkpoints.save(model, Position(epoch + 1, 0))
        if model.stop_training:
            break
    if phase is None:  # already trained for `epochs`
        history.set_model(model)
        history.on_train_begin()
        return history
    phase.end_session()
    return history


def _check_coordinated(coordinated: bool, data: Any, checkpoint_every: Any, validation_data: Any,
                       steps_per_epoch: Any) -> None:
    if not coordinated:
        if steps_per_epoch is not None:
            raise ValueError("steps_per_epoch is for ParameterServerStrategy only: elsewhere an epoch is the whole dataset")
        return
    if not callable(data):
        raise ValueError(
            "data: under ParameterServerStrategy every worker builds its own pipeline, so give a function "
            "epoch -> dataset (e.g. lambda epoch: train.to_dataset(512, shuffle=True, seed=epoch)); a dataset "
            "built in the coordinator cannot be sent to the workers"
        )
    if checkpoint_every is not None:
        raise ValueError(
            "checkpoint_every: under ParameterServerStrategy Keras runs no batch-level callbacks, so checkpoints "
            "are written at epoch ends only; leave checkpoint_every out (use shorter epochs for more checkpoints)"
        )
    if validation_data is not None:
        raise ValueError(
            "validation_data is not supported under ParameterServerStrategy: evaluate after training, e.g. on a "
            "model built outside the strategy given tfmtl.training.full_weights(model)"
        )
    if steps_per_epoch is not None and (not isinstance(steps_per_epoch, int) or steps_per_epoch < 1):
        raise ValueError(f"steps_per_epoch must be a positive int, got {steps_per_epoch!r}")


def _coordinated_steps(batches: int) -> int:
    if batches < 0:
        raise ValueError(
            "steps_per_epoch: the dataset does not know its number of batches (e.g. it reads files); "
            "ParameterServerStrategy needs it: pass fit(..., steps_per_epoch=N)"
        )
    return batches

