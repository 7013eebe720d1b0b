"""Uncertainty weighting (Kendall et al., 2018)."""

from __future__ import annotations

from tfmtl._compat import keras, tf
from tfmtl.balancing.base import LossBalancer
from tfmtl.tasks.kinds import TaskKind


@keras.utils.register_keras_serializable(package="tfmtl")
class UncertaintyWeighting(LossBalancer):
    """Learned homoscedastic uncertainty per task (Kendall, Gal and Cipolla, CVPR 2018).

    With a learned ``s_k = log sigma_k^2`` per task (initially 0):

    * regression tasks: ``0.5 * exp(-s_k) * L_k + 0.5 * s_k`` (their eq. 7);
    * binary and multi-class tasks: ``exp(-s_k) * L_k + 0.5 * s_k`` (their eq. 10).

    The logged weight of a task is its factor ``0.5 * exp(-s_k)`` or ``exp(-s_k)``.
    The ``s_k`` are trained by the model's optimizer.

    Example:

    >>> import numpy as np, tfmtl
    >>> balancer = tfmtl.balancing.UncertaintyWeighting()
    >>> balancer.build([tfmtl.Task.binary("click"), tfmtl.Task.regression("dwell")])
    >>> float(balancer.combine(np.array([0.5, 2.0], np.float32)))  # 1 * 0.5 + 0.5 * 2.0, s = 0
    1.5
    """

    def _build(self) -> None:
        self.log_variances = tf.Variable(tf.zeros([len(self.tasks)]), trainable=True, name="log_variances")
        self._factors = tf.constant(
            [0.5 if task.kind is TaskKind.REGRESSION else 1.0 for task in self.tasks], tf.float32
        )

    def task_weights(self) -> tf.Tensor:
        return self._factors * tf.exp(-self.log_variances)

    def combine(self, losses: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(self.task_weights() * losses + 0.5 * self.log_variances)
