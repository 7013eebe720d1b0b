"""GradDrop: gradient sign dropout (Chen et al., 2020)."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl._compat import keras, tf
from tfmtl.balancing.base import GradientBalancer, counter_uniform, state_variable


@keras.utils.register_keras_serializable(package="tfmtl")
class GradDrop(GradientBalancer):
    """GradDrop (Chen, Ngiam, Huang, Luong, Kretzschmar, Chai and Anguelov, "Just Pick a Sign: Optimizing Deep
    Multitask Models with Gradient Sign Dropout", NeurIPS 2020).

    The published form works at the shared representation: compile with
    ``gradients_at="representation"`` (the default level, the parameters, runs TorchJD's
    variant, below). At every unit ``u`` of the shared representation ``z``, with ``r_i``
    task ``i``'s gradient of its statically weighted loss with respect to ``z`` (``[B, D]``)::

        a_i = sum over the batch of r_i * sign(z)                       [D]
        P   = (1 + sum_i a_i / (sum_i |a_i| + 1e-7)) / 2                "positive sign purity", [D]
        M_i = [P > U] [a_i > 0] + [P < U] [a_i < 0],   U ~ Uniform(0, 1) drawn per unit
        dz  = sum_i r_i * (leak + (1 - leak) M_i)                       (M broadcast over the batch)

    so at each unit one sign is kept, chosen with probability ``P``, and the task
    gradients of the other sign are dropped (a task whose ``a_i`` is 0 too). ``dz``
    then flows to every parameter below ``z`` in one backward pass; the towers get
    their task's plain gradient.

    At the shared parameters (``gradients_at="parameters"``) the same rule applies to the
    rows of the per-task gradients with ``a_i = g_i`` (no activation sign), TorchJD's
    ``GradDrop`` on the Jacobian. Both follow LibMTL's ``GradDrop.py`` (its ``1e-7``, a
    tie ``P = U`` drops the unit) with one draw of ``U`` per unit and step, the same on
    every replica; ``a_i`` is summed over the global batch.

    It changes directions, not weights: the logged ``<task>/weight`` is the share of
    units at which the task's gradient is kept (``leak + (1 - leak)`` times the share
    of kept units).

    Args:
      leak: The share ``leak`` in ``[0, 1]`` of every task's gradient kept whatever the
        sign (LibMTL's and TorchJD's default 0; 1 is the plain sum).
      seed: Seed of the draws of ``U``.
      layers: Names of the layers whose variables are "the shared parameters" at the
        parameter level (default: every non-embedding variable that two tasks share).

    Example: the worked example of two tasks at three units (``z > 0``), ``U`` given.

    >>> import numpy as np, tfmtl
    >>> from tfmtl.balancing.graddrop import GradDrop, sign_masks
    >>> a = np.array([[1.0, -2.0, 3.0], [1.0, 2.0, -1.0]], np.float32)
    >>> masks = sign_masks(a, np.array([0.3, 0.3, 0.9], np.float32))  # P = [1, 0.5, 0.75]
    >>> masks.numpy()
    array([[1., 0., 0.],
           [1., 1., 1.]], dtype=float32)
    >>> np.sum(a * masks.numpy(), axis=0)  # unit 2 keeps the positive sign (0.5 > 0.3), unit 3 the negative
    array([ 2.,  2., -1.], dtype=float32)
    """

    #: The strategy acts per unit of the representation (see :meth:`multipliers`).
    elementwise = True

    def __init__(
        self, leak: float = 0.0, seed: int = 0, layers: Sequence[str] | None = None, name: str | None = None
    ) -> None:
        super().__init__(layers=layers, name=name)
        if not 0.0 <= float(leak) <= 1.0:
            raise ValueError(f"GradDrop: leak must be in [0, 1], got {leak}")
        self.leak = float(leak)
        self.seed = int(seed)

    def _build(self) -> None:
        self.step = state_variable(0, "step", tf.int64)

    def multipliers(self, signed: tf.Tensor, losses: tf.Tensor) -> tf.Tensor:
        """``[K, D]``: what each task's gradient is multiplied by at each unit, from ``a`` (``[K, D]``, see above).

        Draws this step's ``U`` and logs each task's mean multiplier as its weight.
        """
        signed = tf.convert_to_tensor(signed, tf.float32)
        uniform = counter_uniform(self.seed, self.step, signed.shape[1])
        self.step.assign_add(1)
        factors = self.leak + (1.0 - self.leak) * sign_masks(signed, uniform)
        self.weights.assign(tf.reduce_mean(factors, axis=1))
        return factors

    def balance(self, gradients: tf.Tensor, losses: tf.Tensor) -> tf.Tensor:
        gradients = tf.convert_to_tensor(gradients, tf.float32)
        return tf.reduce_sum(gradients * self.multipliers(gradients, losses), axis=0)  # [P]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "leak": self.leak, "seed": self.seed}


def sign_masks(signed: Any, uniform: Any) -> tf.Tensor:
    """GradDrop's masks ``M`` ``[K, D]`` (0 or 1) from the sign-weighted gradients ``a`` ``[K, D]`` and ``U`` ``[D]``.

    Example: every task agrees in sign, so nothing is dropped.

    >>> import numpy as np
    >>> sign_masks(np.array([[1.0, -1.0], [2.0, -3.0]], np.float32), np.array([0.5, 0.5], np.float32)).numpy()
    array([[1., 1.],
           [1., 1.]], dtype=float32)
    """
    signed = tf.convert_to_tensor(signed, tf.float32)
    uniform = tf.convert_to_tensor(uniform, tf.float32)
    purity = 0.5 * (1.0 + tf.reduce_sum(signed, axis=0) / (tf.reduce_sum(tf.abs(signed), axis=0) + 1e-7))  # [D]
    keep_positive = tf.cast(purity > uniform, tf.float32)
    keep_negative = tf.cast(purity < uniform, tf.float32)
    return keep_positive * tf.cast(signed > 0, tf.float32) + keep_negative * tf.cast(signed < 0, tf.float32)
