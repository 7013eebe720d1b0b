"""Customized Gate Control (CGC): the extraction layer of PLE (Tang et al., RecSys 2020)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from tfmtl._compat import keras, tf
from tfmtl.features.kinds import int_tuple
from tfmtl.layers.experts import Experts
from tfmtl.layers.gate import GateOptions, make_gate, mix_experts
from tfmtl.layers.regularization import Regularization

#: Key of the shared branch in an extraction layer's inputs and outputs.
SHARED = "shared"


@keras.utils.register_keras_serializable(package="tfmtl")
class ExtractionLayer(keras.layers.Layer):
    """Shared experts plus task-specific experts, with per-task gates over [own + shared].

    Shapes: B batch, D input width, S shared experts, K experts per task, T tasks,
    H expert output units. Task t's output is its gate (over its K experts and the
    S shared experts, computed from task t's input) mixing those K + S experts.
    With ``shared_gate=True`` (PLE's inner levels) a shared gate over all T*K + S
    experts, computed from the shared input, gives the next level's shared input.

    Args:
      task_names: One gate (and one expert group) per task.
      num_shared_experts: S.
      num_task_experts: K (0 gives MMoE over the shared experts).
      expert_units: Hidden units of every expert.
      shared_gate: Also output the shared branch (under the key ``"shared"``).
      temperature: Softmax temperature of every gate.
      expert_dropout: Expert dropout of every gate (see :class:`ExpertGate`).
      load_balance: Weight of every gate's load-balancing loss.
      kind: ``"softmax"`` or ``"dselect_k"`` (see :class:`GateOptions`).
      k: DSelect-k's number of selectors (``kind="dselect_k"`` only).
      gamma: DSelect-k's smooth-step width (``kind="dselect_k"`` only).
      regularization: Initializers, regularizers and dropout of the experts and gates
        (:class:`Regularization`; default: Glorot, none, none).

    Call args:
      inputs: ``[B, D]`` (first level: every branch reads it), or a dict with one
        ``[B, D]`` per task and ``"shared"`` (the previous level's outputs).

    Returns:
      dict of task name (and ``"shared"``) to ``[B, H]``.

    Example:

    >>> import tensorflow as tf, tfmtl
    >>> cgc = tfmtl.layers.ExtractionLayer(("ctr", "cvr"), num_shared_experts=2, num_task_experts=1,
    ...                                    expert_units=(8,), shared_gate=True)
    >>> sorted(cgc(tf.ones([3, 5])))
    ['ctr', 'cvr', 'shared']
    """

    def __init__(
        self,
        task_names: Sequence[str],
        num_shared_experts: int,
        num_task_experts: int,
        expert_units: Sequence[int],
        shared_gate: bool = False,
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
        if not task_names or SHARED in task_names:
            raise ValueError(f"task_names must be non-empty and must not include {SHARED!r}: {task_names!r}")
        if num_shared_experts < 0 or num_task_experts < 0 or num_shared_experts + num_task_experts < 1:
            raise ValueError("an extraction layer needs at least one expert per gate")
        self.task_names = tuple(task_names)
        self.num_shared_experts = int(num_shared_experts)
        self.num_task_experts = int(num_task_experts)
        self.expert_units = int_tuple(expert_units, "expert_units")
        self.shared_gate = bool(shared_gate)
        self.temperature = float(temperature)
        self.expert_dropout = float(expert_dropout)
        self.load_balance = float(load_balance)
        self.gate_options = GateOptions(self.temperature, self.expert_dropout, self.load_balance, kind, k, gamma)
        # -- sub-layers --
        self.shared_experts = (
            Experts(self.num_shared_experts, self.expert_units, **reg.mlp_kwargs(), name="shared_experts") if self.num_shared_experts else None
        )
        self.task_experts = (
            {t: Experts(self.num_task_experts, self.expert_units, **reg.mlp_kwargs(), name=f"{t}_experts") for t in self.task_names}
            if self.num_task_experts
            else {}
        )
        per_task = self.num_task_experts + self.num_shared_experts
        self.gates = {t: make_gate(per_task, self.gate_options, **reg.gate_kwargs(), name=f"{t}_gate") for t in self.task_names}
        if self.shared_gate:
            total = len(self.task_names) * self.num_task_experts + self.num_shared_experts
            self.gates[SHARED] = make_gate(total, self.gate_options, **reg.gate_kwargs(), name=f"{SHARED}_gate")

    def expert_names(self, gate: str) -> list[str]:
        """Names of the experts gate ``gate`` (a task name or ``"shared"``) mixes, in weight order."""
        shared = [f"{self.name}/shared_{s}" for s in range(self.num_shared_experts)]
        own = {t: [f"{self.name}/{t}_{k}" for k in range(self.num_task_experts)] for t in self.task_names}
        if gate == SHARED:
            return [name for t in self.task_names for name in own[t]] + shared
        return own[gate] + shared

    def call(self, inputs: tf.Tensor | Mapping[str, tf.Tensor], training: Any = None) -> dict[str, tf.Tensor]:
        # -- wiring: which input each branch reads --
        if isinstance(inputs, Mapping):
            task_inputs, shared_input = {t: inputs[t] for t in self.task_names}, inputs[SHARED]
        else:
            task_inputs, shared_input = {t: inputs for t in self.task_names}, inputs
        shared = [self.shared_experts(shared_input)] if self.shared_experts else []  # [B, S, H]
        own = {t: [experts(task_inputs[t])] for t, experts in self.task_experts.items()}  # [B, K, H]
        outputs = {}
        for task in self.task_names:
            pool = tf.concat(own.get(task, []) + shared, axis=1)  # [B, K + S, H]
            outputs[task] = mix_experts(self.gates[task](task_inputs[task], training=training), pool)
        if self.shared_gate:
            pool = tf.concat([e for t in self.task_names for e in own.get(t, [])] + shared, axis=1)  # [B, T*K + S, H]
            outputs[SHARED] = mix_experts(self.gates[SHARED](shared_input, training=training), pool)
        return outputs

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "task_names": list(self.task_names),
            "num_shared_experts": self.num_shared_experts,
            "num_task_experts": self.num_task_experts,
            "expert_units": list(self.expert_units),
            "shared_gate": self.shared_gate,
            "temperature": self.temperature,
            "expert_dropout": self.expert_dropout,
            "load_balance": self.load_balance,
            "kind": self.gate_options.kind,
            "k": self.gate_options.k,
            "gamma": self.gate_options.gamma,
            "regularization": self.regularization.get_config(),
        }
