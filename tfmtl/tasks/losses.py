"""Per-task losses that ignore missing labels (NaN; also -1 for class ids)."""

from __future__ import annotations

from typing import Any

from tfmtl._compat import keras, tf
from tfmtl.tasks.kinds import TaskKind
from tfmtl.tasks.sampling import check_rate, to_sampled


def label_present(y_true: tf.Tensor, kind: TaskKind = TaskKind.BINARY) -> tf.Tensor:
    """Boolean mask of present labels: not NaN, and for class ids also not negative (``-1``)."""
    present = tf.math.logical_not(tf.math.is_nan(y_true))
    if kind is TaskKind.MULTICLASS:
        present = tf.math.logical_and(present, y_true >= 0)
    return present


def label_mask(y_true: tf.Tensor, kind: TaskKind = TaskKind.BINARY) -> tuple[tf.Tensor, tf.Tensor]:
    """Split labels into (labels with missing ones replaced by 0, float mask of present labels)."""
    present = label_present(y_true, kind)
    return tf.where(present, y_true, tf.zeros_like(y_true)), tf.cast(present, y_true.dtype)


def per_example_loss(kind: TaskKind, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """The task kind's loss for each example, ``[B]``; labels must already be clean (no NaN).

    Binary: cross-entropy on probabilities ``[B, 1]``; regression: squared error on
    ``[B, 1]``; multi-class: sparse categorical cross-entropy of class ids ``[B]``
    against probabilities ``[B, C]``.

    Example:

    >>> import numpy as np, tfmtl
    >>> from tfmtl.tasks.losses import per_example_loss
    >>> per_example_loss(tfmtl.TaskKind.REGRESSION, np.array([[1.0], [2.0]]), np.array([[3.0], [2.0]])).numpy()
    array([4., 0.])
    """
    kind = TaskKind(kind)
    if kind is TaskKind.MULTICLASS:
        y_pred = tf.convert_to_tensor(y_pred)
        labels = tf.reshape(tf.cast(y_true, tf.int32), [-1])  # [B]
        return keras.losses.sparse_categorical_crossentropy(labels, y_pred)  # [B]
    y_pred = tf.reshape(y_pred, [-1, 1])  # [B, 1]
    y_true = tf.reshape(tf.cast(y_true, y_pred.dtype), [-1, 1])  # [B, 1]
    if kind is TaskKind.BINARY:
        return keras.losses.binary_crossentropy(y_true, y_pred)  # [B]
    return keras.losses.mean_squared_error(y_true, y_pred)  # [B]


@keras.utils.register_keras_serializable(package="tfmtl")
class MaskedLoss(keras.losses.Loss):
    """Mean per-example loss over the examples whose label is present, for plain Keras use.

    :class:`~tfmtl.models.MultiTaskModel` computes its task losses itself (with
    task spaces, per-task sample weights and balancing); this Loss gives the same
    masked mean to models trained with plain Keras ``compile``/``fit``.

    A label of NaN (or ``-1`` for a multi-class task) means "missing": that example
    adds nothing to this task's loss (and gradient). The mean is taken over present
    labels only, so a task's scale does not shrink with its label coverage; a batch
    with no labels for the task contributes 0.

    Args:
      kind: ``TaskKind.BINARY``, ``TaskKind.REGRESSION`` or ``TaskKind.MULTICLASS``.
      negative_sampling_rate: A binary task's :attr:`~tfmtl.Task.negative_sampling_rate`:
        the loss is taken on the sampled probability the corrected prediction came from.

    Example:

    >>> import numpy as np, tfmtl
    >>> loss = tfmtl.tasks.MaskedLoss(tfmtl.TaskKind.REGRESSION)
    >>> float(loss(np.array([[1.0], [np.nan]]), np.array([[3.0], [100.0]])))
    4.0
    """

    def __init__(
        self, kind: TaskKind | str = TaskKind.BINARY, name: str | None = None, negative_sampling_rate: float = 1.0,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("reduction", None)
        # SUM: `call` already divides by the number of present labels (and replicas).
        super().__init__(reduction=keras.losses.Reduction.SUM, name=name or "masked_loss", **kwargs)
        self.kind = TaskKind(kind)
        self.negative_sampling_rate = check_rate(negative_sampling_rate, f"loss {self.name!r}")

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        y_pred = tf.convert_to_tensor(y_pred)
        if self.negative_sampling_rate < 1:  # the head answers corrected probabilities; the labels are sampled
            y_pred = to_sampled(y_pred, self.negative_sampling_rate)
        y_true = tf.reshape(tf.cast(y_true, y_pred.dtype), [-1])  # [B]
        y_clean, mask = label_mask(y_true, self.kind)
        per_example = per_example_loss(self.kind, y_clean, y_pred)  # [B]
        count = tf.maximum(tf.reduce_sum(mask), 1.0)
        replicas = tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, y_pred.dtype)
        return per_example * mask / (count * replicas)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("reduction", None)
        config["kind"] = self.kind.value
        config["negative_sampling_rate"] = self.negative_sampling_rate
        return config
