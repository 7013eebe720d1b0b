"""Metrics of a decision: precision, recall and F1 at a threshold, the best-F1 threshold, and macro-F1.

Binary tasks decide "positive" when the predicted probability is at least the task's
``threshold`` (:attr:`~tfmtl.Task.threshold`, 0.5 by default). Every metric here streams
weighted counts (sample weights, missing labels skipped, as the other task metrics), so
it is exact over a whole ``evaluate`` and agrees with scikit-learn's weighted scores.

They are evaluation metrics (``evaluation_only``): in a ``MultiTaskModel``, ``evaluate``
and validation update and log them; the training steps do not compute them.

* :class:`Precision`, :class:`Recall`, :class:`F1`: ``tp / (tp + fp)``, ``tp / (tp + fn)``
  and ``2 tp / (2 tp + fp + fn)`` at the threshold (0 when undefined).
* :class:`BestF1Threshold`: the threshold, among ``num_thresholds`` evenly spaced in
  ``[0, 1)``, where F1 is highest (``report="f1"``: that F1).
* :class:`MacroF1`: multi-class F1 per class (the arg-max class is the decision),
  averaged over the classes present in the labels or the predictions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.tasks.kinds import TaskKind
from tfmtl.tasks.metrics import _masked


def check_threshold(value: Any, where: str) -> float:
    """``value`` as a float in ``(0, 1)``, else a ValueError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0.0 < float(value) < 1.0:
        raise ValueError(f"{where}: threshold must be a number in (0, 1), got {value!r}")
    return float(value)


class _Counts(keras.metrics.Metric):
    """Weighted true positives, false positives and false negatives at one threshold (binary tasks)."""

    evaluation_only = True

    def __init__(self, threshold: float = 0.5, name: str = "", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.threshold = check_threshold(threshold, f"metric {name!r}")
        self.tp = self.add_weight("tp", initializer="zeros")
        self.fp = self.add_weight("fp", initializer="zeros")
        self.fn = self.add_weight("fn", initializer="zeros")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y, p, w = _masked(y_true, y_pred, sample_weight, TaskKind.BINARY)
        y, p = tf.reshape(y, [-1]), tf.reshape(p, [-1])
        decided = tf.cast(p >= self.threshold, tf.float32)
        self.tp.assign_add(tf.reduce_sum(w * y * decided))
        self.fp.assign_add(tf.reduce_sum(w * (1.0 - y) * decided))
        self.fn.assign_add(tf.reduce_sum(w * y * (1.0 - decided)))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "threshold": self.threshold}


@keras.utils.register_keras_serializable(package="tfmtl")
class Precision(_Counts):
    """Share of the rows decided positive (``p >= threshold``) that are positive.

    Example:

    >>> import numpy as np, tfmtl
    >>> m = tfmtl.tasks.Precision(threshold=0.5)
    >>> _ = m.update_state(np.array([1.0, 0.0, 1.0, np.nan]), np.array([0.9, 0.6, 0.2, 0.9]))
    >>> float(m.result())  # 1 of the 2 rows at >= 0.5 (the missing label is skipped)
    0.5
    """

    def __init__(self, threshold: float = 0.5, name: str = "precision", **kwargs: Any) -> None:
        super().__init__(threshold, name=name, **kwargs)

    def result(self) -> tf.Tensor:
        return tf.math.divide_no_nan(self.tp, self.tp + self.fp)


@keras.utils.register_keras_serializable(package="tfmtl")
class Recall(_Counts):
    """Share of the positive rows decided positive (``p >= threshold``).

    Example:

    >>> import numpy as np, tfmtl
    >>> m = tfmtl.tasks.Recall(threshold=0.5)
    >>> _ = m.update_state(np.array([1.0, 0.0, 1.0]), np.array([0.9, 0.6, 0.2]))
    >>> float(m.result())
    0.5
    """

    def __init__(self, threshold: float = 0.5, name: str = "recall", **kwargs: Any) -> None:
        super().__init__(threshold, name=name, **kwargs)

    def result(self) -> tf.Tensor:
        return tf.math.divide_no_nan(self.tp, self.tp + self.fn)


@keras.utils.register_keras_serializable(package="tfmtl")
class F1(_Counts):
    """Harmonic mean of precision and recall at the threshold: ``2 tp / (2 tp + fp + fn)``.

    Example:

    >>> import numpy as np, tfmtl
    >>> m = tfmtl.tasks.F1(threshold=0.5)
    >>> _ = m.update_state(np.array([1.0, 0.0, 1.0]), np.array([0.9, 0.6, 0.2]))
    >>> float(m.result())  # 2 / (2 + 1 + 1)
    0.5
    """

    def __init__(self, threshold: float = 0.5, name: str = "f1", **kwargs: Any) -> None:
        super().__init__(threshold, name=name, **kwargs)

    def result(self) -> tf.Tensor:
        return tf.math.divide_no_nan(2.0 * self.tp, 2.0 * self.tp + self.fp + self.fn)


