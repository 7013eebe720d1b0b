"""TFRS's MLP block, made serializable, with initializers, regularizers and dropout."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl._compat import keras, tf, tfrs
from tfmtl.features.kinds import int_tuple
from tfmtl.layers.regularization import fresh, knobs, knobs_config


@keras.utils.register_keras_serializable(package="tfmtl")
class MLP(tfrs.layers.blocks.MLP):
    """``tfrs.layers.blocks.MLP`` with a ``get_config`` (models using it save and load), the
    Keras initializer and regularizer arguments, and dropout after each hidden layer.

    Each ``Dense`` layer gets its own clone of the initializers.

    Args:
      units: Units of each Dense layer.
      activation: Activation of every layer but the last.
      final_activation: Activation of the last layer.
      use_bias: Whether the layers have biases.
      dropout: Dropout rate while training (0: none) after every layer, but a last layer without
        ``final_activation`` (a linear output).
      kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer: As Keras's ``Dense``.

    Example:

    >>> import numpy as np, tfmtl
    >>> mlp = tfmtl.layers.MLP([8, 4], final_activation="relu", kernel_regularizer="l2")
    >>> mlp(np.ones([2, 3], np.float32)).shape, tfmtl.layers.MLP.from_config(mlp.get_config()).units
    (TensorShape([2, 4]), (8, 4))
    >>> len(mlp.losses)  # one L2 term per kernel
    2
    """

    def __init__(
        self,
        units: Sequence[int],
        activation: str | None = "relu",
        final_activation: str | None = None,
        use_bias: bool = True,
        dropout: float = 0.0,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        self.units = int_tuple(units, "MLP units")  # a tuple: Keras would wrap a list attribute
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MLP dropout must be in [0, 1), got {dropout!r}")
        self._activations = (activation, final_activation)
        self._use_bias = use_bias
        self.dropout = float(dropout)
        self._knobs = knobs(kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer)
        super().__init__(list(self.units), use_bias=use_bias, activation=activation, final_activation=final_activation, **kwargs)
        activations = [activation] * (len(self.units) - 1) + [final_activation]
        self._sublayers = [  # TFRS's Dense layers again, with the arguments (same names, so old files load)
            keras.layers.Dense(width, activation=act, use_bias=use_bias, **fresh(self._knobs, self.name, index))
            for index, (width, act) in enumerate(zip(self.units, activations))
        ]
        self._dropout = keras.layers.Dropout(self.dropout) if self.dropout else None

    def call(self, x: tf.Tensor, training: Any = None) -> tf.Tensor:
        for index, layer in enumerate(self._sublayers):
            x = layer(x)
            if self._dropout is not None and (index < len(self._sublayers) - 1 or self._activations[1] is not None):
                x = self._dropout(x, training=training)
        return x

    def get_config(self) -> dict[str, Any]:
        activation, final_activation = self._activations
        return {
            **super().get_config(),
            "units": list(self.units),
            "activation": activation,
            "final_activation": final_activation,
            "use_bias": self._use_bias,
            "dropout": self.dropout,
            **knobs_config(self._knobs),
        }
