"""Keras metrics for recommender tasks; every one skips examples whose label is missing.

A missing label is NaN (or ``-1`` for class ids). Besides masked versions of the
usual Keras metrics, this module has the recommender-specific ones: group AUC
(:class:`GroupAUC`, AUC per user averaged by impressions) and calibration
(:class:`COPC`, :class:`CalibrationRatio`, :class:`ExpectedCalibrationError`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.tasks.kinds import TaskKind
from tfmtl.tasks.losses import label_mask


def _masked(y_true: Any, y_pred: Any, sample_weight: Any, kind: TaskKind) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(clean labels, predictions, weights) with missing labels turned into zero weights."""
    y_pred = tf.cast(y_pred, tf.float32)
    if kind is not TaskKind.MULTICLASS:
        y_pred = tf.reshape(y_pred, [-1, 1])  # [B, 1]
    y_true = tf.reshape(tf.cast(y_true, tf.float32), [-1])  # [B]
    y_clean, weight = label_mask(y_true, kind)  # [B], [B]
    if sample_weight is not None:
        weight *= tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
    if kind is not TaskKind.MULTICLASS:
        y_clean = tf.reshape(y_clean, [-1, 1])
    return y_clean, y_pred, weight


class _MaskedMetric:
    """Mixin: turn missing labels into zero sample weights before the Keras update."""

    _kind = TaskKind.BINARY

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        y_clean, y_pred, weight = _masked(y_true, y_pred, sample_weight, self._kind)
        return super().update_state(y_clean, y_pred, sample_weight=weight)  # type: ignore[misc]


@keras.utils.register_keras_serializable(package="tfmtl")
class MaskedAUC(_MaskedMetric, keras.metrics.AUC):
    """ROC AUC over examples with a present label.

    Example:

    >>> import numpy as np, tfmtl
    >>> auc = tfmtl.tasks.MaskedAUC()
    >>> _ = auc.update_state(np.array([0.0, 1.0, np.nan]), np.array([0.2, 0.8, 0.9]))
    >>> round(float(auc.result()), 3)
    1.0
    """

    def __init__(self, name: str = "auc", num_thresholds: int = 1000, **kwargs: Any) -> None:
        super().__init__(name=name, num_thresholds=num_thresholds, **kwargs)


@keras.utils.register_keras_serializable(package="tfmtl")
class MaskedLogLoss(_MaskedMetric, keras.metrics.BinaryCrossentropy):
    """Binary cross-entropy (logloss) over examples with a present label.

    Example:

    >>> import numpy as np, tfmtl
    >>> logloss = tfmtl.tasks.MaskedLogLoss()
    >>> _ = logloss.update_state(np.array([1.0, np.nan]), np.array([0.5, 0.9]))
    >>> round(float(logloss.result()), 4)  # -log(0.5); the NaN row is skipped
    0.6931
    """

    def __init__(self, name: str = "logloss", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)


@keras.utils.register_keras_serializable(package="tfmtl")
class MaskedRMSE(_MaskedMetric, keras.metrics.RootMeanSquaredError):
    """Root mean squared error over examples with a present label.

    Example:

    >>> import numpy as np, tfmtl
    >>> rmse = tfmtl.tasks.MaskedRMSE()
    >>> _ = rmse.update_state(np.array([1.0, np.nan]), np.array([4.0, 0.0]))
    >>> float(rmse.result())
    3.0
    """

    def __init__(self, name: str = "rmse", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)


@keras.utils.register_keras_serializable(package="tfmtl")
class MaskedMAE(_MaskedMetric, keras.metrics.MeanAbsoluteError):
    """Mean absolute error over examples with a present label.

    Example:

    >>> import numpy as np, tfmtl
    >>> mae = tfmtl.tasks.MaskedMAE()
    >>> _ = mae.update_state(np.array([1.0, np.nan, 3.0]), np.array([2.0, 9.0, 1.0]))
    >>> float(mae.result())
    1.5
    """

    def __init__(self, name: str = "mae", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)


@keras.utils.register_keras_serializable(package="tfmtl")
class MaskedAccuracy(_MaskedMetric, keras.metrics.SparseCategoricalAccuracy):
    """Multi-class accuracy (arg-max = label) over examples with a present class id (not -1/NaN).

    Example:

    >>> import numpy as np, tfmtl
    >>> accuracy = tfmtl.tasks.MaskedAccuracy()
    >>> p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    >>> _ = accuracy.update_state(np.array([0, 1, -1]), p)
    >>> float(accuracy.result())
    0.5
    """

    _kind = TaskKind.MULTICLASS

    def __init__(self, name: str = "accuracy", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)


