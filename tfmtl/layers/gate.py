"""Softmax gates over experts, and the gate-weighted mixing every MoE architecture shares."""

from __future__ import annotations

from typing import Any

from tfmtl._compat import keras, tf


def mix_experts(weights: tf.Tensor, experts: tf.Tensor) -> tf.Tensor:
    """``sum_e weights[b, e] * experts[b, e, :]``: ``[B, E]`` x ``[B, E, H]`` -> ``[B, H]``.

    Example:

    >>> import numpy as np, tfmtl
    >>> experts = np.array([[[1.0, 2.0], [3.0, 4.0]]], np.float32)  # B=1, E=2, H=2
    >>> tfmtl.layers.mix_experts(np.array([[0.25, 0.75]], np.float32), experts).numpy()
    array([[2.5, 3.5]], dtype=float32)
    """
    return tf.einsum("be,beh->bh", weights, experts)


@keras.utils.register_keras_serializable(package="tfmtl")
class ExpertGate(keras.layers.Layer):
    """``softmax(W x / temperature)`` over ``num_experts`` experts (Ma et al. 2018, Eq. 8).

    Args:
      num_experts: E.
      temperature: Softmax temperature; above 1 flattens the gate, below 1 sharpens it.

    Call args:
      inputs: ``[B, D]``.

    Returns:
      ``[B, E]`` weights that sum to 1 per example.

    Example:

    >>> import numpy as np, tfmtl
    >>> gate = tfmtl.layers.ExpertGate(3, kernel_initializer="zeros")
    >>> gate(np.ones([1, 4], np.float32)).numpy().round(3)  # equal logits: equal weights
    array([[0.333, 0.333, 0.333]], dtype=float32)
    """

    def __init__(self, num_experts: int, temperature: float = 1.0, kernel_initializer: Any = "glorot_uniform", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if num_experts < 1:
            raise ValueError(f"a gate needs at least one expert, got {num_experts}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.num_experts = int(num_experts)
        self.temperature = float(temperature)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.logits = keras.layers.Dense(
            self.num_experts, use_bias=False, kernel_initializer=self.kernel_initializer, name="logits"
        )

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.nn.softmax(self.logits(inputs) / self.temperature, axis=-1)  # [B, E]

    @property
    def kernel(self) -> tf.Variable:
        return self.logits.kernel

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_experts": self.num_experts,
            "temperature": self.temperature,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
