"""Experts shared by several gates: MMoE (one gate per task) and OMoE (one gate)."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl._compat import keras, tf
from tfmtl.features.kinds import int_tuple
from tfmtl.layers.experts import Experts
from tfmtl.layers.gate import GateOptions, make_gate, mix_experts
from tfmtl.layers.regularization import Regularization


@keras.utils.register_keras_serializable(package="tfmtl")
class MixtureOfExperts(keras.layers.Layer):
    """Experts shared by several gates; each gate mixes them for one task.

    Shapes: B batch, D input width, E experts, H expert output units.
    For gate k: ``g_k = softmax(W_k x / temperature)`` (``[B, E]``, a linear map of
    the input as in Ma et al. 2018, Eq. 8; or a :class:`DSelectKGate` with
    ``kind="dselect_k"``) and ``f_k(x) = sum_i g_k(x)_i * expert_i(x)``.

    Args:
      num_experts: E.
      expert_units: Hidden units of each expert MLP.
      gate_names: One gate per name (task names for MMoE; a single name for OMoE).
      temperature: Softmax temperature of every gate.
      expert_dropout: Expert dropout of every gate (see :class:`ExpertGate`).
      load_balance: Weight of every gate's load-balancing loss.
      kind: ``"softmax"`` or ``"dselect_k"`` (see :class:`GateOptions`).
      k: DSelect-k's number of selectors (``kind="dselect_k"`` only).
      gamma: DSelect-k's smooth-step width (``kind="dselect_k"`` only).
      regularization: Initializers, regularizers and dropout of the experts and gates
        (:class:`Regularization`; default: Glorot, none, none).

    Call args:
      inputs: ``[B, D]`` tensor.

    Returns:
      dict of gate name to ``[B, H]`` mixture.

    Example:

    >>> import tensorflow as tf, tfmtl
    >>> moe = tfmtl.layers.MixtureOfExperts(4, (8,), gate_names=("ctr", "cvr"))
    >>> {name: out.shape.as_list() for name, out in moe(tf.ones([2, 5])).items()}
    {'ctr': [2, 8], 'cvr': [2, 8]}
    """

    def __init__(
        self,
        num_experts: int,
        expert_units: Sequence[int],
        gate_names: Sequence[str],
        temperature: float = 1.0,
        expert_dropout: float = 0.0,
        load_balance: float = 0.0,
        kind: str = "softmax",
        k: int = 2,
        gamma: float = 1.0,
        regularization: Regularization | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.regularization = Regularization.from_config(regularization)
        reg = self.regularization
        if not gate_names:
            raise ValueError("MixtureOfExperts needs at least one gate name")
        self.num_experts = int(num_experts)
        self.expert_units = int_tuple(expert_units, "expert_units")
        self.gate_names = tuple(gate_names)
        self.temperature = float(temperature)
        self.expert_dropout = float(expert_dropout)
        self.load_balance = float(load_balance)
        self.gate_options = GateOptions(self.temperature, self.expert_dropout, self.load_balance, kind, k, gamma)
        self.experts = Experts(self.num_experts, self.expert_units, **reg.mlp_kwargs(), name="experts")
        self.gates = {
            name: make_gate(self.num_experts, self.gate_options, **reg.gate_kwargs(), name=f"{name}_gate")
            for name in self.gate_names
        }

    def expert_names(self, gate: str) -> list[str]:
        """Names of the experts gate ``gate`` mixes, in weight order (all gates share them)."""
        return [f"{self.name}/expert_{e}" for e in range(self.num_experts)]

    def gate_weights(self, inputs: tf.Tensor, training: Any = None) -> dict[str, tf.Tensor]:
        """Gate weights per gate name, each ``[B, E]``."""
        return {name: gate(inputs, training=training) for name, gate in self.gates.items()}

    def call(self, inputs: tf.Tensor, training: Any = None) -> dict[str, tf.Tensor]:
        expert_outputs = self.experts(inputs)  # [B, E, H]
        weights = self.gate_weights(inputs, training=training)
        return {name: mix_experts(w, expert_outputs) for name, w in weights.items()}

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_experts": self.num_experts,
            "expert_units": list(self.expert_units),
            "gate_names": list(self.gate_names),
            "temperature": self.temperature,
            "expert_dropout": self.expert_dropout,
            "load_balance": self.load_balance,
            "kind": self.gate_options.kind,
            "k": self.gate_options.k,
            "gamma": self.gate_options.gamma,
            "regularization": self.regularization.get_config(),
        }