@keras.utils.register_keras_serializable(package="tfmtl")
class MaskedTopKAccuracy(_MaskedMetric, keras.metrics.SparseTopKCategoricalAccuracy):
    """Share of examples whose class id is among the ``k`` most probable classes.

    Example:

    >>> import numpy as np, tfmtl
    >>> top2 = tfmtl.tasks.MaskedTopKAccuracy(k=2)
    >>> p = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])
    >>> _ = top2.update_state(np.array([1, 2]), p)
    >>> float(top2.result())
    0.5
    """

    _kind = TaskKind.MULTICLASS

    def __init__(self, k: int = 5, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(k=k, name=name or f"top{k}_accuracy", **kwargs)


@keras.utils.register_keras_serializable(package="tfmtl")
class MaskedCrossEntropy(_MaskedMetric, keras.metrics.SparseCategoricalCrossentropy):
    """Multi-class log loss over examples with a present class id.

    Example:

    >>> import numpy as np, tfmtl
    >>> logloss = tfmtl.tasks.MaskedCrossEntropy()
    >>> _ = logloss.update_state(np.array([0, -1]), np.array([[0.5, 0.5], [0.9, 0.1]]))
    >>> round(float(logloss.result()), 4)
    0.6931
    """

    _kind = TaskKind.MULTICLASS

    def __init__(self, name: str = "logloss", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)


class _Sums(keras.metrics.Metric):
    """Streaming weighted sums of predictions and labels (binary tasks)."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.predicted = self.add_weight("predicted", initializer="zeros")
        self.observed = self.add_weight("observed", initializer="zeros")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_clean, y_pred, weight = _masked(y_true, y_pred, sample_weight, TaskKind.BINARY)
        self.predicted.assign_add(tf.reduce_sum(tf.reshape(y_pred, [-1]) * weight))
        self.observed.assign_add(tf.reduce_sum(tf.reshape(y_clean, [-1]) * weight))


@keras.utils.register_keras_serializable(package="tfmtl")
class COPC(_Sums):
    """Clicks over predicted clicks: ``sum(labels) / sum(predictions)``; 1.0 is calibrated.

    Below 1 the model over-predicts, above 1 it under-predicts (the convention of
    ad-ranking teams; :class:`CalibrationRatio` is its inverse). Weighted by
    sample weights; missing labels are skipped.

    Example:

    >>> import numpy as np, tfmtl
    >>> copc = tfmtl.tasks.COPC()
    >>> _ = copc.update_state(np.array([1.0, 0.0, 0.0, np.nan]), np.array([0.2, 0.2, 0.1, 0.9]))
    >>> round(float(copc.result()), 4)  # 1 / 0.5
    2.0
    """

    def __init__(self, name: str = "copc", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def result(self) -> tf.Tensor:
        return tf.math.divide_no_nan(self.observed, self.predicted)


@keras.utils.register_keras_serializable(package="tfmtl")
class CalibrationRatio(_Sums):
    """``sum(predictions) / sum(labels)``: average predicted over observed rate; 1.0 is calibrated.

    Example:

    >>> import numpy as np, tfmtl
    >>> ratio = tfmtl.tasks.CalibrationRatio()
    >>> _ = ratio.update_state(np.array([1.0, 0.0, 0.0]), np.array([0.2, 0.2, 0.1]))
    >>> round(float(ratio.result()), 4)
    0.5
    """

    def __init__(self, name: str = "calibration", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def result(self) -> tf.Tensor:
        return tf.math.divide_no_nan(self.predicted, self.observed)


@keras.utils.register_keras_serializable(package="tfmtl")
class ExpectedCalibrationError(keras.metrics.Metric):
    """Expected calibration error of a binary task, streamed over fixed probability bins.

    ``ECE = sum_b (n_b / N) * |mean(p)_b - mean(y)_b|`` over the bins ``b`` of the
    predicted probability (weighted by sample weights; missing labels skipped).
    The default is ``num_bins`` equal-width bins on ``[0, 1]``; for rare events
    (conversion rates of 1%) pass ``boundaries`` that resolve small probabilities,
    e.g. ``np.geomspace(1e-4, 1, 20)[:-1]``.

    Args:
      num_bins: Number of equal-width bins (ignored when ``boundaries`` is given).
      boundaries: Inner bin edges, increasing, inside ``(0, 1)``.

    Example:

    >>> import numpy as np, tfmtl
    >>> ece = tfmtl.tasks.ExpectedCalibrationError(num_bins=2)
    >>> _ = ece.update_state(np.array([0.0, 1.0, 1.0, 1.0]), np.array([0.2, 0.4, 0.9, 0.7]))
    >>> round(float(ece.result()), 4)  # (2/4)|0.3 - 0.5| + (2/4)|0.8 - 1|
    0.2
    """

    def __init__(
        self, num_bins: int = 10, boundaries: Sequence[float] | None = None, name: str = "ece", **kwargs: Any
    ) -> None:
        super().__init__(name=name, **kwargs)
        if boundaries is None:
            if int(num_bins) < 1:
                raise ValueError(f"{name}: num_bins must be >= 1, got {num_bins}")
            boundaries = np.linspace(0.0, 1.0, int(num_bins) + 1)[1:-1]
        edges = [float(b) for b in boundaries]
        if any(not 0.0 < b < 1.0 for b in edges) or any(a >= b for a, b in zip(edges, edges[1:])):
            raise ValueError(f"{name}: boundaries must increase strictly inside (0, 1), got {edges}")
        self.boundaries = edges
        bins = len(edges) + 1
        self.count = self.add_weight("count", shape=[bins], initializer="zeros")
        self.predicted = self.add_weight("predicted", shape=[bins], initializer="zeros")
        self.observed = self.add_weight("observed", shape=[bins], initializer="zeros")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_clean, y_pred, weight = _masked(y_true, y_pred, sample_weight, TaskKind.BINARY)
        p = tf.reshape(y_pred, [-1])
        edges = tf.constant(self.boundaries, tf.float32)
        bucket = tf.searchsorted(edges, p, side="right")  # [B] in 0..bins-1
        bins = len(self.boundaries) + 1
        self.count.assign_add(tf.math.unsorted_segment_sum(weight, bucket, bins))
        self.predicted.assign_add(tf.math.unsorted_segment_sum(p * weight, bucket, bins))
        self.observed.assign_add(tf.math.unsorted_segment_sum(tf.reshape(y_clean, [-1]) * weight, bucket, bins))

    def reset_state(self) -> None:
        for variable in (self.count, self.predicted, self.observed):
            variable.assign(tf.zeros_like(variable))

    def result(self) -> tf.Tensor:
        gaps = tf.reduce_sum(tf.abs(self.predicted - self.observed))
        return tf.math.divide_no_nan(gaps, tf.reduce_sum(self.count))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "boundaries": list(self.boundaries)}


@keras.utils.register_keras_serializable(package="tfmtl")
class GroupAUC(keras.metrics.Metric):
    """Group AUC (GAUC): the AUC within each group (user), averaged weighted by impressions.

    ``GAUC = sum_u n_u AUC_u / sum_u n_u`` over the groups that have both a positive
    and a negative label, where ``n_u`` is the group's number of labelled rows (sum
    of sample weights). Within a group the AUC is exact (Mann-Whitney, ties count
    one half); sample weights only weight groups, and rows with weight 0 are left
    out. It is computed on the whole evaluation set: the metric keeps every
    (group, prediction, label) it sees, so it is an evaluation metric (a
    :class:`~tfmtl.models.MultiTaskModel` does not update it during training)
    and needs a single-replica strategy.

    In a ``MultiTaskModel`` the group of each row is the raw value of the feature
    ``group_by`` (e.g. ``"user_id"``), read from the model inputs.

    Args:
      group_by: The feature holding the group (user) id.

    Example:

    >>> import numpy as np, tfmtl
    >>> gauc = tfmtl.tasks.GroupAUC("user_id")
    >>> users = np.array(["a", "a", "a", "b", "b", "c"])
    >>> labels = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 1.0])
    >>> scores = np.array([0.9, 0.2, 0.95, 0.6, 0.4, 0.5])
    >>> gauc.update_state(labels, scores, groups=users)
    >>> round(float(gauc.result()), 4)  # (3 * 0.5 + 2 * 0.0) / 5; user c has no negative
    0.3
    """

    evaluation_only = True  # a MultiTaskModel updates and logs it in evaluate only

    def __init__(self, group_by: str, name: str = "gauc", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.group_by = group_by
        self.groups = tf.Variable(tf.zeros([0], tf.int64), shape=tf.TensorShape([None]), trainable=False, name="groups")
        self.scores = tf.Variable(tf.zeros([0]), shape=tf.TensorShape([None]), trainable=False, name="scores")
        self.labels = tf.Variable(tf.zeros([0]), shape=tf.TensorShape([None]), trainable=False, name="labels")
        self.weights_ = tf.Variable(tf.zeros([0]), shape=tf.TensorShape([None]), trainable=False, name="weights")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None, groups: Any = None) -> None:
        if groups is None:
            raise ValueError(f"{self.name}: needs the group ids (feature {self.group_by!r}) of each row")
        if tf.distribute.get_strategy().num_replicas_in_sync > 1:
            raise ValueError(f"{self.name}: group AUC needs a single-replica strategy for evaluation")
        y_clean, y_pred, weight = _masked(y_true, y_pred, sample_weight, TaskKind.BINARY)
        groups = tf.reshape(tf.convert_to_tensor(groups), [-1])
        if groups.dtype == tf.string:
            groups = tf.strings.to_hash_bucket_fast(groups, 2**62)
        keep = weight > 0
        self.groups.assign(tf.concat([self.groups, tf.boolean_mask(tf.cast(groups, tf.int64), keep)], 0))
        self.scores.assign(tf.concat([self.scores, tf.boolean_mask(tf.reshape(y_pred, [-1]), keep)], 0))
        self.labels.assign(tf.concat([self.labels, tf.boolean_mask(tf.reshape(y_clean, [-1]), keep)], 0))
        self.weights_.assign(tf.concat([self.weights_, tf.boolean_mask(weight, keep)], 0))

    def result(self) -> tf.Tensor:
        return group_auc(self.groups, self.scores, self.labels, self.weights_)

    def reset_state(self) -> None:
        for variable in (self.groups, self.scores, self.labels, self.weights_):
            variable.assign(tf.zeros([0], variable.dtype))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "group_by": self.group_by}


def group_auc(groups: tf.Tensor, scores: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Impression-weighted mean of per-group AUCs (ties count 1/2); groups without both labels are skipped.

    0 when no group has both labels.
    """
    groups = tf.convert_to_tensor(groups)
    return tf.cond(
        tf.size(groups) > 0, lambda: _group_auc(groups, scores, labels, weights), lambda: tf.constant(0.0)
    )


