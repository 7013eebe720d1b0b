"""From a batch's label dict to what each task trains on: clean labels and per-row weights.

A row's weight for a task is 0 when its label is missing (NaN; -1 for class ids),
when the row is outside the task's space, and otherwise the product of the task's
sample-weight column and Keras's ``sample_weight`` (if given). Losses and metrics
then only need the weights.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.tasks.kinds import TaskKind
from tfmtl.tasks.losses import label_present
from tfmtl.tasks.task import Task


def prepare_labels(
    tasks: Sequence[Task], data: Any
) -> tuple[Any, dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    """``(features, clean labels by task, weights by task)`` from a Keras batch ``(x, y[, sample_weight])``.

    Example:

    >>> import numpy as np, tfmtl
    >>> tasks = [tfmtl.Task.binary("click"), tfmtl.Task.binary("buy", space="click")]
    >>> y = {"click": np.array([1.0, 0.0, np.nan]), "buy": np.array([1.0, 0.0, 0.0])}
    >>> _, labels, weights = prepare_labels(tasks, ({}, y))
    >>> weights["click"].numpy().tolist(), weights["buy"].numpy().tolist()  # buy counts on clicked rows only
    ([1.0, 1.0, 0.0], [1.0, 0.0, 0.0])
    """
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if y is None:
        keys = ", ".join(f"{task.name}: {task.label_key!r}" for task in tasks)
        raise ValueError(f"no labels in the data: give (features, labels) with labels keyed by ({keys})")
    if not isinstance(y, Mapping):
        raise TypeError(f"labels must be a dict keyed by label name, got {type(y).__name__}")
    labels, weights = {}, {}
    for task in tasks:
        for what, key in (("label", task.label_key), ("space", task.space), ("sample weight", task.sample_weight)):
            if key is not None and key not in y:
                hint = " Use NaN for rows without a label." if what == "label" else ""
                raise ValueError(
                    f"task {task.name!r} has no {what} {key!r} in the data; label keys present: {sorted(y)}.{hint}"
                )
        if is_text(y[task.label_key]):
            raise TypeError(f"task {task.name!r}: label {task.label_key!r} must hold numbers (NaN = missing), got strings")
        label = _column(y[task.label_key])
        present = label_present(label, task.kind)
        if task.space is not None:
            present &= _column(y[task.space]) == 1.0
        weight = tf.cast(present, tf.float32) * row_weights(task, y, sample_weight, label)
        label = tf.where(present, label, tf.zeros_like(label))
        check_labels(task, label)
        labels[task.name], weights[task.name] = label, weight
    return x, labels, weights


def row_weights(task: Task, y: Mapping[str, Any], sample_weight: Any, like: tf.Tensor) -> tf.Tensor:
    """A task's per-row weight before missing labels and its space: its weight column times Keras's ``sample_weight``."""
    weight = tf.ones_like(like, tf.float32)
    if task.sample_weight is not None:
        weight *= _checked_weights(y[task.sample_weight], task, f"sample weight {task.sample_weight!r}")
    keras_weight = sample_weight.get(task.name) if isinstance(sample_weight, Mapping) else sample_weight
    if keras_weight is not None:
        weight *= _checked_weights(keras_weight, task, "sample_weight")
    return weight


def is_text(values: Any) -> bool:
    """Strings (a string tensor, or a numpy array of str/bytes/objects), which no cast should turn into labels."""
    dtype = getattr(values, "dtype", None)
    return dtype == tf.string if isinstance(dtype, tf.DType) else isinstance(dtype, np.dtype) and dtype.kind in "OUS"


def _column(values: Any) -> tf.Tensor:
    return tf.reshape(tf.cast(values, tf.float32), [-1])  # [B]


def _checked_weights(values: Any, task: Task, what: str) -> tf.Tensor:
    values = tf.debugging.check_numerics(_column(values), f"task {task.name!r}: {what} has NaN or Inf")
    tf.debugging.assert_non_negative(values, f"task {task.name!r}: {what} must be >= 0")
    return values


def check_labels(task: Task, label: tf.Tensor) -> None:
    """Present labels must fit the task's kind: binary in [0, 1], class ids in range, regression finite."""
    if task.kind is TaskKind.BINARY:
        tf.debugging.assert_less_equal(
            tf.abs(label - 0.5), 0.5, f"task {task.name!r}: binary labels must be in [0, 1] (NaN = missing)"
        )
    elif task.kind is TaskKind.MULTICLASS:
        tf.debugging.assert_less(
            label, float(task.num_classes),
            f"task {task.name!r}: class ids must be integers in [0, {task.num_classes}) (-1 or NaN = missing)",
        )
        tf.debugging.assert_equal(
            label, tf.round(label), f"task {task.name!r}: class ids must be integers in [0, {task.num_classes})"
        )
    else:
        tf.debugging.Assert(
            tf.reduce_all(tf.math.is_finite(label)),
            [f"task {task.name!r}: regression labels must be finite (NaN = missing)"],
        )


def shaped(task: Task, label: tf.Tensor) -> tf.Tensor:
    """Labels as the task's loss and metrics take them: class ids ``[B]``, else ``[B, 1]`` like the predictions."""
    return label if task.kind is TaskKind.MULTICLASS else tf.reshape(label, [-1, 1])
