"""HoME: a two-level hierarchy of batch-normalised Swish experts (Wang et al., 2024), from the paper only.

No public reference code exists for HoME. These layers follow the structure the paper
(arXiv 2408.05430) describes; the exact formulas could not be checked against the authors'
code, so this is an implementation of the idea, not a reproduction. Each unverified choice
is listed in the class docstrings.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.layers.regularization import clone_initializer
from tfmtl.features.kinds import check_name, count, int_tuple
from tfmtl.layers.gate import ExpertGate, mix_experts
from tfmtl.layers.normalized_experts import NormalizedExperts

#: The shared branch's key in :meth:`HierarchyOfExperts.expert_names`; no group may take this name.
SHARED = "shared"


def check_groups(groups: Any, task_names: Sequence[str] | None = None) -> dict[str, tuple[str, ...]]:
    """``groups`` (group name -> task names) as a dict of tuples, or a ValueError naming what is wrong.

    Every task belongs to exactly one group; with ``task_names`` every listed task must be
    one of them and every one of them must be listed.

    Example:

    >>> from tfmtl.layers.home import check_groups
    >>> check_groups({"engagement": ["click", "like"], "watch": ["watch_time"]})
    {'engagement': ('click', 'like'), 'watch': ('watch_time',)}
    >>> check_groups({"a": ["click"]}, ["click", "like"])
    Traceback (most recent call last):
    ValueError: groups: tasks ['like'] are in no group; every task must be in exactly one group, got {'a': ['click']}
    """
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError(f"groups must be a non-empty mapping of group name to task names, got {groups!r}")
    resolved: dict[str, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    for group, members in groups.items():
        check_name(group, "group")
        if group == SHARED:
            raise ValueError(f"groups: the group name {SHARED!r} is reserved for the shared experts; rename it")
        if isinstance(members, (str, bytes)) or not isinstance(members, Sequence) or not members:
            raise ValueError(f"groups[{group!r}] must be a non-empty list of task names, got {members!r}")
        for task in members:
            if task in seen:
                where = "twice in that group" if seen[task] == group else f"in groups {seen[task]!r} and {group!r}"
                raise ValueError(f"groups: task {task!r} is listed {where}; every task must be in exactly one group")
            check_name(task, "task")
            seen[task] = group
        resolved[group] = tuple(members)
    if task_names is not None:
        unknown = [task for task in seen if task not in task_names]
        if unknown:
            raise ValueError(f"groups: {unknown} are not tasks of the model; tasks: {list(task_names)}")
        missing = [task for task in task_names if task not in seen]
        if missing:
            raise ValueError(
                f"groups: tasks {missing} are in no group; every task must be in exactly one group, "
                f"got {dict(groups)!r}"
            )
    return resolved


@keras.utils.register_keras_serializable(package="tfmtl")
class HierarchyOfExperts(keras.layers.Layer):
    """HoME's body: meta experts per task group, then per-task experts under a hierarchy mask.

    Shapes: B batch, D input width, H expert output units (``expert_units[-1]``),
    S shared experts per level, G experts per group per level, K experts per task,
    C groups, T tasks; every expert bank is a :class:`NormalizedExperts`
    (``Swish(BN(...))`` layers, a private low-rank feature gate per expert).
    ``g(t)`` is task t's group; ``[a; b]`` stacks expert outputs; ``mix(w, X) = sum_e w_e X_e``.

    Level 1 (meta experts, all reading the input v ``[B, D]``)::

        M_sh = shared meta experts(v)                         # [B, S, H]
        M_c  = group c's meta experts(v)                      # [B, G, H]
        z_c  = mix(softmax(v W_c), [M_c; M_sh])               # [B, H], one per group
               + mix(self_c(v), M_c)                          # self gate (if self_gate and G > 0)
        z_sh = mix(softmax(v W_sh), [M_1; ...; M_C; M_sh])    # [B, H] (only if S > 0)

    Level 2 (the hierarchy mask: task t sees only the shared experts, its group's and its own)::

        X_sh = shared experts(z_sh)                           # [B, S, H]
        X_c  = group c's experts(z_c)                         # [B, G, H]
        X_t  = task t's experts(z_g(t))                       # [B, K, H]
        y_t  = mix(softmax(z_g(t) W_t), [X_t; X_g(t); X_sh])  # [B, H]
               + mix(self_t(z_g(t)), X_t)                     # self gate (if self_gate and K > 0)

    A self gate over n experts is ``sigmoid(x U + b)`` when n == 1 and ``softmax(x U + b)``
    otherwise. Each ``z_c`` is thus its group's gate output plus a residual of the group's
    own experts, and is the next level's input; each ``y_t`` likewise for the task's own
    experts, and feeds task t's tower. Task t's output does not depend on other groups'
    level-2 experts or gates, nor on other tasks' experts or gates; it does depend on every
    level-1 meta expert through the shared branch ``z_sh`` (as in PLE's shared gate).

    From the paper's structure without reference code; not a reproduction. Unverified
    details and the choices made here:

    * the shared level-1 gate mixes all meta experts (PLE-style) rather than only the shared ones;
    * level-2 group and task experts read their group's ``z_c``, shared experts read ``z_sh``,
      and task t's gate and self gate are computed from ``z_g(t)``;
    * the gates are linear + softmax over the visible experts (:class:`~tfmtl.layers.ExpertGate`);
    * self gates sit on the group branches of level 1 and the task branches of level 2 (none on
      the shared branch) and are added as a residual to the branch's gated mixture;
    * the same S and G at both levels, experts of the same shape at both levels.

    Args:
      groups: Group name -> task names (every task in exactly one group; see :func:`check_groups`).
        Task outputs follow this order.
      num_shared_experts: S (0: no shared experts at either level and no ``z_sh``).
      num_group_experts: G (S + G must be >= 1).
      num_task_experts: K (level 2 only).
      expert_units: Units of each expert layer.
      feature_gate_rank: Rank r of every expert's feature gate (0 disables them).
      self_gate: Add the self-gated residuals.
      kernel_initializer: Initializer of every kernel (one fresh object per weight and expert).
      bias_initializer: Initializer of every bias (the BN shifts and the self gates' biases).
      kernel_regularizer: Regularizer of the experts' and self gates' kernels.
      bias_regularizer: Regularizer of the BN shifts and the self gates' biases.

    Call args:
      inputs: ``[B, D]`` tensor.
      training: Passed to the experts' BatchNormalization.

    Returns:
      dict of task name to ``[B, H]``.

    References:
      Wang, Cao, Fu, Gai, Zhou, "HoME: Hierarchy of Multi-Gate Experts for Multi-Task
      Learning at Kuaishou", arXiv 2408.05430, 2024.

    Example:

    >>> import numpy as np, tfmtl
    >>> home = tfmtl.layers.HierarchyOfExperts({"engagement": ["click", "like"], "watch": ["watch_time"]},
    ...                                        expert_units=(8,), feature_gate_rank=2)
    >>> out = home(np.ones([4, 6], np.float32))
    >>> {task: value.shape.as_list() for task, value in out.items()}
    {'click': [4, 8], 'like': [4, 8], 'watch_time': [4, 8]}
    >>> [name.split("/")[1] for name in home.expert_names("click")]  # what click's gate mixes
    ['task_click_0', 'group_engagement_0', 'shared_0']
    """

    def __init__(
        self,
        groups: Mapping[str, Sequence[str]],
        num_shared_experts: int = 1,
        num_group_experts: int = 1,
        num_task_experts: int = 1,
        expert_units: Sequence[int] = (64,),
        feature_gate_rank: int = 8,
        self_gate: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("name", "hierarchy_of_experts")
        super().__init__(**kwargs)
        resolved = check_groups(groups)
        num_shared_experts = count(num_shared_experts, "num_shared_experts")
        num_group_experts = count(num_group_experts, "num_group_experts")
        num_task_experts = count(num_task_experts, "num_task_experts")
        if num_shared_experts + num_group_experts < 1:
            raise ValueError(
                "HoME needs num_shared_experts + num_group_experts >= 1 (each level-1 gate needs an expert), "
                f"got {num_shared_experts} and {num_group_experts}"
            )
        feature_gate_rank = count(feature_gate_rank, "feature_gate_rank (0 = no feature gates)")
        self.group_names = tuple(resolved)
        self.group_tasks = tuple(resolved.values())  # tuples of task names, in group order
        self.task_names = tuple(task for members in self.group_tasks for task in members)
        self.num_shared_experts = num_shared_experts
        self.num_group_experts = num_group_experts
        self.num_task_experts = num_task_experts
        self.expert_units = int_tuple(expert_units, "expert_units", non_empty=True)
        self.feature_gate_rank = feature_gate_rank
        self.self_gate = bool(self_gate)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        S, G, K = num_shared_experts, num_group_experts, num_task_experts

        # -- sub-layers: level 1 (meta experts) --
        self.meta_shared_experts = self._experts(S, "meta_experts_shared")
        self.meta_group_experts = {c: self._experts(G, f"meta_experts_{c}") for c in self.group_names} if G else {}
        self.meta_gates = {c: self._gate(G + S, f"meta_gate_{c}") for c in self.group_names}
        self.meta_shared_gate = self._gate(len(self.group_names) * G + S, "meta_gate_shared") if S else None
        self.meta_self_gates = (
            {c: self._self_gate(G, f"meta_self_gate_{c}") for c in self.group_names} if self.self_gate and G else {}
        )
        # -- sub-layers: level 2 (masked experts) --
        self.shared_experts = self._experts(S, "shared_experts")
        self.group_experts = {c: self._experts(G, f"group_experts_{c}") for c in self.group_names} if G else {}
        self.task_experts = {t: self._experts(K, f"task_experts_{t}") for t in self.task_names} if K else {}
        self.task_gates = {t: self._gate(K + G + S, f"task_gate_{t}") for t in self.task_names}
        self.task_self_gates = (
            {t: self._self_gate(K, f"task_self_gate_{t}") for t in self.task_names} if self.self_gate and K else {}
        )

    def _experts(self, size: int, name: str) -> NormalizedExperts | None:
        if not size:
            return None
        return NormalizedExperts(
            size,
            self.expert_units,
            feature_gate_rank=self.feature_gate_rank,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            name=name,
        )

    def _gate(self, size: int, name: str) -> ExpertGate:
        initializer = clone_initializer(self.kernel_initializer, self.name, name)
        return ExpertGate(size, kernel_initializer=initializer, kernel_regularizer=self.kernel_regularizer, name=name)

    def _self_gate(self, size: int, name: str) -> keras.layers.Dense:
        return keras.layers.Dense(
            size,
            activation="sigmoid" if size == 1 else "softmax",
            kernel_initializer=clone_initializer(self.kernel_initializer, self.name, name, "kernel"),
            bias_initializer=clone_initializer(self.bias_initializer, self.name, name, "bias"),
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            name=name,
        )

    @property
    def group_of(self) -> dict[str, str]:
        """Task name -> its group's name."""
        return {task: group for group, members in zip(self.group_names, self.group_tasks) for task in members}

    @property
    def gates(self) -> dict[str, ExpertGate]:
        """Every softmax gate, keyed as :meth:`expert_names` expects (read by :func:`tfmtl.diagnostics.expert_usage`).

        Keys: ``"meta/<group>"`` and ``"meta/shared"`` (level 1), then the task names (level 2).
        """
        gates = {f"meta/{c}": self.meta_gates[c] for c in self.group_names}
        if self.meta_shared_gate is not None:
            gates[f"meta/{SHARED}"] = self.meta_shared_gate
        return {**gates, **{t: self.task_gates[t] for t in self.task_names}}

    def expert_names(self, gate: str) -> list[str]:
        """Names of the experts gate ``gate`` (a key of :attr:`gates`) mixes, in weight order."""
        S, G, K = self.num_shared_experts, self.num_group_experts, self.num_task_experts
        meta_shared = [f"{self.name}/meta_shared_{s}" for s in range(S)]
        meta = {c: [f"{self.name}/meta_{c}_{g}" for g in range(G)] for c in self.group_names}
        if gate == f"meta/{SHARED}" and S:
            return [name for c in self.group_names for name in meta[c]] + meta_shared
        if gate.startswith("meta/") and gate[5:] in meta:
            return meta[gate[5:]] + meta_shared
        if gate in self.task_names:
            return (
                [f"{self.name}/task_{gate}_{k}" for k in range(K)]
                + [f"{self.name}/group_{self.group_of[gate]}_{g}" for g in range(G)]
                + [f"{self.name}/shared_{s}" for s in range(S)]
            )
        raise ValueError(f"unknown gate {gate!r}; gates: {list(self.gates)}")

    def call(self, inputs: tf.Tensor, training: Any = None) -> dict[str, tf.Tensor]:
        # -- level 1: meta experts on the input --
        meta_shared = []  # [B, S, H] when S > 0
        if self.meta_shared_experts is not None:
            meta_shared = [self.meta_shared_experts(inputs, training=training)]
        meta_own = {c: [bank(inputs, training=training)] for c, bank in self.meta_group_experts.items()}  # [B, G, H]
        level1 = {}
        for c in self.group_names:
            pool = tf.concat(meta_own.get(c, []) + meta_shared, axis=1)  # [B, G + S, H]
            level1[c] = mix_experts(self.meta_gates[c](inputs, training=training), pool)  # [B, H]
            if c in self.meta_self_gates:
                level1[c] += mix_experts(self.meta_self_gates[c](inputs), meta_own[c][0])  # residual of own experts
        shared_input = None
        if self.meta_shared_gate is not None:
            pool = tf.concat([e for c in self.group_names for e in meta_own.get(c, [])] + meta_shared, axis=1)
            shared_input = mix_experts(self.meta_shared_gate(inputs, training=training), pool)  # [B, H]
        # -- level 2: each task sees the shared experts, its group's and its own --
        shared = []  # [B, S, H] when S > 0
        if self.shared_experts is not None:
            shared = [self.shared_experts(shared_input, training=training)]
        group = {c: [bank(level1[c], training=training)] for c, bank in self.group_experts.items()}  # [B, G, H]
        outputs = {}
        for t in self.task_names:
            c = self.group_of[t]
            x = level1[c]  # [B, H]
            own = [self.task_experts[t](x, training=training)] if self.task_experts else []  # [B, K, H]
            pool = tf.concat(own + group.get(c, []) + shared, axis=1)  # [B, K + G + S, H]
            outputs[t] = mix_experts(self.task_gates[t](x, training=training), pool)  # [B, H]
            if t in self.task_self_gates:
                outputs[t] += mix_experts(self.task_self_gates[t](x), own[0])  # residual of own experts
        return outputs

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "groups": {c: list(members) for c, members in zip(self.group_names, self.group_tasks)},
            "num_shared_experts": self.num_shared_experts,
            "num_group_experts": self.num_group_experts,
            "num_task_experts": self.num_task_experts,
            "expert_units": list(self.expert_units),
            "feature_gate_rank": self.feature_gate_rank,
            "self_gate": self.self_gate,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        }
