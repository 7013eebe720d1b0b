"""Dynamic Weight Average (Liu et al., 2019)."""

from __future__ import annotations

from typing import Any

from tfmtl._compat import keras, tf
from tfmtl.balancing.base import LossBalancer, state_variable


@keras.utils.register_keras_serializable(package="tfmtl")
class DynamicWeightAverage(LossBalancer):
    """Dynamic Weight Average (Liu, Johns and Davison, CVPR 2019).

    ``w_k(t) = K * exp(r_k / T) / sum_i exp(r_i / T)`` with
    ``r_k = L_k(t-1) / L_k(t-2)``, the ratio of task ``k``'s mean training loss
    in the last two epochs; a task whose loss falls slowly gets more weight. The
    first two epochs use weight 1. Only the losses are needed: as cheap as fixed
    weights.

    Args:
      temperature: ``T``; larger means weights closer to 1.

    Example:

    >>> import numpy as np, tfmtl
    >>> dwa = tfmtl.balancing.DynamicWeightAverage(temperature=2.0)
    >>> dwa.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> for epoch_losses in ([1.0, 1.0], [0.5, 0.9]):  # click's loss halves, buy's barely moves
    ...     dwa.observe(np.array(epoch_losses, np.float32))
    ...     dwa.on_epoch_end()
    >>> np.round(dwa.task_weights().numpy(), 4)  # 2 * softmax([0.5, 0.9] / 2)
    array([0.9003, 1.0997], dtype=float32)
    """

    def __init__(self, temperature: float = 2.0, name: str | None = None) -> None:
        super().__init__(name=name)
        if not temperature > 0:
            raise ValueError(f"DynamicWeightAverage: temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def _build(self) -> None:
        k = len(self.tasks)
        self.loss_sums = state_variable(tf.zeros([k]), "loss_sums")
        self.steps = state_variable(0.0, "steps")
        self.history = state_variable(tf.zeros([2, k]), "history")  # mean losses of the last two epochs
        self.epochs = state_variable(0, "epochs", tf.int64)

    def observe(self, losses: tf.Tensor) -> None:
        """Add one step's per-task losses to the running epoch means."""
        self.loss_sums.assign_add(tf.cast(losses, tf.float32))
        self.steps.assign_add(1.0)

    def on_epoch_end(self) -> None:
        if float(self.steps.numpy()) == 0.0:
            return
        means = self.loss_sums / self.steps
        self.history.assign(tf.stack([self.history[1], means]))
        self.epochs.assign_add(1)
        if int(self.epochs.numpy()) >= 2:
            ratio = tf.math.divide_no_nan(self.history[1], self.history[0])
            self.weights.assign(len(self.tasks) * tf.nn.softmax(ratio / self.temperature))
        self.loss_sums.assign(tf.zeros_like(self.loss_sums))
        self.steps.assign(0.0)

    def get_config(self) -> dict[str, Any]:
        return {"temperature": self.temperature}
