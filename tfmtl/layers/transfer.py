"""AITM's adaptive information transfer between funnel steps (Xi et al., KDD 2021)."""

from __future__ import annotations

import math
from typing import Any, Sequence

from tfmtl._compat import keras, tf
from tfmtl.tasks.task import Task, TaskHead


@keras.utils.register_keras_serializable(package="tfmtl")
class AdaptiveInformationTransfer(keras.layers.Layer):
    """Mix what the previous funnel step knows into the current step's representation.

    Shapes: B batch, H width. With ``p = transfer(z_prev)`` (a ReLU Dense layer,
    what step t-1 passes on) and ``q`` the current step's tower output, each
    ``u`` in ``{p, q}`` gets the attention weight
    ``softmax_u(<h2(u), h3(u)> / sqrt(H))`` and the output is
    ``z = sum_u w_u * h1(u)`` (Eq. 3-5 of the paper).

    Args:
      units: H, the width of ``z`` (and of h1, h2, h3).

    Call args:
      inputs: ``[z_prev, q]``, both ``[B, H]``.

    Returns:
      ``[B, H]``.

    Example:

    >>> import numpy as np, tfmtl
    >>> ait = tfmtl.layers.AdaptiveInformationTransfer(4)
    >>> ait([np.ones([2, 4], np.float32), np.zeros([2, 4], np.float32)]).shape
    TensorShape([2, 4])
    """

    def __init__(self, units: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = int(units)
        self.transfer = keras.layers.Dense(self.units, activation="relu", name="transfer")
        self.h1 = keras.layers.Dense(self.units, name="value")
        self.h2 = keras.layers.Dense(self.units, name="query")
        self.h3 = keras.layers.Dense(self.units, name="key")

    def attention(self, candidates: tf.Tensor) -> tf.Tensor:
        """``[B, 2, H]`` candidates -> ``[B, 2]`` attention weights."""
        scores = tf.reduce_sum(self.h2(candidates) * self.h3(candidates), axis=-1) / math.sqrt(self.units)  # [B, 2]
        return tf.nn.softmax(scores, axis=-1)

    def call(self, inputs: Sequence[tf.Tensor]) -> tf.Tensor:
        previous, current = inputs
        candidates = tf.stack([self.transfer(previous), current], axis=1)  # [B, 2, H]
        weights = self.attention(candidates)  # [B, 2]
        return tf.einsum("bu,buh->bh", weights, self.h1(candidates))  # [B, H]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}


@keras.utils.register_keras_serializable(package="tfmtl")
class FunnelHead(TaskHead):
    """A funnel step's head with AITM's behavioural expectation calibrator.

    Predicts ``p_t = sigmoid(w . hidden + b)`` like :class:`~tfmtl.tasks.TaskHead`
    and adds ``calibration * mean_b max(p_t - p_{t-1}, 0)`` to the model's loss:
    a later step should not be likelier than the step before it.

    Args:
      task: The (binary) step.
      calibration: The calibrator's weight (the paper's alpha; 0.6 there).

    Call args:
      inputs: ``[hidden, previous_probability]``: ``[B, H]`` and ``[B, 1]``.

    Returns:
      ``[B, 1]`` probability.

    Example:

    >>> import numpy as np, tfmtl
    >>> head = tfmtl.layers.FunnelHead(tfmtl.Task.binary("conversion"), calibration=1.0,
    ...                                kernel_initializer="zeros")
    >>> p = head([np.ones([2, 3], np.float32), np.array([[0.2], [0.9]], np.float32)])  # p = 0.5 for both
    >>> round(float(head.losses[0]), 4)  # mean of max(0.5 - 0.2, 0) and max(0.5 - 0.9, 0)
    0.15
    """

    def __init__(self, task: Task | dict[str, Any], calibration: float = 0.6, **kwargs: Any) -> None:
        super().__init__(task, **kwargs)
        if not calibration >= 0:
            raise ValueError(f"calibration weight must be >= 0, got {calibration}")
        self.calibration = float(calibration)
        self.input_spec = None  # two inputs; Dense's spec describes one

    def build(self, input_shape: Any) -> None:
        super().build(input_shape[0])
        self.input_spec = None

    def call(self, inputs: Sequence[tf.Tensor]) -> tf.Tensor:
        hidden, previous = inputs
        probability = super().call(hidden)  # [B, 1]
        if self.calibration:
            self.add_loss(self.calibration * tf.reduce_mean(tf.nn.relu(probability - tf.cast(previous, probability.dtype))))
        return probability

    def compute_output_shape(self, input_shape: Any) -> Any:
        return super().compute_output_shape(input_shape[0])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "calibration": self.calibration}
