"""Progressive Layered Extraction and its one-level form, CGC (Tang et al., RecSys 2020)."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl.features.schema import Schema
from tfmtl.layers.gate import GateOptions
from tfmtl.layers.extraction import ExtractionLayer
from tfmtl.models.builder import build_model, check_units
from tfmtl.models.model import MultiTaskModel
from tfmtl.tasks.task import Task


def ple(
    schema: Schema,
    tasks: Sequence[Task],
    *,
    num_levels: int = 2,
    num_shared_experts: int = 2,
    num_task_experts: int = 1,
    expert_units: Sequence[int] = (128, 64),
    gate: GateOptions = GateOptions(),
    name: str = "ple",
    **options: Any,
) -> MultiTaskModel:
    """PLE: stacked extraction layers with shared and task-specific expert groups.

    Each level has ``num_shared_experts`` shared experts and ``num_task_experts``
    experts per task; task t's gate mixes its own and the shared experts. Inner
    levels also have a shared gate over all experts, whose output is the next
    level's shared input; each task's output is its next level's task input. The
    last level's task outputs feed the towers.

    Args:
      schema: Adapted feature schema.
      tasks: The tasks.
      num_levels: Extraction layers (1 = CGC).
      num_shared_experts: Shared experts per level.
      num_task_experts: Experts per task per level.
      expert_units: Hidden units of every expert.
      gate: Gate options (temperature, expert dropout, load-balancing loss), all off by default.
      name: Model name.
      **options: :func:`~tfmtl.models.build_model`'s: ``interaction`` (or ``cross_layers``,
        ``cross_projection_dim``), ``regularization``.

    References:
      Tang et al., "Progressive Layered Extraction (PLE): A Novel Multi-Task
      Learning (MTL) Model for Personalized Recommendations", RecSys 2020.

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.ple(schema, [tfmtl.Task.binary("click"), tfmtl.Task.regression("dwell")],
    ...                          num_levels=2, expert_units=(4,))
    >>> {k: v.shape.as_list() for k, v in model({"price": np.array([1.0, 2.0])}).items()}
    {'click': [2, 1], 'dwell': [2, 1]}
    """
    units = check_units(expert_units, "expert_units")
    if num_levels < 1:
        raise ValueError(f"num_levels must be >= 1, got {num_levels}")

    def body(features, tasks):
        names = [task.name for task in tasks]
        hidden = features.shared
        for level in range(num_levels):
            hidden = ExtractionLayer(
                names,
                num_shared_experts=num_shared_experts,
                num_task_experts=num_task_experts,
                expert_units=units,
                shared_gate=level < num_levels - 1,
                **gate.as_kwargs(),
                regularization=features.regularization,
                name=f"extraction_{level}",
            )(hidden)
        return {name: hidden[name] for name in names}

    return build_model(schema, tasks, body, name=name, **options)


def cgc(
    schema: Schema,
    tasks: Sequence[Task],
    *,
    num_shared_experts: int = 2,
    num_task_experts: int = 1,
    expert_units: Sequence[int] = (128, 64),
    gate: GateOptions = GateOptions(),
    name: str = "cgc",
    **options: Any,
) -> MultiTaskModel:
    """CGC: one extraction layer (PLE with ``num_levels=1``).

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.cgc(schema, [tfmtl.Task.binary("click")], expert_units=(4,))
    >>> model.get_layer("extraction_0").num_shared_experts
    2
    """
    return ple(
        schema,
        tasks,
        num_levels=1,
        num_shared_experts=num_shared_experts,
        num_task_experts=num_task_experts,
        expert_units=expert_units,
        gate=gate,
        name=name,
        **options,
    )
