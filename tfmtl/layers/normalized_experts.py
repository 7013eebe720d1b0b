"""HoME's expert bank: MLP experts whose layers are batch-normalised and Swish-activated (Wang et al., 2024).

From the paper only (no public reference code); see :mod:`tfmtl.layers.home` for the hierarchy that uses them.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.features.kinds import count, int_tuple
from tfmtl.layers.regularization import clone_initializer


@keras.utils.register_keras_serializable(package="tfmtl")
class NormalizedExperts(keras.layers.Layer):
    """HoME's expert bank: E MLPs whose every layer is ``Swish(BatchNorm(h W))``, each with its own feature gate.

    Shapes: B batch, D input width, E experts, H units of a layer, r feature-gate rank.
    Kernels of all experts are stacked, one ``[E, in, out]`` variable per layer (as in
    :class:`~tfmtl.layers.Experts`). For expert e::

        v_e     = v * 2 * sigmoid(v A_e B_e)              # feature gate, A_e [D, r], B_e [r, D]
        h_e^0   = v_e                                     # (v itself when feature_gate_rank == 0)
        h_e^l   = swish(BN_l(h_e^(l-1) W_(l,e)))           # l = 1..L, swish(x) = x * sigmoid(x)
        out_e   = h_e^L                                    # [B, H_L]

    ``BN_l`` is one ``keras.layers.BatchNormalization(axis=(1, 2))`` over the ``[B, E, H]``
    pre-activations, so its mean and variance are per expert and unit (taken over the batch
    only): with batch statistics while training and the moving averages at inference, with
    a learnable scale gamma and shift beta per expert and unit. (``axis=-1`` would pool the
    statistics of all experts, which is not per-expert normalisation.) The layers have no
    separate bias: BN's mean subtraction would cancel it, and beta plays its part, so
    ``bias_initializer`` / ``bias_regularizer`` apply to beta.

    From the paper without reference code. Unverified: whether BN follows every layer of a
    multi-layer expert or only its output (here every layer); BN's momentum and epsilon
    (Keras defaults here); the feature gate's initialisation (here ``A_e`` from
    ``kernel_initializer`` and ``B_e = 0``, so every gate starts at exactly 1, as LoRA starts
    its update at 0) and the order of its low-rank factors.

    Args:
      num_experts: E.
      units: Units of each expert layer, e.g. ``(64,)``.
      feature_gate_rank: r; 0 disables the feature gates.
      momentum: Momentum of the BN moving averages.
      epsilon: BN's variance epsilon.
      kernel_initializer: Initializer of the kernels W and of the gates' A (one fresh object per expert).
      bias_initializer: Initializer of the BN shifts beta.
      kernel_regularizer: Regularizer of W, A and B.
      bias_regularizer: Regularizer of the BN shifts beta.

    Call args:
      inputs: ``[B, D]`` tensor.
      training: BN uses batch statistics (and updates its moving averages) when true.

    Returns:
      ``[B, E, units[-1]]`` tensor.

    References:
      Wang et al., "HoME: Hierarchy of Multi-Gate Experts for Multi-Task Learning at
      Kuaishou", arXiv 2408.05430, 2024 (Sections on expert normalisation and feature gates).

    Example:

    >>> import numpy as np, tfmtl
    >>> experts = tfmtl.layers.NormalizedExperts(3, (8, 4), feature_gate_rank=2)
    >>> out = experts(np.random.default_rng(0).normal(size=(16, 5)).astype("float32"), training=True)
    >>> out.shape, experts.batch_norms[0].moving_mean.shape
    (TensorShape([16, 3, 4]), TensorShape([1, 3, 8]))
    """

    def __init__(
        self,
        num_experts: int,
        units: Sequence[int],
        feature_gate_rank: int = 0,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        num_experts = count(num_experts, "num_experts", minimum=1)
        feature_gate_rank = count(feature_gate_rank, "feature_gate_rank (0 = no feature gates)")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if not epsilon > 0.0:
            raise ValueError(f"epsilon must be > 0, got {epsilon!r}")
        self.num_experts = num_experts
        self.units = int_tuple(units, "expert units", non_empty=True)
        self.feature_gate_rank = feature_gate_rank
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernels: list[tf.Variable] = []
        self.batch_norms = [
            keras.layers.BatchNormalization(
                axis=(1, 2),
                momentum=self.momentum,
                epsilon=self.epsilon,
                beta_initializer=clone_initializer(self.bias_initializer, self.name, "beta", index),
                beta_regularizer=self.bias_regularizer,
                name=f"batch_norm_{index}",
            )
            for index in range(len(self.units))
        ]

    def _stacked(self, name: str, shape: tuple[int, int], initializer: Any) -> tf.Variable:
        """An ``[E, *shape]`` weight whose expert slices are drawn by separate initializer objects."""
        inits = [clone_initializer(initializer, self.name, name, e) for e in range(self.num_experts)]

        def draw(full_shape: Any, dtype: Any = None, **_: Any) -> tf.Tensor:
            return tf.stack([init(shape, dtype=dtype) for init in inits])

        return self.add_weight(
            name=name, shape=(self.num_experts, *shape), initializer=draw, regularizer=self.kernel_regularizer
        )

    def build(self, input_shape: Any) -> None:
        width = int(input_shape[-1])
        if self.feature_gate_rank:
            self.gate_down = self._stacked("feature_gate_a", (width, self.feature_gate_rank), self.kernel_initializer)
            self.gate_up = self._stacked("feature_gate_b", (self.feature_gate_rank, width), "zeros")
        fan_in = width
        for index, fan_out in enumerate(self.units):
            self.kernels.append(self._stacked(f"kernel_{index}", (fan_in, fan_out), self.kernel_initializer))
            self.batch_norms[index].build((None, self.num_experts, fan_out))
            fan_in = fan_out
        super().build(input_shape)

    def feature_gates(self, inputs: tf.Tensor) -> tf.Tensor:
        """``2 * sigmoid(v A_e B_e)`` per expert: ``[B, D]`` -> ``[B, E, D]`` (ones when the rank is 0)."""
        if not self.feature_gate_rank:
            return tf.ones(tf.stack([tf.shape(inputs)[0], self.num_experts, tf.shape(inputs)[1]]), inputs.dtype)
        low = tf.einsum("bd,edr->ber", inputs, self.gate_down)  # [B, E, r]
        return 2.0 * tf.sigmoid(tf.einsum("ber,erd->bed", low, self.gate_up))  # [B, E, D]

    def call(self, inputs: tf.Tensor, training: Any = None) -> tf.Tensor:
        if self.feature_gate_rank:
            gated = inputs[:, None, :] * self.feature_gates(inputs)  # [B, E, D]: each expert's own copy
            hidden = tf.einsum("bed,edh->beh", gated, self.kernels[0])  # [B, E, H0]
        else:
            hidden = tf.einsum("bd,edh->beh", inputs, self.kernels[0])  # [B, E, H0]
        hidden = tf.nn.silu(self.batch_norms[0](hidden, training=training))
        for kernel, norm in zip(self.kernels[1:], self.batch_norms[1:]):
            hidden = tf.nn.silu(norm(tf.einsum("beh,ehk->bek", hidden, kernel), training=training))  # [B, E, Hk]
        return hidden

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_experts": self.num_experts,
            "units": list(self.units),
            "feature_gate_rank": self.feature_gate_rank,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        }
