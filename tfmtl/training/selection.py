"""A weighted combination of task metrics, for early stopping and best-model selection."""

from __future__ import annotations

from typing import Any, Mapping

from tfmtl._compat import keras


class CombinedMetric(keras.callbacks.Callback):
    """Adds ``name = sum(weight * logs[key])`` to the epoch logs, for ``EarlyStopping``/``ModelCheckpoint``.

    Put it before the callbacks that read it (:func:`tfmtl.training.fit` does):
    Keras hands the same logs dict to every callback in turn, so
    ``EarlyStopping(monitor="val_score", mode="max", restore_best_weights=True)``
    stops on, and keeps the weights of the best, weighted score; ``ModelCheckpoint(...,
    monitor="val_score", mode="max", save_best_only=True)`` keeps the best model on disk.
    The score also appears in ``History``.

    Args:
      weights: Log key (e.g. ``"val_click/auc"``) to weight.
      name: Log key of the combination.

    Example:

    >>> import tfmtl
    >>> score = tfmtl.training.CombinedMetric({"val_click/auc": 0.7, "val_conversion/auc": 0.3})
    >>> logs = {"val_click/auc": 0.8, "val_conversion/auc": 0.6}
    >>> score.on_epoch_end(0, logs)
    >>> round(logs["val_score"], 6)
    0.74
    """

    def __init__(self, weights: Mapping[str, float], name: str = "val_score") -> None:
        super().__init__()
        if not weights:
            raise ValueError("CombinedMetric needs at least one {log key: weight}")
        self.weights = {str(key): float(value) for key, value in weights.items()}
        self.name = name

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if logs is None:
            return
        missing = sorted(key for key in self.weights if key not in logs)
        if missing:
            raise KeyError(
                f"CombinedMetric {self.name!r}: no {missing} in the epoch logs (is validation_data given?); "
                f"logs: {sorted(logs)}"
            )
        logs[self.name] = float(sum(weight * float(logs[key]) for key, weight in self.weights.items()))
