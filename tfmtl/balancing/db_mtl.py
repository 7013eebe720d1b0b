"""DB-MTL: dual balancing of loss scales and gradient magnitudes (Lin et al., 2023)."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl._compat import keras, tf
from tfmtl.balancing.base import GradientBalancer, state_variable


@keras.utils.register_keras_serializable(package="tfmtl")
class DBMTL(GradientBalancer):
    """DB-MTL (Lin, Jiang, Ye, Zhang, Chen, Chen, Liu and Kwok, "Dual-Balancing for Multi-Task Learning",
    arXiv 2308.12029; LibMTL's ``DB_MTL.py``).

    Two balancings. The *loss scales*: every task trains on ``log(L_i + 1e-8)`` instead
    of ``L_i``, so a task's gradient is ``h_i = g_i / (L_i + 1e-8)`` (``g_i``: its gradient
    of its statically weighted loss), whatever the loss's unit; this holds for the
    towers too. The *gradient magnitudes*: on the shared parameters, with ``t`` the
    step (from 1)::

        beta_t = beta / t^sigma
        G_i   <- beta_t G_i + (1 - beta_t) h_i          (G: a [K, P] moving average from 0, no bias correction)
        alpha_i = max_j ||G_j|| / (||G_i|| + 1e-8)
        d = sum_i alpha_i G_i                           (every averaged gradient scaled to the largest norm)

    The update is the moving average, not a combination of this step's gradients, so it
    works at the shared parameters only: ``compile(gradients_at="representation")`` is
    refused, as LibMTL refuses ``rep_grad``. The buffer ``G`` holds ``K`` values per
    candidate shared parameter (``compile`` sizes it); with ``layers=`` only those
    layers' variables count.

    Static loss weights cancel in the log (``d log(s L) = dL / L``), as in GLS: a task's
    ``loss_weight`` does not change DB-MTL's update. A task with no label in the batch
    (loss 0), and a step whose gradients overflowed (mixed precision; the optimizer skips
    it), leave the task's average, and the step count, as they were.

    The logged ``<task>/weight`` is the task's coefficient on the gradient of its
    unweighted loss this step, ignoring the moving average: ``(1 - beta_t) alpha_i / L_i``
    (the static weight cancels, as above).

    Args:
      beta: The moving average's factor in ``[0, 1)`` (LibMTL's ``DB_beta``: 0.9).
      beta_sigma: Its decay exponent ``sigma >= 0`` (LibMTL's ``DB_beta_sigma``: 0).
      layers: Names of the layers whose variables are "the shared parameters"
        (default: every non-embedding variable that two tasks share).

    Example: the worked example, two steps with the same gradients.

    >>> import numpy as np, tfmtl
    >>> from tfmtl.balancing.db_mtl import DBMTL
    >>> db = DBMTL()
    >>> db.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> db.build_shared(2)  # compile does this: two shared parameters
    >>> gradients, losses = np.array([[2.0, 0.0], [-1.5, 2.0]], np.float32), np.array([2.0, 0.5], np.float32)
    >>> np.round(db.balance(gradients, losses).numpy(), 4)  # G = 0.1 h, norms [0.1, 0.5]: alpha = [5, 1]
    array([0.2, 0.4], dtype=float32)
    >>> np.round(db.balance(gradients, losses).numpy(), 4)  # G = 0.19 h
    array([0.38, 0.76], dtype=float32)
    """

    def __init__(
        self, beta: float = 0.9, beta_sigma: float = 0.0, layers: Sequence[str] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(layers=layers, name=name)
        if not 0.0 <= float(beta) < 1.0:
            raise ValueError(f"DBMTL: beta must be in [0, 1), got {beta}")
        if float(beta_sigma) < 0.0:
            raise ValueError(f"DBMTL: beta_sigma must be >= 0, got {beta_sigma}")
        self.beta = float(beta)
        self.beta_sigma = float(beta_sigma)
        self.averages: tf.Variable | None = None

    #: Where it works (see the class docstring).
    levels = ("parameters",)

    def _build(self) -> None:
        self.step = state_variable(0.0, "step")
        self.inverse_losses = state_variable(tf.ones([len(self.tasks)]), "inverse_losses")

    def build_shared(self, size: int) -> None:
        if self.averages is not None:
            if self.averages.shape[1] == size:
                return  # compiled again for the same model: keep the state
            raise ValueError(f"DBMTL is already in use by a model with {self.averages.shape[1]} candidate shared "
                             f"parameters, not {size}; make a new one")
        with self.name_scope:
            self.averages = state_variable(tf.zeros([len(self.tasks), size]), "averages")

    def observe(self, losses: tf.Tensor) -> None:
        self.inverse_losses.assign(1.0 / (tf.convert_to_tensor(losses, tf.float32) + 1e-8))

    def loss_weights(self) -> tf.Tensor:
        return tf.stop_gradient(tf.convert_to_tensor(self.inverse_losses))  # d log(L) = dL / L

    def balance(self, gradients: tf.Tensor, losses: tf.Tensor) -> tf.Tensor:
        if self.averages is None:
            raise ValueError("DBMTL: build_shared(size) was not called (compile does it)")
        gradients = tf.convert_to_tensor(gradients, tf.float32)
        size, total = gradients.shape[1], self.averages.shape[1]
        if size > total:
            raise ValueError(f"DBMTL: {size} shared parameters, but its buffer was sized for {total}")
        losses = tf.convert_to_tensor(losses, tf.float32)
        present = losses > 0  # [K]: a task without labels in the batch (or a skipped step: all zeros) waits
        inverse = 1.0 / (losses + 1e-8)
        step = self.step + tf.cast(tf.reduce_any(present), tf.float32)
        self.step.assign(step)
        beta = self.beta / tf.maximum(step, 1.0)**self.beta_sigma
        previous = tf.convert_to_tensor(self.averages)[:, :size]  # (a ShardedVariable under ParameterServerStrategy)
        averages = tf.where(present[:, None], beta * previous + (1.0 - beta) * gradients * inverse[:, None], previous)
        self.averages.assign(averages if size == total else tf.pad(averages, [[0, 0], [0, total - size]]))
        norms = tf.norm(averages, axis=1)
        alpha = tf.reduce_max(norms) / (norms + 1e-8)
        self.weights.assign(tf.where(present, (1.0 - beta) * alpha * inverse, tf.convert_to_tensor(self.weights)))
        return tf.linalg.matvec(averages, alpha, transpose_a=True)  # [P]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta": self.beta, "beta_sigma": self.beta_sigma}
