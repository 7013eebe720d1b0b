"""HoME: Hierarchy of Multi-Gate Experts (Wang et al., 2024), implemented from the paper (no reference code)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from tfmtl.features.schema import Schema
from tfmtl.layers.home import HierarchyOfExperts, check_groups
from tfmtl.models.builder import build_model, check_units
from tfmtl.models.model import MultiTaskModel
from tfmtl.tasks.task import Task, check_tasks

#: The one group of ``home(..., groups=None)``.
DEFAULT_GROUP = "all_tasks"


def home(
    schema: Schema,
    tasks: Sequence[Task],
    *,
    groups: Mapping[str, Sequence[str]] | None = None,
    num_shared_experts: int = 1,
    num_group_experts: int = 1,
    num_task_experts: int = 1,
    expert_units: Sequence[int] = (64,),
    feature_gate_rank: int = 8,
    self_gate: bool = True,
    name: str = "home",
    **options: Any,
) -> MultiTaskModel:
    """HoME: batch-normalised Swish experts in a two-level hierarchy over task groups.

    Level 1 has shared meta experts and meta experts per task group (e.g. watch-time
    tasks vs interaction tasks); a gate per group and a shared gate mix them. Level 2
    has shared, per-group and per-task experts reading those mixtures; task t's gate
    sees only the shared experts, its group's and its own (the hierarchy mask). Every
    expert is ``Swish(BatchNorm(...))`` with a private low-rank feature gate on its
    input, and self gates add a residual of each branch's own experts. The equations
    and every unverified choice are in :class:`~tfmtl.layers.HierarchyOfExperts` and
    :class:`~tfmtl.layers.NormalizedExperts`. There is no public reference code: this is
    built from the paper's description and is not a reproduction of its results.

    Args:
      schema: Adapted feature schema.
      tasks: The tasks; each gets level-2 experts, a gate, a tower and a head.
      groups: Group name -> names of its tasks; every task in exactly one group.
        None puts all tasks in one group (``"all_tasks"``), so the group experts are
        shared by all tasks as well and only the task experts are masked: pass groups
        to get the hierarchy the paper describes.
      num_shared_experts: Shared experts per level.
      num_group_experts: Experts per group per level.
      num_task_experts: Experts per task (level 2).
      expert_units: Units of each expert layer.
      feature_gate_rank: Rank of each expert's feature gate (0 disables them).
      self_gate: Add the self-gated residuals of each branch's own experts.
      name: Model name.
      **options: Passed to :func:`~tfmtl.models.builder.build_model`
        (``interaction``, ``cross_layers``, ``cross_projection_dim``, ``regularization``: its
        initializers and regularizers reach every expert and gate; HoME's experts are
        batch-normalised and take no dropout, so ``Regularization.dropout`` applies to the towers only).

    Returns:
      A :class:`MultiTaskModel` with one output per task.

    References:
      Wang, Cao, Fu, Gai, Zhou, "HoME: Hierarchy of Multi-Gate Experts for Multi-Task
      Learning at Kuaishou", arXiv 2408.05430, 2024.

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> tasks = [tfmtl.Task.binary("click"), tfmtl.Task.binary("like"), tfmtl.Task.regression("watch_time")]
    >>> model = tfmtl.models.home(schema, tasks, groups={"engagement": ["click", "like"], "watch": ["watch_time"]},
    ...                           expert_units=(8,), feature_gate_rank=2)
    >>> {k: v.shape.as_list() for k, v in model({"price": np.array([1.0, 2.0])}).items()}
    {'click': [2, 1], 'like': [2, 1], 'watch_time': [2, 1]}
    """
    units = check_units(expert_units, "expert_units")
    names = [task.name for task in check_tasks(tasks)]
    resolved = check_groups({DEFAULT_GROUP: names} if groups is None else groups, names)

    def body(features, tasks):
        layer = HierarchyOfExperts(
            resolved,
            num_shared_experts=num_shared_experts,
            num_group_experts=num_group_experts,
            num_task_experts=num_task_experts,
            expert_units=units,
            feature_gate_rank=feature_gate_rank,
            self_gate=self_gate,
            **features.regularization.layer_kwargs(),
            name="hierarchy_of_experts",
        )
        return layer(features.shared)  # {task: [B, H]}

    return build_model(schema, tasks, body, name=name, **options)
