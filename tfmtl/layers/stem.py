"""One level of STEM: task and shared experts, "All Forward, Task-specific Backward" gates (Su et al., AAAI 2024)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from tfmtl._compat import keras, tf
from tfmtl.features.kinds import count, int_tuple
from tfmtl.layers.experts import Experts
from tfmtl.layers.gate import ExpertGate, mix_experts
from tfmtl.layers.mlp import MLP
from tfmtl.layers.regularization import Regularization

#: Key of the shared branch in a STEM level's inputs and outputs.
SHARED = "shared"


@keras.utils.register_keras_serializable(package="tfmtl")
class StemLayer(keras.layers.Layer):
    """Per-task and shared experts on their own inputs; every task's gate mixes all of them,
    but a task's loss reaches only its own and the shared experts.

    Shapes: B batch, D input width (the same for every branch), T tasks, m experts per
    task, m_s shared experts, E = T*m + m_s experts, H expert output units.

    With ``x_t`` task t's input and ``x_S`` the shared input (``[B, D]`` each), task t's
    experts ``S_t = [S_{t,1}(x_t) .. S_{t,m}(x_t)]`` and the shared experts
    ``A = [A_1(x_S) .. A_{m_s}(x_S)]``:

    * task t: ``g_t = softmax(W_t MLP_t(x_t + x_S))`` (``[B, E]``) and
      ``out_t = sum_e g_{t,e} I_{t,e}`` over the stacked ``I_t = [sg(S_1) .. S_t .. sg(S_T), A]``
      (``[B, E, H]``), where ``sg`` (stop-gradient) is applied to every ``S_j`` with
      ``j != t``: "All Forward, Task-specific Backward" (AFTB). Every expert shapes
      ``out_t``, but ``out_t``'s gradient reaches only task t's experts (and input
      ``x_t``), the shared experts, and task t's gate.
    * shared branch (``shared_gate=True``, for a next level): ``g_S = softmax(W_S MLP_S(x_S))``
      and ``out_S = sum_e g_{S,e} [S_1 .. S_T, A]_e``, with no stop-gradient. A next level
      reads ``x_t <- out_t`` and ``x_S <- out_S``, so through it a task's loss does reach
      the other tasks' experts of the levels below (as in the authors' code).

    ``MLP_t`` is ``gate_units`` ReLU layers (none by default) and ``W_t`` the linear
    logits of an :class:`ExpertGate` (no bias). Experts are ReLU MLPs
    (:class:`Experts`, ReLU after the last layer too).

    Implemented from ``models/STEM.py`` of the authors' repository (LiangcaiSu/STEM,
    whose README says it is under construction) and tfmtl's notes on the paper (its
    full text was not read here). Checked in that code: the stop-gradient on the other
    tasks' experts (``detach``), the gate input ``x_t + x_S``, the expert order
    ``[S_1 .. S_T, A]``, the shared gate from ``x_S`` without stop-gradient, and a next
    level reading ``out_t`` and ``out_S``. Differences:
    the authors' gate ends in a Dense layer with a bias (here a bias-free
    :class:`ExpertGate`, tfmtl's gate convention, with ``gate_units=()`` by default where
    their TikTok config has ``[128, 64]``), and their last level also computes a shared
    gate whose output nothing reads (here it is not built). Not a reproduction: results
    were not compared with the paper's.

    Args:
      task_names: One expert group and one gate per task.
      num_shared_experts: m_s (>= 0).
      num_task_experts: m (>= 0); at least one expert in all.
      expert_units: Hidden units of every expert.
      gate_units: Hidden ReLU units of each gate's MLP before its softmax logits (() = linear gate).
      shared_gate: Also output the shared branch (key ``"shared"``), for a next level.
      regularization: Initializers, regularizers and dropout of the experts and the
        gates (:class:`Regularization`; default: Glorot, none, none).

    Call args:
      inputs: dict of each task name and ``"shared"`` to its ``[B, D]`` input.

    Returns:
      dict of task name (and ``"shared"`` with ``shared_gate``) to ``[B, H]``.

    References:
      Su, Pan, Wang, Xiao, Quan, Chen, Jiang, "STEM: Unleashing the Power of
      Embeddings for Multi-task Recommendation", AAAI 2024 (arXiv 2308.13537).

    Example:

    >>> import tensorflow as tf, tfmtl
    >>> level = tfmtl.layers.StemLayer(("ctr", "cvr"), num_shared_experts=1, num_task_experts=1, expert_units=(4,),
    ...                                name="stem_0")
    >>> out = level({"ctr": tf.ones([2, 3]), "cvr": tf.zeros([2, 3]), "shared": tf.ones([2, 3])})
    >>> {name: value.shape.as_list() for name, value in out.items()}
    {'ctr': [2, 4], 'cvr': [2, 4]}
    >>> level.expert_names("ctr")
    ['stem_0/ctr_0', 'stem_0/cvr_0', 'stem_0/shared_0']
    """

    def __init__(
        self,
        task_names: Sequence[str],
        num_shared_experts: int = 1,
        num_task_experts: int = 1,
        expert_units: Sequence[int] = (64,),
        gate_units: Sequence[int] = (),
        shared_gate: bool = False,
        regularization: Regularization | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.regularization = Regularization.from_config(regularization)
        reg = self.regularization
        names = () if isinstance(task_names, str) else tuple(task_names or ())
        if not names or SHARED in names or len(set(names)) < len(names):
            raise ValueError(f"task_names must be distinct names, at least one, none {SHARED!r}; got {task_names!r}")
        num_shared_experts = count(num_shared_experts, "num_shared_experts")
        num_task_experts = count(num_task_experts, "num_task_experts")
        if num_shared_experts + num_task_experts < 1:
            raise ValueError("a STEM level needs at least one expert: num_shared_experts + num_task_experts is 0")
        self.task_names = tuple(str(name) for name in task_names)
        self.num_shared_experts = int(num_shared_experts)
        self.num_task_experts = int(num_task_experts)
        self.expert_units = int_tuple(expert_units, "expert_units", non_empty=True)
        self.gate_units = int_tuple(gate_units, "gate_units")
        self.shared_gate = bool(shared_gate)
        # -- sub-layers --
        self.task_experts = (
            {t: Experts(self.num_task_experts, self.expert_units, **reg.mlp_kwargs(), name=f"{t}_experts")
             for t in self.task_names}
            if self.num_task_experts else {}
        )
        self.shared_experts = (
            Experts(self.num_shared_experts, self.expert_units, **reg.mlp_kwargs(), name=f"{SHARED}_experts")
            if self.num_shared_experts else None
        )
        gated = self.task_names + ((SHARED,) if self.shared_gate else ())
        total = len(self.task_names) * self.num_task_experts + self.num_shared_experts  # E
        self.gate_hidden = (
            {g: MLP(self.gate_units, final_activation="relu", **reg.layer_kwargs(), name=f"{g}_gate_hidden")
             for g in gated}
            if self.gate_units else {}
        )
        self.gates = {g: ExpertGate(total, **reg.gate_kwargs(), name=f"{g}_gate") for g in gated}

    def expert_names(self, gate: str) -> list[str]:
        """Names of the experts gate ``gate`` (a task name or ``"shared"``) mixes, in weight order (every gate's)."""
        own = [f"{self.name}/{t}_{k}" for t in self.task_names for k in range(self.num_task_experts)]
        return own + [f"{self.name}/{SHARED}_{s}" for s in range(self.num_shared_experts)]

    def gate_weights(self, gate: str, gate_input: tf.Tensor, training: Any = None) -> tf.Tensor:
        """``[B, E]`` softmax weights of gate ``gate`` for its ``[B, D]`` input (``x_t + x_S``, or ``x_S``)."""
        hidden = self.gate_hidden[gate](gate_input, training=training) if self.gate_hidden else gate_input
        return self.gates[gate](hidden, training=training)

    def call(self, inputs: Mapping[str, tf.Tensor], training: Any = None) -> dict[str, tf.Tensor]:
        # -- wiring: each branch's input --
        if not isinstance(inputs, Mapping) or set(inputs) != set(self.task_names + (SHARED,)):
            keys = sorted(inputs) if isinstance(inputs, Mapping) else type(inputs).__name__
            raise ValueError(f"a STEM level takes a dict with keys {sorted(self.task_names + (SHARED,))}, got {keys}")
        shared_input = inputs[SHARED]  # [B, D]
        for t in self.task_names:
            if inputs[t].shape[-1] != shared_input.shape[-1]:
                raise ValueError(
                    f"task {t!r}'s input has width {inputs[t].shape[-1]}, the shared input {shared_input.shape[-1]}: "
                    "the gates add them, so they must be equal"
                )
        # -- experts: every group on its own input --
        own = {t: self.task_experts[t](inputs[t], training=training) for t in self.task_experts}  # [B, m, H]
        shared = [self.shared_experts(shared_input, training=training)] if self.shared_experts else []  # [B, m_s, H]
        # -- task gates: all experts forward, only task t's own and the shared ones backward --
        outputs = {}
        for t in self.task_names:
            pool = tf.concat(
                [own[j] if j == t else tf.stop_gradient(own[j]) for j in self.task_names if j in own] + shared, axis=1
            )  # [B, E, H]
            outputs[t] = mix_experts(self.gate_weights(t, inputs[t] + shared_input, training), pool)  # [B, H]
        # -- shared gate (inner levels): all experts, no stop-gradient --
        if self.shared_gate:
            pool = tf.concat([own[j] for j in self.task_names if j in own] + shared, axis=1)  # [B, E, H]
            outputs[SHARED] = mix_experts(self.gate_weights(SHARED, shared_input, training), pool)
        return outputs

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "task_names": list(self.task_names),
            "num_shared_experts": self.num_shared_experts,
            "num_task_experts": self.num_task_experts,
            "expert_units": list(self.expert_units),
            "gate_units": list(self.gate_units),
            "shared_gate": self.shared_gate,
            "regularization": self.regularization.get_config(),
        }


__all__ = ["SHARED", "StemLayer"]
