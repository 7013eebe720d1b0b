"""TFRS's MLP block, made serializable."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl._compat import keras, tfrs
from tfmtl.features.kinds import int_tuple


@keras.utils.register_keras_serializable(package="tfmtl")
class MLP(tfrs.layers.blocks.MLP):
    """``tfrs.layers.blocks.MLP`` with a ``get_config``, so models using it save and load.

    Args:
      units: Units of each Dense layer.
      activation: Activation of every layer but the last.
      final_activation: Activation of the last layer.
      use_bias: Whether the layers have biases.

    Example:

    >>> import numpy as np, tfmtl
    >>> mlp = tfmtl.layers.MLP([8, 4], final_activation="relu")
    >>> mlp(np.ones([2, 3], np.float32)).shape, tfmtl.layers.MLP.from_config(mlp.get_config()).units
    (TensorShape([2, 4]), (8, 4))
    """

    def __init__(
        self,
        units: Sequence[int],
        activation: str | None = "relu",
        final_activation: str | None = None,
        use_bias: bool = True,
        **kwargs: Any,
    ) -> None:
        self.units = int_tuple(units, "MLP units")  # a tuple: Keras would wrap a list attribute
        self._activations = (activation, final_activation)
        self._use_bias = use_bias
        super().__init__(list(self.units), use_bias=use_bias, activation=activation, final_activation=final_activation, **kwargs)

    def get_config(self) -> dict[str, Any]:
        activation, final_activation = self._activations
        return {
            **super().get_config(),
            "units": list(self.units),
            "activation": activation,
            "final_activation": final_activation,
            "use_bias": self._use_bias,
        }
