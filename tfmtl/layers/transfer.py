"""AITM's adaptive information transfer between funnel steps (Xi et al., KDD 2021)."""

from __future__ import annotations

import math
from typing import Any, Sequence

from tfmtl._compat import keras, tf


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
