"""Smooth Tchebycheff scalarization (Lin et al., 2024)."""

from __future__ import annotations

from typing import Any

from tfmtl._compat import keras, tf
from tfmtl.balancing.base import LossBalancer, state_variable, with_gradient

_EPS = 1e-20  # added inside every log, as the reference code does
_NADIR_FLOOR = 1e-12


@keras.utils.register_keras_serializable(package="tfmtl")
class SmoothTchebycheff(LossBalancer):
    """Smooth Tchebycheff scalarization, STCH (Lin, Zhang, Yang, Liu, Wang and Zhang, ICML 2024).

    A smooth version of minimising the worst task's normalised loss. As in the
    authors' multi-task code (and LibMTL's), with epochs counted from 0 and
    ``W = warmup_epochs``:

    * epochs ``e < W``: the total loss is ``sum_i log(L_i + 1e-20)`` (each task's
      gradient divided by its loss);
    * epoch ``e = W``: the same, and the epoch's losses are averaged into the
      nadir vector ``n`` (one mean per task over the epoch's training steps),
      fixed when the epoch ends (clipped at 1e-12, so that a task without labels
      in that epoch gives no division by zero);
    * epochs ``e > W``: with ``l_i = log(L_i / n_i + 1e-20)``, the total loss is
      ``K mu logsumexp_i(l_i / mu)`` (computed with a stop-gradient maximum
      subtracted and added back). As ``mu -> 0`` this tends to ``K max_i l_i``,
      the Tchebycheff scalarization; a large ``mu`` weights all tasks alike.

    So STCH only starts after ``W + 1`` epochs; the epochs are counted by
    ``model.fit`` (``train_on_batch`` alone never leaves the warm-up).

    The logged weight of a task is the effective weight on its loss's gradient:
    ``1 / L_i`` in the warm-up, ``K softmax(l / mu)_i / L_i`` after (a task with
    no labels in a batch has loss 0 there: its weight is then huge, its gradient 0).
    :meth:`observe` sets it from each training step's losses (averaged over
    replicas), and :meth:`combine` returns :meth:`total` with these weights as
    its gradient: under ``MirroredStrategy`` the update is the one a single
    replica would make (see :func:`~tfmtl.balancing.with_gradient`).

    Args:
      mu: Smoothing; smaller is closer to the (non-smooth) maximum.
      warmup_epochs: ``W`` (LibMTL's default 4).

    Example: with nadir ``n = [1, 1]`` and ``L = [2, 0.5]``, ``mu = 0.5`` gives
    ``2 * 0.5 * log(exp(2 log 2) + exp(2 log 0.5))`` and puts most of the weight on
    the worse task.

    >>> import numpy as np, tfmtl
    >>> stch = tfmtl.balancing.SmoothTchebycheff(mu=0.5, warmup_epochs=0)
    >>> stch.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> stch.observe(np.array([1.0, 1.0], np.float32))  # epoch 0 = W: the nadir is this epoch's mean
    >>> stch.on_epoch_end()
    >>> losses = np.array([2.0, 0.5], np.float32)
    >>> stch.observe(losses)
    >>> round(float(stch.combine(losses)), 5), np.round(stch.task_weights().numpy(), 5)
    (1.44692, array([0.94118, 0.23529], dtype=float32))
    """

    def __init__(self, mu: float = 1.0, warmup_epochs: int = 4, name: str | None = None) -> None:
        super().__init__(name=name)
        if not mu > 0 or int(warmup_epochs) != warmup_epochs or warmup_epochs < 0:
            raise ValueError(
                f"SmoothTchebycheff: need mu > 0 and an integer warmup_epochs >= 0, got {mu}, {warmup_epochs}"
            )
        self.mu = float(mu)
        self.warmup_epochs = int(warmup_epochs)

    def _build(self) -> None:
        k = len(self.tasks)
        self.epochs = state_variable(0, "epochs", tf.int64)  # epochs ended so far: the current epoch's index
        self.loss_sums = state_variable(tf.zeros([k]), "loss_sums")
        self.steps = state_variable(0.0, "steps")
        self.nadir = state_variable(tf.ones([k]), "nadir")
        self.ready = state_variable(False, "ready", tf.bool)  # the nadir is fixed: STCH proper

    def _normalised(self, losses: tf.Tensor) -> tf.Tensor:
        # Before the nadir is fixed its value is a placeholder of ones (finite in the branch tf.where drops).
        return tf.math.log(losses / tf.convert_to_tensor(self.nadir) + _EPS)

    def total(self, losses: tf.Tensor) -> tf.Tensor:
        """The total loss of the current phase (warm-up or STCH) for the losses ``[K]``, differentiable."""
        losses = tf.cast(losses, tf.float32)
        warmup = tf.reduce_sum(tf.math.log(losses + _EPS))
        scaled = self._normalised(losses) / self.mu
        top = tf.stop_gradient(tf.reduce_max(scaled))
        smooth = len(self.tasks) * self.mu * (top + tf.math.log(tf.reduce_sum(tf.exp(scaled - top))))
        return tf.where(self.ready, smooth, warmup)

    def combine(self, losses: tf.Tensor) -> tf.Tensor:
        losses = tf.cast(losses, tf.float32)
        return with_gradient(self.total(losses), losses, self.weights)

    def observe(self, losses: tf.Tensor) -> None:
        """Accumulate the nadir in epoch ``W``; store the effective weights of this step's losses."""
        losses = tf.cast(losses, tf.float32)
        collecting = tf.logical_and(tf.logical_not(self.ready), self.epochs >= self.warmup_epochs)
        self.loss_sums.assign_add(tf.where(collecting, losses, tf.zeros_like(losses)))
        self.steps.assign_add(tf.cast(collecting, tf.float32))
        nadir = tf.convert_to_tensor(self.nadir)
        share = tf.nn.softmax(self._normalised(losses) / self.mu)
        # The gradient of total(): d/dL_i of K mu logsumexp(l / mu) is K softmax_i / (L_i + 1e-20 n_i).
        smooth = len(self.tasks) * share / (losses + _EPS * nadir)
        self.weights.assign(tf.where(self.ready, smooth, 1.0 / (losses + _EPS)))

    def on_epoch_end(self) -> None:
        if not bool(self.ready.numpy()) and float(self.steps.numpy()) > 0:
            self.nadir.assign(tf.maximum(self.loss_sums / self.steps, _NADIR_FLOOR))  # a task never seen: no 0 / 0
            self.ready.assign(True)
            self.loss_sums.assign(tf.zeros_like(self.loss_sums))
            self.steps.assign(0.0)
        self.epochs.assign_add(1)

    def get_config(self) -> dict[str, Any]:
        return {"mu": self.mu, "warmup_epochs": self.warmup_epochs}
