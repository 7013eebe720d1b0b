"""A bank of identical ReLU MLP experts with one stacked weight per layer."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl._compat import keras, tf
from tfmtl.features.kinds import int_tuple
from tfmtl.layers.regularization import clone_initializer, knobs, knobs_config


#: With ``implementation="auto"``, experts whose layers are all at most this wide use einsum.
EINSUM_MAX_UNITS = 32


@keras.utils.register_keras_serializable(package="tfmtl")
class Experts(keras.layers.Layer):
    """``num_experts`` ReLU MLPs of the same shape, evaluated as a batch.

    Shapes: B batch, D input width, E experts, H hidden units.
    Every layer's kernels of all experts are one ``[E, in, out]`` variable (one
    bias ``[E, out]``), so the expert bank is a single weight per layer whatever E.
    Each expert's kernel is drawn on its own, from a fresh clone of
    ``kernel_initializer`` with that expert's own ``[in, out]`` shape (so fan-in and
    fan-out are one expert's), so experts never start from equal weights, even
    with a seeded initializer. Regularizers apply to the stacked weights.

    Two computations give the same result:

    * ``"per_expert"``: E 2-D matmuls on slices of the stacked kernel.
    * ``"einsum"``: one batched einsum per layer (``bd,edh->beh``).
    * ``"auto"`` (default): einsum when no expert layer is wider than
      :data:`EINSUM_MAX_UNITS` (32), per-expert otherwise. That is what
      ``benchmarks/experts_einsum.py`` measured faster on CPU: with experts of
      16 units (the MMoE paper's) einsum is 1.04-1.67x as fast as a loop of Dense
      layers; at 64 units both are on par with the loop; with experts of
      [256, 128] einsum is 0.69-0.93x and per-expert 0.92-1.15x. Not measured on
      a GPU yet.

    Args:
      num_experts: E.
      units: Hidden units of each expert's layers, e.g. ``(256, 128)``.
      activation: Activation after every layer.
      implementation: ``"auto"``, ``"per_expert"`` or ``"einsum"``.
      dropout: Dropout rate after every layer while training (0: none).
      kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer: As Keras's ``Dense``.

    Call args:
      inputs: ``[B, D]`` tensor.

    Returns:
      ``[B, E, units[-1]]`` tensor.

    Example:

    >>> import tensorflow as tf, tfmtl
    >>> experts = tfmtl.layers.Experts(num_experts=3, units=(8, 4))
    >>> experts(tf.ones([2, 5])).shape
    TensorShape([2, 3, 4])
    """

    def __init__(
        self,
        num_experts: int,
        units: Sequence[int],
        activation: str = "relu",
        implementation: str = "auto",
        dropout: float = 0.0,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"expert dropout must be in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self._dropout = keras.layers.Dropout(self.dropout) if self.dropout else None
        self._knobs = knobs(kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer)
        if implementation not in ("auto", "per_expert", "einsum"):
            raise ValueError(f"implementation must be 'auto', 'per_expert' or 'einsum', got {implementation!r}")
        self.implementation = implementation
        if num_experts < 1:
            raise ValueError(f"num_experts must be >= 1, got {num_experts}")
        self.units = int_tuple(units, "expert units", non_empty=True)
        self.num_experts = int(num_experts)
        self.activation = keras.activations.get(activation)
        self.kernels: list[tf.Variable] = []
        self.biases: list[tf.Variable] = []

    def build(self, input_shape: Any) -> None:
        fan_in = int(input_shape[-1])
        for index, fan_out in enumerate(self.units):
            self.kernels.append(
                self.add_weight(
                    name=f"kernel_{index}",
                    shape=(self.num_experts, fan_in, fan_out),
                    initializer=per_expert(self._knobs["kernel_initializer"], self.name, f"kernel_{index}"),
                    regularizer=self._knobs["kernel_regularizer"],
                )
            )
            self.biases.append(
                self.add_weight(
                    name=f"bias_{index}", shape=(self.num_experts, fan_out),
                    initializer=per_expert(self._knobs["bias_initializer"], self.name, f"bias_{index}"),
                    regularizer=self._knobs["bias_regularizer"],
                )
            )
            fan_in = fan_out
        super().build(input_shape)

    @property
    def computation(self) -> str:
        """The computation used: ``"per_expert"`` or ``"einsum"`` (``"auto"`` resolved by the widest layer)."""
        if self.implementation != "auto":
            return self.implementation
        return "einsum" if max(self.units) <= EINSUM_MAX_UNITS else "per_expert"

    def dropped(self, hidden: tf.Tensor, training: Any) -> tf.Tensor:
        return hidden if self._dropout is None else self._dropout(hidden, training=training)

    def call(self, inputs: tf.Tensor, training: Any = None) -> tf.Tensor:
        if self.computation == "einsum":
            hidden = self.activation(tf.einsum("bd,edh->beh", inputs, self.kernels[0]) + self.biases[0])  # [B, E, H0]
            hidden = self.dropped(hidden, training)
            for kernel, bias in zip(self.kernels[1:], self.biases[1:]):
                hidden = self.dropped(self.activation(tf.einsum("beh,ehk->bek", hidden, kernel) + bias), training)  # [B, E, Hk]
            return hidden
        kernels = [tf.unstack(kernel) for kernel in self.kernels]  # per layer: E x [in, out]
        biases = [tf.unstack(bias) for bias in self.biases]  # per layer: E x [out]
        outputs = []
        for expert in range(self.num_experts):
            hidden = inputs  # [B, D]
            for layer in range(len(self.units)):
                hidden = self.dropped(self.activation(tf.matmul(hidden, kernels[layer][expert]) + biases[layer][expert]), training)
            outputs.append(hidden)  # [B, H]
        return tf.stack(outputs, axis=1)  # [B, E, H]

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_experts": self.num_experts,
            "units": list(self.units),
            "activation": keras.activations.serialize(self.activation),
            "implementation": self.implementation,
            "dropout": self.dropout,
            **knobs_config(self._knobs),
        }


def per_expert(initializer: Any, *key: Any) -> Any:
    """Initialise an ``[E, ...]`` stacked weight one expert at a time, each from its own clone of ``initializer``
    given one expert's shape (so a Glorot or He initializer sees one expert's fan-in and fan-out). A seeded
    initializer's seed is mixed with ``key`` and the expert's index (:func:`clone_initializer`): one seed for
    all would start the experts equal."""
    experts = {}

    def initialize(shape: Any, dtype: Any = None, partition_shape: Any = None, partition_offset: Any = None,
                   **kwargs: Any) -> tf.Tensor:
        full = tf.stack([
            experts.setdefault(index, clone_initializer(initializer, *key, index))(shape[1:], dtype=dtype)
            for index in range(shape[0])
        ])
        if partition_shape is None:
            return full
        return tf.slice(full, partition_offset, partition_shape)  # a shard of a partitioned variable

    return initialize
