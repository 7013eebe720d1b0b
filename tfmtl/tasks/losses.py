"""Per-task losses that ignore missing labels (NaN)."""

from __future__ import annotations

from typing import Any

from tfmtl._compat import keras, tf
from tfmtl.tasks.kinds import TaskKind


def label_mask(y_true: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Split labels into (labels with NaN replaced by 0, float mask of present labels)."""
    present = tf.math.logical_not(tf.math.is_nan(y_true))
    return tf.where(present, y_true, tf.zeros_like(y_true)), tf.cast(present, y_true.dtype)


@keras.utils.register_keras_serializable(package="tfmtl")
class MaskedLoss(keras.losses.Loss):
    """Mean per-example loss over the examples whose label is present.

    A label of NaN means "missing": that example adds nothing to this task's loss
    (and gradient), while it still trains the other tasks. The mean is taken over
    present labels only, so a task's scale does not shrink with its label
    coverage; a batch with no labels for the task contributes 0.

    Args:
      kind: ``TaskKind.BINARY`` (binary cross-entropy on probabilities) or
        ``TaskKind.REGRESSION`` (mean squared error).

    Example:

    >>> import numpy as np, tfmtl
    >>> loss = tfmtl.tasks.MaskedLoss(tfmtl.TaskKind.REGRESSION)
    >>> float(loss(np.array([[1.0], [np.nan]]), np.array([[3.0], [100.0]])))
    4.0
    """

    def __init__(self, kind: TaskKind | str = TaskKind.BINARY, name: str | None = None, **kwargs: Any) -> None:
        kwargs.pop("reduction", None)
        # SUM: `call` already divides by the number of present labels (and replicas).
        super().__init__(reduction=keras.losses.Reduction.SUM, name=name or "masked_loss", **kwargs)
        self.kind = TaskKind(kind)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        y_pred = tf.reshape(y_pred, [-1, 1])  # [B, 1]
        y_true = tf.reshape(tf.cast(y_true, y_pred.dtype), [-1, 1])  # [B, 1]
        y_clean, mask = label_mask(y_true)
        if self.kind is TaskKind.BINARY:
            per_example = keras.losses.binary_crossentropy(y_clean, y_pred)  # [B]
        else:
            per_example = keras.losses.mean_squared_error(y_clean, y_pred)  # [B]
        mask = tf.reshape(mask, [-1])  # [B]
        count = tf.maximum(tf.reduce_sum(mask), 1.0)
        replicas = tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, y_pred.dtype)
        return per_example * mask / (count * replicas)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("reduction", None)
        config["kind"] = self.kind.value
        return config
