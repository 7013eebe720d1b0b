"""Keras metrics that skip examples whose label is missing (NaN)."""

from __future__ import annotations

from typing import Any

from tfmtl._compat import keras, tf
from tfmtl.tasks.losses import label_mask


class _MaskedMetric:
    """Mixin: turn NaN labels into zero sample weights before the Keras update."""

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        y_pred = tf.reshape(tf.cast(y_pred, tf.float32), [-1, 1])  # [B, 1]
        y_true = tf.reshape(tf.cast(y_true, tf.float32), [-1, 1])  # [B, 1]
        y_clean, mask = label_mask(y_true)
        weight = tf.reshape(mask, [-1])  # [B]
        if sample_weight is not None:
            weight *= tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
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
