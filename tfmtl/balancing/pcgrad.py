"""PCGrad: projecting conflicting gradients (Yu et al., 2020)."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl._compat import keras, tf
from tfmtl.balancing.base import GradientBalancer, counter_uniform, state_variable


@keras.utils.register_keras_serializable(package="tfmtl")
class PCGrad(GradientBalancer):
    """Projecting Conflicting Gradients (Yu et al., NeurIPS 2020).

    For each task ``i`` (with gradient ``g_i`` of its statically weighted loss on the
    shared parameters) and every other task ``j`` in a random order: if
    ``g_i . g_j < 0``, ``g_i <- g_i - (g_i . g_j) / ||g_j||^2 g_j``; the shared
    update is the sum of the projected gradients. Task-specific parameters get
    their task's plain gradient. Weights stay at 1 (logged for uniformity).

    Args:
      layers: Names of the layers whose variables are "the shared parameters"
        (default: every non-embedding variable that two tasks share).
      seed: Seed of the random task order.

    Example:

    >>> import numpy as np, tfmtl
    >>> pcgrad = tfmtl.balancing.PCGrad()
    >>> pcgrad.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> conflicting = np.array([[1.0, 0.0], [-1.0, 1.0]], np.float32)
    >>> pcgrad.balance(conflicting, np.zeros(2, np.float32)).numpy()  # [0.5, 0.5] + [0, 1]
    array([0.5, 1.5], dtype=float32)
    """

    def __init__(self, layers: Sequence[str] | None = None, seed: int = 0, name: str | None = None) -> None:
        super().__init__(layers=layers, name=name)
        self.seed = int(seed)

    def _build(self) -> None:
        self.step = state_variable(0, "step", tf.int64)

    def balance(self, gradients: tf.Tensor, losses: tf.Tensor) -> tf.Tensor:
        gradients = tf.convert_to_tensor(gradients, tf.float32)
        k = len(self.tasks)
        order = tf.argsort(counter_uniform(self.seed, self.step, k))
        self.step.assign_add(1)
        return project_conflicting(gradients, order)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "seed": self.seed}


def project_conflicting(gradients: tf.Tensor, order: Any = None) -> tf.Tensor:
    """PCGrad's update: each task's gradient projected off the others it conflicts with, summed.

    Args:
      gradients: ``[K, P]`` per-task gradients.
      order: The order ``[K]`` in which the other tasks are visited (default 0..K-1).

    Example:

    >>> import numpy as np
    >>> from tfmtl.balancing import project_conflicting
    >>> project_conflicting(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)).numpy()  # no conflict: plain sum
    array([1., 1.], dtype=float32)
    """
    gradients = tf.convert_to_tensor(gradients, tf.float32)
    k = gradients.shape[0]
    order = tf.range(k) if order is None else tf.convert_to_tensor(order, tf.int32)
    squared_norms = tf.reduce_sum(gradients * gradients, axis=1)  # [K]
    projected = []
    for i in range(k):
        g = gradients[i]
        for position in range(k):
            j = order[position]
            other = tf.gather(gradients, j)
            dot = tf.reduce_sum(g * other)
            conflict = tf.logical_and(tf.not_equal(j, i), dot < 0)
            coefficient = tf.where(conflict, tf.math.divide_no_nan(dot, tf.gather(squared_norms, j)), 0.0)
            g = g - coefficient * other
        projected.append(g)
    return tf.add_n(projected)
