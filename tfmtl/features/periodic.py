"""Periodic embeddings of numbers (Gorishniy et al., NeurIPS 2022: "PLR")."""

from __future__ import annotations

import math
from typing import Any

from tfmtl._compat import keras, tf


@keras.utils.register_keras_serializable(package="tfmtl")
class PeriodicEmbedding(keras.layers.Layer):
    """Embed ``[B]`` numbers as ``relu(W [cos(2 pi c x), sin(2 pi c x)] + b)``.

    ``c`` holds ``frequencies`` trainable frequencies drawn from ``N(0, scale^2)``;
    ``W`` and ``b`` are a ``Dense(dim)``. This is the "PLR" embedding of Gorishniy et
    al., "On Embeddings for Numerical Features in Tabular Deep Learning" (NeurIPS 2022):
    unlike one standardized value, it lets the first layer of an MLP react to a
    threshold or a narrow range of a number (a money column that is 0 for most rows,
    an age band) the way a tree split does. The sines and cosines are computed in
    float32 under a mixed-precision policy.

    Args:
      frequencies: Number of frequencies ``k`` (the Dense layer sees ``2k`` inputs).
      dim: Output size.
      scale: Standard deviation of the initial frequencies, in cycles per unit of
        the input (inputs are standardized values, so per standard deviation).

    Call args:
      values: ``[B]`` or ``[B, 1]`` float tensor.

    Returns:
      ``[B, dim]`` tensor.

    Example:

    >>> import numpy as np, tfmtl
    >>> layer = tfmtl.features.PeriodicEmbedding(frequencies=4, dim=3)
    >>> layer(np.array([0.0, 1.5], np.float32)).shape
    TensorShape([2, 3])
    """

    #: Defaults, shared with :class:`~tfmtl.features.Numeric`.
    FREQUENCIES = 16
    SCALE = 3.0

    def __init__(self, frequencies: int = FREQUENCIES, dim: int = 16, scale: float = SCALE, **kwargs: Any) -> None:
        # The phases in float32 even under a mixed policy (float16 would lose the phase of large
        # values); the Dense, created with the global policy, computes in its compute dtype.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.frequencies, self.dim, self.scale = int(frequencies), int(dim), float(scale)
        if self.frequencies < 1 or self.dim < 1 or not self.scale > 0:
            raise ValueError(f"PeriodicEmbedding needs frequencies >= 1, dim >= 1 and scale > 0, got "
                             f"{frequencies}, {dim}, {scale}")
        self.dense = keras.layers.Dense(self.dim, activation="relu", name="dense")

    def build(self, input_shape: Any) -> None:
        self.coefficients = self.add_weight(
            name="frequencies", shape=[self.frequencies],
            initializer=keras.initializers.RandomNormal(0.0, self.scale),
        )
        self.dense.build([None, 2 * self.frequencies])
        super().build(input_shape)

    def call(self, values: tf.Tensor) -> tf.Tensor:
        phase = 2.0 * math.pi * tf.reshape(values, [-1, 1]) * self.coefficients  # [B, k]
        return self.dense(tf.concat([tf.cos(phase), tf.sin(phase)], axis=-1))  # [B, dim]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "frequencies": self.frequencies, "dim": self.dim, "scale": self.scale}
