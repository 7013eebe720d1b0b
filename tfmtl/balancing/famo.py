"""Fast Adaptive Multitask Optimization (Liu et al., 2023)."""

from __future__ import annotations

from typing import Any

from tfmtl._compat import keras, tf
from tfmtl.balancing.base import LossBalancer, adam_direction, state_variable, with_gradient

_EPS = 1e-8  # added to every loss before the log, as the reference code does


@keras.utils.register_keras_serializable(package="tfmtl")
class FAMO(LossBalancer):
    """Fast Adaptive Multitask Optimization, FAMO (Liu, Feng, Stone and Liu, NeurIPS 2023).

    FAMO decreases every task's loss at about the same *rate* (in log space),
    from the losses alone: no per-task gradients, one extra forward pass per step.
    With logits ``xi`` (initially 0), ``z = softmax(xi)`` and the loss floors
    ``L* = 0``, each training step:

    1. trains the model on ``sum_i z_i log(D_i) / c`` with ``D_i = L_i - L*_i + 1e-8``
       and ``c = sum_i z_i / D_i`` (held constant): the effective weight on
       ``grad L_i`` is ``z_i / (c D_i)``, and these weights sum to 1;
    2. after the model's update, computes the same batch's losses ``L'`` again
       (``needs_updated_losses``: the model calls :meth:`after_update`) and the
       log-loss decrease ``delta_i = log(L_i - L*_i + 1e-8) - log(L'_i - L*_i + 1e-8)``
       (that forward pass runs in training mode, as the reference code's does: dropout
       draws a new mask, which adds noise to ``delta``);
    3. takes one Adam step (bias-corrected; ``beta = (0.9, 0.999)``, ``eps = 1e-8``)
       on ``xi`` with the gradient ``z * (delta - z . delta) + gamma * xi``: a task
       whose loss fell more than the others' loses weight.

    ``gamma * xi`` is coupled L2 decay, as PyTorch's Adam ``weight_decay`` (the
    reference code's) applies it. The defaults are LibMTL's (``w_lr = 0.025``,
    ``gamma = 1e-3``); the authors' code uses ``gamma = 0.01`` and also clips the
    shared parameters' gradient norm at 1.0 before the model's update, which
    tfmtl does not do (an optimizer's ``global_clipnorm`` clips all the model's
    gradients instead).

    The logged weight of a task is its effective weight ``z_i / (c D_i)``;
    the model logs it times the task's static ``loss_weight``. :meth:`observe`
    sets it from each training step's losses (averaged over replicas), and
    :meth:`combine` returns :meth:`total` with these weights as its gradient:
    under ``MirroredStrategy`` the update is the one a single replica would make
    (see :func:`~tfmtl.balancing.with_gradient`). A task whose loss is 0 (say,
    no label in the batch) takes almost all the weight of that step, as in the
    reference code.

    The floors ``L*`` are a state variable (``floors``, zeros); assign known
    lowest losses to it to measure progress from those instead.

    Args:
      learning_rate: Adam step size of the logits.
      gamma: Coupled L2 decay of the logits.

    Example: losses ``[2, 0.5]``, then ``[1.8, 0.5]`` on the same batch after the
    update. The task whose loss fell loses weight.

    >>> import numpy as np, tfmtl
    >>> famo = tfmtl.balancing.FAMO(gamma=0.0)
    >>> famo.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> losses = np.array([2.0, 0.5], np.float32)
    >>> famo.observe(losses)
    >>> np.round(famo.task_weights().numpy(), 5)  # z = [0.5, 0.5], c = 1.25
    array([0.2, 0.8], dtype=float32)
    >>> famo.after_update(losses, np.array([1.8, 0.5], np.float32))
    >>> np.round(famo.logits.numpy(), 5)  # Adam's first step: lr * sign(gradient)
    array([-0.025,  0.025], dtype=float32)
    """

    needs_updated_losses = True

    def __init__(self, learning_rate: float = 0.025, gamma: float = 1e-3, name: str | None = None) -> None:
        super().__init__(name=name)
        if not learning_rate > 0 or gamma < 0:
            raise ValueError(f"FAMO: need learning_rate > 0 and gamma >= 0, got {learning_rate}, {gamma}")
        self.learning_rate = float(learning_rate)
        self.gamma = float(gamma)

    def _build(self) -> None:
        k = len(self.tasks)
        self.logits = state_variable(tf.zeros([k]), "logits")  # xi
        self.floors = state_variable(tf.zeros([k]), "floors")  # L*
        self.first_moment = state_variable(tf.zeros([k]), "first_moment")
        self.second_moment = state_variable(tf.zeros([k]), "second_moment")
        self.updates = state_variable(0.0, "updates")

    def _shifted(self, losses: tf.Tensor) -> tf.Tensor:
        return tf.cast(losses, tf.float32) - tf.convert_to_tensor(self.floors) + _EPS  # D

    def _weights(self, shifted: tf.Tensor) -> tf.Tensor:
        z = tf.nn.softmax(tf.convert_to_tensor(self.logits))
        return z / (tf.reduce_sum(z / shifted) * shifted)  # z_i / (c D_i)

    def total(self, losses: tf.Tensor) -> tf.Tensor:
        """``sum_i z_i log(D_i) / c`` for the losses ``[K]``, differentiable (``c`` held constant)."""
        shifted = self._shifted(losses)
        return tf.reduce_sum(tf.stop_gradient(self._weights(shifted) * shifted) * tf.math.log(shifted))  # z_i / c

    def combine(self, losses: tf.Tensor) -> tf.Tensor:
        losses = tf.cast(losses, tf.float32)
        return with_gradient(self.total(losses), losses, self.weights)

    def observe(self, losses: tf.Tensor) -> None:
        """Store the effective weights ``z_i / (c D_i)``: the gradient of :meth:`total` at this step's losses."""
        self.weights.assign(self._weights(self._shifted(losses)))

    def after_update(self, losses: tf.Tensor, updated_losses: tf.Tensor) -> None:
        """One Adam step on the logits from the batch's log-loss decrease ``delta``."""
        delta = tf.math.log(self._shifted(losses)) - tf.math.log(self._shifted(updated_losses))
        logits = tf.convert_to_tensor(self.logits)
        z = tf.nn.softmax(logits)
        grad = z * (delta - tf.reduce_sum(z * delta)) + self.gamma * logits  # softmax's Jacobian^T delta, + L2
        adam = adam_direction(grad, self.first_moment, self.second_moment, self.updates)
        self.logits.assign(logits - self.learning_rate * adam)

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "gamma": self.gamma}
