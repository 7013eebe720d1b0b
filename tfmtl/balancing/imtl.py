"""IMTL-L, the loss-balance half of Impartial Multi-Task Learning (Liu et al., 2021)."""

from __future__ import annotations

from tfmtl._compat import keras, tf
from tfmtl.balancing.base import LossBalancer


@keras.utils.register_keras_serializable(package="tfmtl")
class IMTLL(LossBalancer):
    """IMTL-L: learned loss scales (Liu, Li, Kuang, Xue, Chen, Yang, Liao and Zhang, ICLR 2021).

    With a learned ``s_i`` per task (``log_scales``, initially 0), the total loss is
    ``sum_i exp(s_i) L_i - s_i``. The ``s_i`` are trained by the model's optimizer,
    like :class:`UncertaintyWeighting`'s: the gradient ``exp(s_i) L_i - 1`` drives
    ``exp(s_i)`` toward ``1 / L_i``, where every scaled loss is 1, so each task
    counts equally whatever its loss scale. Unlike :class:`UncertaintyWeighting`,
    every task kind is treated alike.

    The logged weight of a task is ``exp(s_i)``, the factor on its loss.

    Example: with ``L = [2, 0.5]`` the gradients on ``s`` are ``[1, -0.5]``; the fixed
    point is ``s = -log L``.

    >>> import numpy as np, tfmtl
    >>> imtl = tfmtl.balancing.IMTLL()
    >>> imtl.build([tfmtl.Task.binary("click"), tfmtl.Task.regression("dwell")])
    >>> float(imtl.combine(np.array([2.0, 0.5], np.float32)))  # s = 0: 2 + 0.5
    2.5
    >>> _ = imtl.log_scales.assign(-np.log([2.0, 0.5]))
    >>> round(float(imtl.combine(np.array([2.0, 0.5], np.float32))), 5)  # 1 + log 2 + 1 - log 2
    2.0
    """

    def _build(self) -> None:
        self.log_scales = tf.Variable(tf.zeros([len(self.tasks)]), trainable=True, name="log_scales")

    def task_weights(self) -> tf.Tensor:
        return tf.exp(tf.convert_to_tensor(self.log_scales))

    def combine(self, losses: tf.Tensor) -> tf.Tensor:
        losses = tf.cast(losses, tf.float32)
        return tf.reduce_sum(tf.exp(self.log_scales) * losses - self.log_scales)