@keras.utils.register_keras_serializable(package="tfmtl")
class BestF1Threshold(keras.metrics.Metric):
    """The decision threshold with the highest F1 over the data seen, or (``report="f1"``) that F1.

    The candidates are ``num_thresholds`` thresholds ``k / num_thresholds`` in ``[0, 1)``;
    the metric keeps, per candidate bin, the weighted positives and negatives, so the
    F1 of every candidate is exact for the data seen. Ties go to the lowest threshold.

    Args:
      num_thresholds: Candidate thresholds (resolution ``1 / num_thresholds``).
      report: ``"threshold"`` (default) or ``"f1"``.

    Example:

    >>> import numpy as np, tfmtl
    >>> m = tfmtl.tasks.BestF1Threshold(num_thresholds=10)
    >>> _ = m.update_state(np.array([1.0, 0.0, 1.0, 0.0]), np.array([0.9, 0.6, 0.35, 0.1]))
    >>> round(float(m.result()), 2)  # F1 0.8 at 0.2 and 0.3 (both positives, one false positive); the lowest
    0.2
    """

    evaluation_only = True

    def __init__(self, num_thresholds: int = 1000, report: str = "threshold", name: str = "best_f1_threshold",
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int) or num_thresholds < 2:
            raise ValueError(f"metric {name!r}: num_thresholds must be an int >= 2, got {num_thresholds!r}")
        if report not in ("threshold", "f1"):
            raise ValueError(f"metric {name!r}: report must be 'threshold' or 'f1', got {report!r}")
        self.num_thresholds, self.report = num_thresholds, report
        self.positives = self.add_weight("positives", shape=[num_thresholds], initializer="zeros")
        self.negatives = self.add_weight("negatives", shape=[num_thresholds], initializer="zeros")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y, p, w = _masked(y_true, y_pred, sample_weight, TaskKind.BINARY)
        y, p = tf.reshape(y, [-1]), tf.reshape(p, [-1])
        # bin k holds p in [k / T, (k + 1) / T): decided positive at every threshold j / T with j <= k
        k = tf.clip_by_value(tf.cast(tf.floor(p * self.num_thresholds), tf.int32), 0, self.num_thresholds - 1)
        self.positives.assign_add(tf.math.unsorted_segment_sum(w * y, k, self.num_thresholds))
        self.negatives.assign_add(tf.math.unsorted_segment_sum(w * (1.0 - y), k, self.num_thresholds))

    def reset_state(self) -> None:
        for variable in (self.positives, self.negatives):
            variable.assign(tf.zeros_like(variable))

    def result(self) -> tf.Tensor:
        tp = tf.cumsum(self.positives, reverse=True)  # [T]: positives with p >= j / T
        fp = tf.cumsum(self.negatives, reverse=True)
        fn = tf.reduce_sum(self.positives) - tp
        f1 = tf.math.divide_no_nan(2.0 * tp, 2.0 * tp + fp + fn)
        best = tf.argmax(f1, output_type=tf.int32)  # the first maximum: the lowest threshold
        if self.report == "f1":
            return f1[best]
        # No positive seen: every threshold scores F1 = 0, and none is best (NaN, not 0).
        threshold = tf.cast(best, tf.float32) / float(self.num_thresholds)
        return tf.where(tf.reduce_sum(self.positives) > 0, threshold, float("nan"))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_thresholds": self.num_thresholds, "report": self.report}


@keras.utils.register_keras_serializable(package="tfmtl")
class MacroF1(keras.metrics.Metric):
    """Multi-class F1 per class, averaged over the classes present in the labels or the predictions.

    The decision is the arg-max class of the predicted probabilities. Per class ``c``,
    ``F1_c = 2 tp_c / (2 tp_c + fp_c + fn_c)`` from weighted counts (missing labels,
    ``-1``, skipped); the mean is over classes with ``2 tp_c + fp_c + fn_c > 0``, as
    scikit-learn's ``f1_score(average="macro")``.

    Example:

    >>> import numpy as np, tfmtl
    >>> m = tfmtl.tasks.MacroF1(num_classes=3)
    >>> probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    >>> _ = m.update_state(np.array([0, 1, 1, -1]), probs)  # class 0: F1 2/3, class 1: 2/3; class 2 absent
    >>> round(float(m.result()), 4)
    0.6667
    """

    evaluation_only = True

    def __init__(self, num_classes: int, name: str = "macro_f1", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.tp = self.add_weight("tp", shape=[self.num_classes], initializer="zeros")
        self.fp = self.add_weight("fp", shape=[self.num_classes], initializer="zeros")
        self.fn = self.add_weight("fn", shape=[self.num_classes], initializer="zeros")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y, p, w = _masked(y_true, y_pred, sample_weight, TaskKind.MULTICLASS)
        truth = tf.one_hot(tf.cast(tf.reshape(y, [-1]), tf.int32), self.num_classes)  # [B, C]
        decided = tf.one_hot(tf.argmax(p, axis=-1, output_type=tf.int32), self.num_classes)  # [B, C]
        w = tf.reshape(w, [-1, 1])
        self.tp.assign_add(tf.reduce_sum(w * truth * decided, axis=0))
        self.fp.assign_add(tf.reduce_sum(w * (1.0 - truth) * decided, axis=0))
        self.fn.assign_add(tf.reduce_sum(w * truth * (1.0 - decided), axis=0))

    def reset_state(self) -> None:
        for variable in (self.tp, self.fp, self.fn):
            variable.assign(tf.zeros_like(variable))

    def result(self) -> tf.Tensor:
        support = 2.0 * self.tp + self.fp + self.fn
        present = tf.cast(support > 0, tf.float32)
        f1 = tf.math.divide_no_nan(2.0 * self.tp, support)
        return tf.math.divide_no_nan(tf.reduce_sum(f1 * present), tf.reduce_sum(present))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_classes": self.num_classes}


__all__ = ["BestF1Threshold", "F1", "MacroF1", "Precision", "Recall", "check_threshold"]
