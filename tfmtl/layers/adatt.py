"""One fusion level of AdaTT, Adaptive Task-to-Task Fusion (Li et al., KDD 2023)."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.features.kinds import count, int_tuple
from tfmtl.layers.experts import Experts
from tfmtl.layers.regularization import Regularization
from tfmtl.layers.gate import GateOptions, make_gate, mix_experts

#: Key of the shared module in a fusion level's inputs and outputs.
SHARED = "shared"


@keras.utils.register_keras_serializable(package="tfmtl")
class AdaptiveTaskFusion(keras.layers.Layer):
    """One AdaTT level: every task's gate fuses the experts of all tasks and the shared experts.

    Shapes: B batch, D input width, T tasks, m experts per task, m_s shared experts,
    E = T*m + m_s experts in all, H expert output units. ``X_t`` is task t's input and
    ``X_s`` the shared module's (on the first level, all are the same ``[B, D]`` features).

    * Experts: task t's m ReLU MLP experts read ``X_t`` and give ``O_t`` (``[B, m, H]``);
      the m_s shared experts read ``X_s`` and give ``O_s``. All of them, in the order
      (task 0's, task 1's, ..., shared), form the pool ``O`` (``[B, E, H]``).
    * Gates: ``g_t = softmax(W_t X_t)`` (``[B, E]``, linear, over **all** E experts).
    * Native (self-expert) residual, with ``residual=True``: ``g_t`` plus ``rho_t``, a
      ``[E]`` vector that is 0 outside task t's own block. With m = 1 and m_s <= 1 the
      block is 1, so ``F_t = sum_e g_te O_e + O_t``; otherwise it is a learnable
      ``v_t`` (``[m]``, drawn from ``U(-sqrt(1/m), sqrt(1/m))``), so
      ``F_t = sum_e g_te O_e + sum_k v_tk O_tk``.
    * Output: ``F_t = sum_e (g_t + rho_t)_e O_e`` (``[B, H]``), task t's next input.
    * With ``shared_gate=True`` (every level but the last, when m_s > 0) the shared
      module gets the same kind of gate over all E experts, from ``X_s``, with the
      residual on its own block (``v_s`` of ``[m_s]``, or 1), giving the next ``X_s``.

    Where the residual goes: as in the reference's ``AdaTTWSharedExps`` (the general
    ``att_g`` variant), ``rho_t`` is added to the softmax gate *weights* (not the logits)
    before the weighted sum; mixing is linear, so this equals adding the residual to the
    fused output as ``AdaTTSp`` does. The gate layer itself (and what
    :func:`tfmtl.diagnostics.expert_usage` records) stays a softmax summing to 1.

    Choices where this differs from or goes beyond the reference (facebookresearch/AdaTT
    ``mtl_lib.py``):

    * The fixed residual of 1 is used when m = 1 and m_s is 0 or 1; the reference's
      ``AdaTTWSharedExps`` uses it only when every module, the shared one included, has
      exactly one expert, so with m_s = 0 it would learn ``v``. With m_s = 0 this layer
      is AdaTT-sp (``AdaTTSp``: no shared experts and no shared gate).
    * The gates are tfmtl gates (:func:`~tfmtl.layers.make_gate`), so
      :class:`GateOptions` applies, DSelect-k included. The softmax gate has no bias
      (as in MMoE, Ma et al. 2018, Eq. 8); the reference's ``nn.Linear`` has one.
    * Experts are :class:`Experts` banks (Glorot-uniform kernels per expert, zero
      biases); the reference uses PyTorch's default ``nn.Linear`` initialisation.

    Args:
      task_names: One task module (m experts and a gate) per name.
      num_task_experts: m (>= 1).
      num_shared_experts: m_s (>= 0; 0 gives AdaTT-sp).
      expert_units: Hidden units of every expert MLP (ReLU after every layer).
      shared_gate: Also output the shared module's fusion (under ``"shared"``).
      residual: Add the native-expert residual (the reference calls it "crucial").
      temperature, expert_dropout, load_balance, kind, k, gamma: Every gate's
        options (see :class:`GateOptions`).
      regularization: Initializers, regularizers and dropout of the experts and gates
        (:class:`~tfmtl.layers.Regularization`).

    Call args:
      inputs: ``[B, D]`` (first level: every module reads it), or a dict with one
        ``[B, D]`` per task and, when m_s > 0, ``"shared"`` (the previous level's outputs).
      training: Passed to the gates (expert dropout, DSelect-k's losses).

    Returns:
      dict of task name (and ``"shared"``) to ``[B, H]``.

    References:
      Li et al., "AdaTT: Adaptive Task-to-Task Fusion Network for Multitask Learning
      in Recommendations", KDD 2023 (arXiv 2304.04959). Written after the reference
      code's ``AdaTTWSharedExps``; not a reproduction of the paper's results.

    Example:

    >>> import tensorflow as tf, tfmtl
    >>> level = tfmtl.layers.AdaptiveTaskFusion(("ctr", "cvr"), num_task_experts=1, num_shared_experts=1,
    ...                                         expert_units=(8,), shared_gate=True, name="level")
    >>> {name: out.shape.as_list() for name, out in level(tf.ones([3, 5])).items()}
    {'ctr': [3, 8], 'cvr': [3, 8], 'shared': [3, 8]}
    >>> level.expert_names("ctr")
    ['level/ctr_0', 'level/cvr_0', 'level/shared_0']
    """

    def __init__(
        self,
        task_names: Sequence[str],
        num_task_experts: int = 1,
        num_shared_experts: int = 1,
        expert_units: Sequence[int] = (64,),
        shared_gate: bool = False,
        residual: bool = True,
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
        if (isinstance(task_names, str) or not task_names or SHARED in task_names
                or len(set(task_names)) != len(task_names)):
            raise ValueError(f"task_names must be distinct names, not including {SHARED!r}; got {task_names!r}")
        num_task_experts = count(num_task_experts, "num_task_experts", minimum=1)
        num_shared_experts = count(num_shared_experts, "num_shared_experts")
        if shared_gate and not num_shared_experts:
            raise ValueError("shared_gate=True feeds the next level's shared experts, but num_shared_experts is 0")
        self.task_names = tuple(task_names)
        self.num_task_experts = int(num_task_experts)
        self.num_shared_experts = int(num_shared_experts)
        self.expert_units = int_tuple(expert_units, "expert_units", non_empty=True)
        self.shared_gate = bool(shared_gate)
        self.residual = bool(residual)
        self.gate_options = GateOptions(temperature, expert_dropout, load_balance, kind, k, gamma)
        self.regularization = reg = Regularization.from_config(regularization)
        m, m_s, num_tasks = self.num_task_experts, self.num_shared_experts, len(self.task_names)
        self.num_experts = num_tasks * m + m_s
        #: Fixed residual of 1 on the own block (m = 1, m_s <= 1), else learnable v.
        self.unit_residual = m == 1 and m_s <= 1
        # -- sub-layers --
        self.task_experts = {
            t: Experts(m, self.expert_units, **reg.mlp_kwargs(), name=f"{t}_experts") for t in self.task_names
        }
        self.shared_experts = Experts(m_s, self.expert_units, **reg.mlp_kwargs(), name="shared_experts") if m_s else None
        gated = self.task_names + ((SHARED,) if self.shared_gate else ())
        self.gates = {
            name: make_gate(self.num_experts, self.gate_options, **reg.gate_kwargs(), name=f"{name}_gate") for name in gated
        }

    def build(self, input_shape: Any) -> None:
        # -- native-expert residual weights v (only when not the fixed 1) --
        self.task_residual = self.shared_residual = None
        if self.residual and not self.unit_residual:
            m, m_s = self.num_task_experts, self.num_shared_experts
            self.task_residual = self.add_weight(
                name="task_residual", shape=(len(self.task_names), m),
                initializer=keras.initializers.RandomUniform(-math.sqrt(1.0 / m), math.sqrt(1.0 / m)),
            )  # [T, m]
            if self.shared_gate:
                self.shared_residual = self.add_weight(
                    name="shared_residual", shape=(m_s,),
                    initializer=keras.initializers.RandomUniform(-math.sqrt(1.0 / m_s), math.sqrt(1.0 / m_s)),
                )  # [m_s]
        super().build(input_shape)

    def expert_names(self, gate: str) -> list[str]:
        """Names of the experts every gate (a task's or ``"shared"``) mixes, in weight order."""
        own = [f"{self.name}/{t}_{k}" for t in self.task_names for k in range(self.num_task_experts)]
        return own + [f"{self.name}/shared_{s}" for s in range(self.num_shared_experts)]

    def residual_weights(self, gate: str) -> tf.Tensor | None:
        """``rho``: the ``[E]`` vector added to gate ``gate``'s weights (1 or v on its own block, 0 elsewhere)."""
        if not self.residual:
            return None
        if gate == SHARED:
            start, size, v = self.num_experts - self.num_shared_experts, self.num_shared_experts, self.shared_residual
        else:
            index = self.task_names.index(gate)
            start, size = index * self.num_task_experts, self.num_task_experts
            v = None if self.task_residual is None else self.task_residual[index]
        if v is None:  # the fixed residual of 1
            ones = np.pad(np.ones(size), (start, self.num_experts - start - size))  # [E]
            return tf.constant(ones, dtype=self.compute_dtype)
        return tf.pad(v, [[start, self.num_experts - start - size]])  # [E]

    def call(self, inputs: tf.Tensor | Mapping[str, tf.Tensor], training: Any = None) -> dict[str, tf.Tensor]:
        # -- wiring: which input each module reads --
        if isinstance(inputs, Mapping):
            task_inputs = {t: inputs[t] for t in self.task_names}
            shared_input = inputs[SHARED] if self.shared_experts is not None or self.shared_gate else None
        else:
            task_inputs, shared_input = {t: inputs for t in self.task_names}, inputs
        banks = [self.task_experts[t](task_inputs[t]) for t in self.task_names]  # T x [B, m, H]
        if self.shared_experts is not None:
            banks.append(self.shared_experts(shared_input))  # [B, m_s, H]
        pool = tf.concat(banks, axis=1)  # [B, E, H]
        # -- fusion: gate weights (+ residual) times all experts --
        gate_inputs = dict(task_inputs, **({SHARED: shared_input} if self.shared_gate else {}))
        outputs = {}
        for name, gate in self.gates.items():
            weights = gate(gate_inputs[name], training=training)  # [B, E]
            rho = self.residual_weights(name)
            if rho is not None:
                weights = weights + rho  # [B, E]
            outputs[name] = mix_experts(weights, pool)  # [B, H]
        return outputs

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "task_names": list(self.task_names),
            "num_task_experts": self.num_task_experts,
            "num_shared_experts": self.num_shared_experts,
            "expert_units": list(self.expert_units),
            "shared_gate": self.shared_gate,
            "residual": self.residual,
            **self.gate_options.as_kwargs(),
            "regularization": self.regularization.get_config(),
        }
