"""Geometric Loss Strategy (Chennupati et al., 2019)."""

from __future__ import annotations

from typing import Any

from tfmtl._compat import keras, tf
from tfmtl.balancing.base import LossBalancer, with_gradient


@keras.utils.register_keras_serializable(package="tfmtl")
class GeometricLossStrategy(LossBalancer):
    """Geometric Loss Strategy, GLS (Chennupati, Sistu, Yogamani and Rawashdeh, CVPR Workshops 2019).

    The total loss is the geometric mean of the ``K`` task losses,
    ``L_GLS = (prod_i L_i) ** (1 / K)``, computed as ``exp(mean_i log L_i)`` with
    each loss clipped at ``floor`` first (a zero loss gives no NaN). Its gradient
    is ``sum_i w_i grad L_i`` with ``w_i = L_GLS / (K L_i)``: a task whose loss is
    small gets a large weight, so no task is left behind because its loss has a
    smaller scale. The loss scale of each task does not matter, only its relative
    change. No parameters and no state beyond the logged weights.

    The logged weight of a task is that effective weight ``w_i`` on its loss's
    gradient (LibMTL logs ``L_i / (K prod_j L_j)`` instead, which is not the
    weight its backward pass applies). :meth:`observe` sets it from each
    training step's losses (averaged over replicas), and :meth:`combine` returns
    :meth:`total` with these weights as its gradient: under ``MirroredStrategy``
    the update is the one a single replica would make (see
    :func:`~tfmtl.balancing.with_gradient`). A loss below ``floor`` gets weight 0
    (the clip cuts its gradient). A task with no labels in a batch has loss 0 there,
    which pulls the geometric mean, and so the whole step, toward 0: with sparse
    labels (a task ``space``), batches large enough to hold every task's labels matter.

    Args:
      floor: Losses are clipped at this positive value before the log.

    Example: ``L = [4, 1]`` gives ``L_GLS = 2`` and weights ``2 / (2 * [4, 1])``.

    >>> import numpy as np, tfmtl
    >>> gls = tfmtl.balancing.GeometricLossStrategy()
    >>> gls.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> losses = np.array([4.0, 1.0], np.float32)
    >>> gls.observe(losses)
    >>> round(float(gls.combine(losses)), 5), gls.task_weights().numpy()
    (2.0, array([0.25, 1.  ], dtype=float32))
    """

    def __init__(self, floor: float = 1e-12, name: str | None = None) -> None:
        super().__init__(name=name)
        if not floor > 0:
            raise ValueError(f"GeometricLossStrategy: floor must be > 0, got {floor}")
        self.floor = float(floor)

    def _clipped(self, losses: tf.Tensor) -> tf.Tensor:
        return tf.maximum(tf.cast(losses, tf.float32), self.floor)

    def total(self, losses: tf.Tensor) -> tf.Tensor:
        """``L_GLS``, the geometric mean of the (clipped) losses ``[K]``, differentiable."""
        return tf.exp(tf.reduce_mean(tf.math.log(self._clipped(losses))))

    def combine(self, losses: tf.Tensor) -> tf.Tensor:
        losses = tf.cast(losses, tf.float32)
        return with_gradient(self.total(losses), losses, self.weights)

    def observe(self, losses: tf.Tensor) -> None:
        """Store the effective weights ``L_GLS / (K L_i)``: the gradient of :meth:`total` at this step's losses."""
        losses = tf.cast(losses, tf.float32)
        above = tf.cast(losses >= self.floor, tf.float32)  # tf.maximum passes no gradient below the floor
        self.weights.assign(above * self.total(losses) / (len(self.tasks) * self._clipped(losses)))

    def get_config(self) -> dict[str, Any]:
        return {"floor": self.floor}
