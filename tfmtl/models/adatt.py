"""AdaTT: Adaptive Task-to-Task Fusion Network (Li et al., KDD 2023)."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl.features.kinds import count
from tfmtl.features.schema import Schema
from tfmtl.layers.adatt import AdaptiveTaskFusion
from tfmtl.layers.gate import GateOptions
from tfmtl.models.builder import build_model, check_units
from tfmtl.models.model import MultiTaskModel
from tfmtl.tasks.task import Task


def adatt(
    schema: Schema,
    tasks: Sequence[Task],
    *,
    num_levels: int = 2,
    num_task_experts: int = 1,
    num_shared_experts: int = 1,
    expert_units: Sequence[int] = (64,),
    residual: bool = True,
    gate: GateOptions = GateOptions(),
    name: str = "adatt",
    **options: Any,
) -> MultiTaskModel:
    """AdaTT: stacked fusion levels where each task's gate fuses all tasks' experts and the shared experts.

    Each level (:class:`~tfmtl.layers.AdaptiveTaskFusion`) has ``num_task_experts``
    experts per task, reading that task's input, and ``num_shared_experts`` shared
    experts, reading the shared input. Task t's gate is a softmax over all of them, its
    own experts are added back as a residual, and the fusion is task t's next input.
    Every level but the last also fuses a new shared input. The first level's inputs
    are all the encoded features; the last level's task outputs feed the towers.
    ``num_shared_experts=0`` gives AdaTT-sp.

    Args:
      schema: Adapted feature schema.
      tasks: The tasks; each gets a module of experts and a gate per level, a tower and a head.
      num_levels: Fusion levels.
      num_task_experts: Experts per task per level (m).
      num_shared_experts: Shared experts per level (m_s; 0 = AdaTT-sp).
      expert_units: Hidden units of every expert.
      residual: Add each task's own experts back to its fusion (the reference's
        ``self_exp_res_connect``).
      gate: Gate options (softmax temperature, expert dropout, load balance, or DSelect-k).
      name: Model name.
      **options: Passed to :func:`~tfmtl.models.builder.build_model` (``cross_layers``,
        ``cross_projection_dim``, ``interaction``).

    Returns:
      A :class:`MultiTaskModel` with one output per task.

    References:
      Li et al., "AdaTT: Adaptive Task-to-Task Fusion Network for Multitask Learning
      in Recommendations", KDD 2023. Reference code: facebookresearch/AdaTT ``mtl_lib.py``.

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.adatt(schema, [tfmtl.Task.binary("click"), tfmtl.Task.regression("dwell")],
    ...                            num_levels=2, expert_units=(4,))
    >>> {k: v.shape.as_list() for k, v in model({"price": np.array([1.0, 2.0])}).items()}
    {'click': [2, 1], 'dwell': [2, 1]}
    """
    units = check_units(expert_units, "expert_units")
    num_levels = count(num_levels, "num_levels", minimum=1)
    if not isinstance(gate, GateOptions):
        raise TypeError(f"gate must be a tfmtl.layers.GateOptions, got {gate!r}")

    def body(features, tasks):
        names = [task.name for task in tasks]
        hidden = features.shared  # [B, D], then {task: [B, H], "shared": [B, H]}
        for level in range(num_levels):
            hidden = AdaptiveTaskFusion(
                names,
                num_task_experts=num_task_experts,
                num_shared_experts=num_shared_experts,
                expert_units=units,
                shared_gate=level < num_levels - 1 and num_shared_experts > 0,
                residual=residual,
                **gate.as_kwargs(),
                regularization=features.regularization,
                name=f"fusion_{level}",
            )(hidden)
        return {name: hidden[name] for name in names}

    return build_model(schema, tasks, body, name=name, **options)