def _group_auc(groups: tf.Tensor, scores: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    scores = tf.cast(scores, tf.float64)
    labels = tf.cast(labels, tf.float64)
    weights = tf.cast(weights, tf.float64)
    _, group = tf.unique(groups)  # [N] in 0..G-1
    # Sort by group, then score: a stable sort by score followed by a stable sort by group.
    order = tf.argsort(scores, stable=True)
    order = tf.gather(order, tf.argsort(tf.gather(group, order), stable=True))
    group, scores, labels, weights = (tf.gather(t, order) for t in (group, scores, labels, weights))
    n = tf.shape(group)[0]
    position = tf.cast(tf.range(n), tf.float64)
    new_run = tf.concat([[True], (group[1:] != group[:-1]) | (scores[1:] != scores[:-1])], 0)
    run = tf.cumsum(tf.cast(new_run, tf.int32)) - 1  # tie runs within a group
    runs = tf.reduce_max(run) + 1
    mean_position = tf.math.unsorted_segment_mean(position, run, runs)
    num_groups = tf.reduce_max(group) + 1
    group_start = tf.math.unsorted_segment_min(position, group, num_groups)
    rank = tf.gather(mean_position, run) - tf.gather(group_start, group) + 1.0  # 1-based, ties averaged
    positives = tf.math.unsorted_segment_sum(labels, group, num_groups)
    rows = tf.math.unsorted_segment_sum(tf.ones_like(labels), group, num_groups)
    negatives = rows - positives
    rank_sum = tf.math.unsorted_segment_sum(rank * labels, group, num_groups)
    valid = (positives > 0) & (negatives > 0)
    auc = tf.math.divide_no_nan(rank_sum - positives * (positives + 1) / 2, positives * negatives)
    impressions = tf.math.unsorted_segment_sum(weights, group, num_groups) * tf.cast(valid, tf.float64)
    return tf.cast(tf.math.divide_no_nan(tf.reduce_sum(auc * impressions), tf.reduce_sum(impressions)), tf.float32)
