"""Gates over experts (softmax, or DSelect-k through :func:`make_gate`), and the gate-weighted mixing every MoE
architecture shares."""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

from tfmtl._compat import keras, tf
from tfmtl.layers.dselect import DSelectKGate
from tfmtl.layers.regularization import clone_initializer, serialize


def mix_experts(weights: tf.Tensor, experts: tf.Tensor) -> tf.Tensor:
    """``sum_e weights[b, e] * experts[b, e, :]``: ``[B, E]`` x ``[B, E, H]`` -> ``[B, H]``.

    Example:

    >>> import numpy as np, tfmtl
    >>> experts = np.array([[[1.0, 2.0], [3.0, 4.0]]], np.float32)  # B=1, E=2, H=2
    >>> tfmtl.layers.mix_experts(np.array([[0.25, 0.75]], np.float32), experts).numpy()
    array([[2.5, 3.5]], dtype=float32)
    """
    return tf.einsum("be,beh->bh", weights, experts)


#: The gates :class:`GateOptions` can ask for.
GATE_KINDS = ("softmax", "dselect_k")


@dataclasses.dataclass(frozen=True)
class GateOptions:
    """How the gates of an MoE architecture behave (all defaults: the plain softmax gate).

    Args:
      temperature: Softmax temperature (> 1 flattens, < 1 sharpens); softmax gate only.
      expert_dropout: Per-example probability of dropping an expert while training; softmax gate only.
      load_balance: Weight of the load-balancing loss (see :class:`ExpertGate`); softmax gate only.
      kind: ``"softmax"`` (:class:`ExpertGate`) or ``"dselect_k"`` (:class:`DSelectKGate`).
      k: DSelect-k's number of selectors (the most experts one gate mixes); ``"dselect_k"`` only.
      gamma: Width of DSelect-k's smooth step; ``"dselect_k"`` only.

    An option of the other kind raises a ``ValueError`` instead of being ignored.

    Example:

    >>> import tfmtl
    >>> tfmtl.layers.GateOptions(temperature=2.0, load_balance=0.01).as_kwargs()
    {'temperature': 2.0, 'expert_dropout': 0.0, 'load_balance': 0.01, 'kind': 'softmax', 'k': 2, 'gamma': 1.0}
    >>> gate = tfmtl.layers.make_gate(4, tfmtl.layers.GateOptions(kind="dselect_k", k=1), name="g")
    >>> type(gate).__name__, gate.k
    ('DSelectKGate', 1)
    """

    temperature: float = 1.0
    expert_dropout: float = 0.0
    load_balance: float = 0.0
    kind: str = "softmax"
    k: int = 2
    gamma: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in GATE_KINDS:
            raise ValueError(f"GateOptions kind must be one of {GATE_KINDS}, got {self.kind!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, numbers.Integral) or self.k < 1:
            raise ValueError(f"GateOptions k (DSelect-k's number of selectors) must be an int >= 1, got {self.k!r}")
        if not self.gamma > 0:
            raise ValueError(f"GateOptions gamma must be > 0, got {self.gamma!r}")
        defaults = GateOptions.__dataclass_fields__
        other = ("temperature", "expert_dropout", "load_balance") if self.kind == "dselect_k" else ("k", "gamma")
        changed = {name: getattr(self, name) for name in other if getattr(self, name) != defaults[name].default}
        if changed:
            raise ValueError(f"GateOptions {changed} do not apply to kind={self.kind!r}; leave them at their defaults")
        object.__setattr__(self, "k", int(self.k))
        object.__setattr__(self, "gamma", float(self.gamma))

    def as_kwargs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def make_gate(num_experts: int, options: GateOptions = GateOptions(), *, name: str | None = None,
              **kwargs: Any) -> keras.layers.Layer:
    """The gate ``options`` asks for over ``num_experts`` experts: an :class:`ExpertGate` or a :class:`DSelectKGate`.

    Both map ``[B, D]`` inputs (and ``training``) to ``[B, E]`` weights and record
    them for :func:`tfmtl.diagnostics.expert_usage`. ``kwargs`` go to the gate's
    constructor (e.g. ``kernel_regularizer``; a DSelect-k gate keeps its own initialisation).

    Example:

    >>> import numpy as np, tfmtl
    >>> gate = tfmtl.layers.make_gate(3, tfmtl.layers.GateOptions(), kernel_initializer="zeros")
    >>> gate(np.ones([1, 2], np.float32)).numpy().round(3)
    array([[0.333, 0.333, 0.333]], dtype=float32)
    """
    if not isinstance(options, GateOptions):
        raise TypeError(f"options must be a tfmtl.layers.GateOptions, got {options!r}")
    if options.kind == "dselect_k":  # its selectors start as the reference's (near the smooth step's middle)
        kwargs = {key: value for key, value in kwargs.items() if key != "kernel_initializer"}
        return DSelectKGate(num_experts, k=options.k, gamma=options.gamma, name=name, **kwargs)
    return ExpertGate(num_experts, options.temperature, options.expert_dropout, options.load_balance, name=name,
                      **kwargs)


@keras.utils.register_keras_serializable(package="tfmtl")
class ExpertGate(keras.layers.Layer):
    """``softmax(W x / temperature)`` over ``num_experts`` experts (Ma et al. 2018, Eq. 8).

    Options against gate collapse (one expert taking everything), all off by default:

    * ``temperature`` above 1 flattens the gate, below 1 sharpens it;
    * ``expert_dropout``: while training, each expert is dropped for each example
      with this probability and the remaining weights are renormalised (if all
      are dropped, the example keeps its weights);
    * ``load_balance``: adds ``load_balance * (E * sum_e u_e**2 - 1)`` to the
      model's loss, where ``u_e`` is the batch-mean weight of expert e. It is 0
      when the gate uses the experts equally on average and E - 1 when one takes all.

    While :func:`tfmtl.diagnostics.expert_usage` runs, the gate also records its
    weights so their statistics can be reported.

    Args:
      num_experts: E.
      temperature: Softmax temperature.
      expert_dropout: Probability of dropping an expert per example while training.
      load_balance: Weight of the load-balancing loss.
      kernel_initializer: Initializer of the logits' kernel (the gate has no bias, as in the paper).
      kernel_regularizer: Regularizer of that kernel.

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

    def __init__(
        self,
        num_experts: int,
        temperature: float = 1.0,
        expert_dropout: float = 0.0,
        load_balance: float = 0.0,
        kernel_initializer: Any = "glorot_uniform",
        kernel_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if num_experts < 1:
            raise ValueError(f"a gate needs at least one expert, got {num_experts}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= expert_dropout < 1.0:
            raise ValueError(f"expert_dropout must be in [0, 1), got {expert_dropout}")
        if not load_balance >= 0.0:
            raise ValueError(f"load_balance must be >= 0, got {load_balance}")
        self.num_experts = int(num_experts)
        self.temperature = float(temperature)
        self.expert_dropout = float(expert_dropout)
        self.load_balance = float(load_balance)
        # Diagnostics record weights here; set with object.__setattr__ so Keras does not track the list.
        object.__setattr__(self, "recorded", None)
        self.kernel_initializer = clone_initializer(kernel_initializer, self.name)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.logits = keras.layers.Dense(
            self.num_experts, use_bias=False, kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer, name="logits",
        )

    def call(self, inputs: tf.Tensor, training: Any = None) -> tf.Tensor:
        weights = tf.nn.softmax(self.logits(inputs) / self.temperature, axis=-1)  # [B, E]
        if self.load_balance:
            usage = tf.reduce_mean(weights, axis=0)  # [E]
            self.add_loss(self.load_balance * (self.num_experts * tf.reduce_sum(tf.square(usage)) - 1.0))
        if self.expert_dropout and training:
            keep = tf.cast(tf.random.uniform(tf.shape(weights)) >= self.expert_dropout, weights.dtype)  # [B, E]
            kept = weights * keep
            total = tf.reduce_sum(kept, axis=-1, keepdims=True)  # [B, 1]
            weights = tf.where(total > 0, kept / tf.maximum(total, 1e-12), weights)
        if self.recorded is not None and tf.executing_eagerly():
            self.recorded.append(weights.numpy())
        return weights

    @property
    def kernel(self) -> tf.Variable:
        return self.logits.kernel

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_experts": self.num_experts,
            "temperature": self.temperature,
            "expert_dropout": self.expert_dropout,
            "load_balance": self.load_balance,
            "kernel_initializer": serialize(self.kernel_initializer),
            "kernel_regularizer": serialize(self.kernel_regularizer),
        }
