"""The DSelect-k gate (Hazimeh et al., NeurIPS 2021): a differentiable gate that selects at most k experts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.features.kinds import count
from tfmtl.layers.regularization import clone_initializer

#: Added inside the entropy's logarithm (as in the reference code), and the floor of the reachable mass.
EPSILON = 1e-6


def smooth_step(t: tf.Tensor, gamma: float) -> tf.Tensor:
    """``S(t)``: 0 for ``t <= -gamma/2``, 1 for ``t >= gamma/2``, else ``-2 t^3 / gamma^3 + 3 t / (2 gamma) + 1/2``.

    Example:

    >>> import tensorflow as tf
    >>> from tfmtl.layers.dselect import smooth_step
    >>> smooth_step(tf.constant([-1.0, 0.0, 0.1, 1.0]), gamma=0.5).numpy().round(3)
    array([0.   , 0.5  , 0.784, 1.   ], dtype=float32)
    """
    cubic = -2.0 / gamma**3 * t**3 + 3.0 / (2.0 * gamma) * t + 0.5
    return tf.where(t <= -gamma / 2, tf.zeros_like(t), tf.where(t >= gamma / 2, tf.ones_like(t), cubic))


def binary_codes(num_experts: int) -> np.ndarray:
    """``C``: ``[E, m]`` booleans, row i the ``m = ceil(log2 E)``-bit code of i, most significant bit first.

    Example:

    >>> from tfmtl.layers.dselect import binary_codes
    >>> binary_codes(3).astype(int).tolist()
    [[0, 0], [0, 1], [1, 0]]
    """
    bits = math.ceil(math.log2(num_experts))
    return np.array([[c == "1" for c in np.binary_repr(i, width=bits)] for i in range(num_experts)], dtype=bool)


def _initializer(value: Any, default: keras.initializers.Initializer, *key: Any) -> keras.initializers.Initializer:
    """A fresh initializer object (never one shared by two weights): ``value``, or ``default`` when None."""
    return clone_initializer(default if value is None else value, *key)


@keras.utils.register_keras_serializable(package="tfmtl")
class DSelectKGate(keras.layers.Layer):
    """DSelect-k: per-example weights over E experts with at most k non-zeros, trained by gradient descent.

    Shapes: B batch, D input width, E experts, k selectors, m = ceil(log2 E) bits.
    Each of the k single-expert selectors holds m logits and picks one expert by
    its binary code ``C`` (``[E, m]``, row i is i in binary, most significant bit first):

    * ``Z = reshape(Dense(k*m)(x), [B, k, m])`` and ``W = Dense(k)(x)`` (``[B, k]``);
    * smooth step ``S(t) = 0`` for ``t <= -gamma/2``, 1 for ``t >= gamma/2``, else
      ``-2 t^3 / gamma^3 + 3 t / (2 gamma) + 1/2``;
    * selector j: ``r_j(i) = prod_b (S(Z_jb) if C_ib = 1 else 1 - S(Z_jb))`` (``[B, k, E]``);
    * ``alpha = softmax(W)`` over the selectors and ``a = sum_j alpha_j r_j`` (``[B, E]``).

    When E is a power of 2, each ``r_j`` sums to 1, so ``a`` does too. Otherwise the
    codes ``E .. 2^m - 1`` reach no expert and ``a`` sums to at most 1. Two losses
    are added with ``add_loss``, **only while training** (as the reference code does):

    * if E is not a power of 2: ``sum_j 1 / max(sum_i r_j(i), 1e-6)`` (at least k; it
      pushes the mass of each selector onto reachable experts). The floor is not in the
      reference: a selector whose mass is all on unreachable codes would give an
      infinite loss and NaN gradients there, and gives 1e6 with zero gradient here;
    * if ``entropy_weight > 0``: ``entropy_weight * sum_j -sum_i r_j(i) log(r_j(i) + 1e-6)``,
      which pushes each selector towards one expert.

    Both are averaged over the batch. The reference code sums them over the batch
    instead (``reduce_sum``), so its terms grow with the batch size; here they are on the
    scale of the task losses, which are batch means. The reference's entropy
    regulariser takes a schedule (default: the constant 1e-6); here it is one
    constant weight, 0 (off) by default.

    This is the per-example ("example-conditioned") gate of the reference; its
    static ("task-only") gate, with Z and W plain variables, is not here. While
    :func:`tfmtl.diagnostics.expert_usage` runs, the gate records ``a`` like
    :class:`ExpertGate`.

    Args:
      num_experts: E (at least 2).
      k: Number of single-expert selectors (the most experts ``a`` can mix).
      gamma: Width of the smooth step's cubic region.
      entropy_weight: Weight of the selectors' entropy loss (0 = none).
      kernel_initializer: Initializer of both Dense kernels. None (default) is the
        reference's: ``U(-gamma/100, gamma/100)`` for Z (so every selector starts
        near ``S = 1/2``, in the region with gradient) and Keras's ``RandomUniform()``
        (``U(-0.05, 0.05)``) for W. A Glorot kernel would put many Z outside
        ``[-gamma/2, gamma/2]`` from the start, where the smooth step has no gradient.
      bias_initializer: Initializer of both biases; None is the reference's (as above).
      kernel_regularizer: Regularizer of both kernels.
      bias_regularizer: Regularizer of both biases.

    Call args:
      inputs: ``[B, D]``.
      training: Adds the losses above when true.

    Returns:
      ``[B, E]`` expert weights, non-negative, summing to 1 when E is a power of 2.

    References:
      Hazimeh et al., "DSelect-k: Differentiable Selection in the Mixture of Experts
      with Applications to Multi-Task Learning", NeurIPS 2021. Checked against the
      reference code, google-research ``dselect_k_moe/dselect_k_moe.py``.

    Example:

    >>> import numpy as np, tfmtl
    >>> gate = tfmtl.layers.DSelectKGate(4, k=1, kernel_initializer="zeros", bias_initializer="zeros")
    >>> x = np.ones([1, 3], np.float32)
    >>> gate(x).numpy()  # every logit 0: S = 1/2, all four codes equally likely
    array([[0.25, 0.25, 0.25, 0.25]], dtype=float32)
    >>> gate.set_weights([np.zeros([3, 2]), np.array([0.25, 0.0]), np.zeros([3, 1]), np.zeros([1])])
    >>> gate(x).numpy()  # z = [0.25, 0]: S(0.25) = 0.84375 on the first bit
    array([[0.078125, 0.078125, 0.421875, 0.421875]], dtype=float32)
    """

    def __init__(
        self,
        num_experts: int,
        k: int = 2,
        gamma: float = 1.0,
        entropy_weight: float = 0.0,
        kernel_initializer: Any = None,
        bias_initializer: Any = None,
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        num_experts = count(num_experts, "num_experts of a DSelect-k gate", minimum=2)
        k = count(k, "k (the number of selectors)", minimum=1)
        if not gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma!r}")
        if not entropy_weight >= 0:
            raise ValueError(f"entropy_weight must be >= 0, got {entropy_weight!r}")
        self.num_experts = int(num_experts)
        self.k = int(k)
        self.gamma = float(gamma)
        self.entropy_weight = float(entropy_weight)
        # Diagnostics record weights here; set with object.__setattr__ so Keras does not track the list.
        object.__setattr__(self, "recorded", None)
        self.kernel_initializer = None if kernel_initializer is None else keras.initializers.get(kernel_initializer)
        self.bias_initializer = None if bias_initializer is None else keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        codes = binary_codes(self.num_experts)  # [E, m]
        self.num_bits = codes.shape[1]
        self.power_of_two = self.num_experts == 2**self.num_bits
        self.codes = tf.constant(codes)
        # -- sub-layers: a fresh initializer object per weight --
        z_default = keras.initializers.RandomUniform(-self.gamma / 100, self.gamma / 100)
        w_default = keras.initializers.RandomUniform()
        self.z_logits = keras.layers.Dense(
            self.k * self.num_bits,
            kernel_initializer=_initializer(self.kernel_initializer, z_default, self.name, "z", "kernel"),
            bias_initializer=_initializer(self.bias_initializer, z_default, self.name, "z", "bias"),
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            name="z_logits",
        )
        self.w_logits = keras.layers.Dense(
            self.k,
            kernel_initializer=_initializer(self.kernel_initializer, w_default, self.name, "w", "kernel"),
            bias_initializer=_initializer(self.bias_initializer, w_default, self.name, "w", "bias"),
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            name="w_logits",
        )

    def build(self, input_shape: Any) -> None:
        self.z_logits.build(input_shape)
        self.w_logits.build(input_shape)
        super().build(input_shape)

    def selectors(self, inputs: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(r, alpha)``: the selectors' ``[B, k, E]`` expert distributions and their ``[B, k]`` weights."""
        z = tf.reshape(self.z_logits(inputs), [-1, self.k, 1, self.num_bits])  # [B, k, 1, m]
        step = smooth_step(z, self.gamma)  # [B, k, 1, m]
        codes = self.codes[tf.newaxis, tf.newaxis]  # [1, 1, E, m]
        r = tf.reduce_prod(tf.where(codes, step, 1.0 - step), axis=-1)  # [B, k, E]
        alpha = tf.nn.softmax(self.w_logits(inputs), axis=-1)  # [B, k]
        return r, alpha

    def call(self, inputs: tf.Tensor, training: Any = None) -> tf.Tensor:
        r, alpha = self.selectors(inputs)
        weights = tf.einsum("bk,bke->be", alpha, r)  # [B, E]
        if training:
            if not self.power_of_two:
                reachable = tf.maximum(tf.reduce_sum(r, axis=-1), EPSILON)  # [B, k]
                self.add_loss(tf.reduce_mean(tf.reduce_sum(1.0 / reachable, axis=-1)))
            if self.entropy_weight:
                entropy = -tf.reduce_sum(r * tf.math.log(r + EPSILON), axis=[1, 2])  # [B]
                self.add_loss(self.entropy_weight * tf.reduce_mean(entropy))
        if self.recorded is not None and tf.executing_eagerly():
            self.recorded.append(weights.numpy())
        return weights

    def get_config(self) -> dict[str, Any]:
        def initializer(value: Any) -> Any:
            return None if value is None else keras.initializers.serialize(value)

        return {
            **super().get_config(),
            "num_experts": self.num_experts,
            "k": self.k,
            "gamma": self.gamma,
            "entropy_weight": self.entropy_weight,
            "kernel_initializer": initializer(self.kernel_initializer),
            "bias_initializer": initializer(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        }
