"""GradNorm (Chen et al., 2018)."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl._compat import keras, tf
from tfmtl.balancing.base import GradientBalancer, adam_direction, state_variable


@keras.utils.register_keras_serializable(package="tfmtl")
class GradNorm(GradientBalancer):
    """GradNorm (Chen, Badrinarayanan, Lee and Rabinovich, ICML 2018).

    Each step, with ``g_k`` the gradient of task ``k``'s loss on the shared
    parameters, ``G_k = w_k ||g_k||``, ``G = mean_k G_k``, the relative inverse
    training rate ``r_k = (L_k / L_k(0)) / mean_i (L_i / L_i(0))`` and the target
    ``G * r_k ** alpha`` held constant, the weights take one Adam step on
    ``sum_k |G_k - G r_k^alpha|`` (whose gradient is ``sign(G_k - target_k) ||g_k||``),
    are kept above ``1e-3 K`` and renormalised to sum to ``K``. The model itself
    is updated with the weights of the step's start. ``L_k(0)`` is the first
    step's loss.

    Adam (not plain gradient descent) makes the weights' step size independent
    of the gradient norms' scale, which varies by orders of magnitude between
    models; with plain descent a task with large gradients drives its weight to
    the floor within a few steps.

    Args:
      alpha: Asymmetry: 0 pulls all gradient norms together; larger values
        push harder toward tasks that train slower (paper: 0.12 to 3).
      learning_rate: Adam step size of the weight update.
      layers: Names of the layers whose variables are "the shared parameters"
        (default: every non-embedding variable that two tasks share).

    Example:

    >>> import numpy as np, tfmtl
    >>> gradnorm = tfmtl.balancing.GradNorm(alpha=1.5, learning_rate=0.1)
    >>> gradnorm.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> gradients = np.array([[3.0, 4.0], [0.6, 0.8]], np.float32)  # norms 5 and 1
    >>> combined = gradnorm.balance(gradients, np.array([0.7, 0.2], np.float32))
    >>> combined.numpy()  # sum of w_k g_k with the starting weights (1, 1)
    array([3.6, 4.8], dtype=float32)
    >>> np.round(gradnorm.task_weights().numpy(), 3)  # click's large gradient is turned down by ~lr
    array([0.9, 1.1], dtype=float32)
    """

    def __init__(
        self, alpha: float = 1.5, learning_rate: float = 0.025, layers: Sequence[str] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(layers=layers, name=name)
        if alpha < 0 or not learning_rate > 0:
            raise ValueError(f"GradNorm: need alpha >= 0 and learning_rate > 0, got {alpha}, {learning_rate}")
        self.alpha = float(alpha)
        self.learning_rate = float(learning_rate)

    def _build(self) -> None:
        k = len(self.tasks)
        self.initial_losses = state_variable(tf.zeros([k]), "initial_losses")
        self.started = state_variable(False, "started", tf.bool)
        self.first_moment = state_variable(tf.zeros([k]), "first_moment")
        self.second_moment = state_variable(tf.zeros([k]), "second_moment")
        self.updates = state_variable(0.0, "updates")

    def balance(self, gradients: tf.Tensor, losses: tf.Tensor) -> tf.Tensor:
        gradients = tf.convert_to_tensor(gradients, tf.float32)
        losses = tf.convert_to_tensor(losses, tf.float32)
        weights = tf.convert_to_tensor(self.weights)
        initial = tf.where(self.started, self.initial_losses, losses)
        self.initial_losses.assign(initial)
        self.started.assign(True)
        norms = tf.norm(gradients, axis=1)  # ||g_k||
        weighted_norms = weights * norms  # G_k
        inverse_rate = tf.math.divide_no_nan(losses, initial)
        relative = tf.math.divide_no_nan(inverse_rate, tf.reduce_mean(inverse_rate))
        target = tf.stop_gradient(tf.reduce_mean(weighted_norms) * relative**self.alpha)
        grad = tf.sign(weighted_norms - target) * norms  # d/dw_k of sum_k |G_k - target_k|
        adam = adam_direction(grad, self.first_moment, self.second_moment, self.updates)
        total = tf.reduce_sum(weights)
        updated = tf.maximum(weights - self.learning_rate * adam, 1e-3 * total)
        self.weights.assign(updated * total / tf.reduce_sum(updated))
        return tf.linalg.matvec(gradients, weights, transpose_a=True)  # [P]

    def loss_weights(self) -> tf.Tensor:
        """GradNorm's weights scale the losses too (the towers' gradients), as in the paper."""
        return tf.convert_to_tensor(self.weights)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha, "learning_rate": self.learning_rate}
