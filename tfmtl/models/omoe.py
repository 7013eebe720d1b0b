"""One-gate Mixture-of-Experts (the MMoE paper's OMoE ablation)."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl.features.schema import Schema
from tfmtl.layers.gate import GateOptions
from tfmtl.layers.mixture import MixtureOfExperts
from tfmtl.models.builder import build_model, check_units
from tfmtl.models.model import MultiTaskModel
from tfmtl.tasks.task import Task


def omoe(
    schema: Schema,
    tasks: Sequence[Task],
    *,
    num_experts: int = 4,
    expert_units: Sequence[int] = (256, 128),
    gate: GateOptions = GateOptions(),
    name: str = "omoe",
    **options: Any,
) -> MultiTaskModel:
    """OMoE: MMoE's experts with a single softmax gate shared by all tasks.

    ``y_k = h_k(sum_i g(x)_i f_i(x))``: every task's tower reads the same mixture.
    Use it as the ablation that shows what per-task gates add (Ma et al. 2018, §5).

    Args:
      schema: Adapted feature schema.
      tasks: The tasks; each gets a tower and a head over the shared mixture.
      num_experts: Number of experts.
      expert_units: Hidden units of each expert.
      gate: Gate options (temperature, expert dropout, load-balancing loss), all off by default.
      name: Model name.
      **options: :func:`~tfmtl.models.build_model`'s: ``interaction`` (or ``cross_layers``,
        ``cross_projection_dim``), ``regularization``.

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.omoe(schema, [tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")],
    ...                           num_experts=2, expert_units=(4,))
    >>> sorted(model({"price": np.array([1.0])}))
    ['buy', 'click']
    """
    units = check_units(expert_units, "expert_units")

    def body(features, tasks):
        moe = MixtureOfExperts(num_experts, units, gate_names=["all_tasks"], **gate.as_kwargs(),
                               regularization=features.regularization, name="mixture_of_experts")
        mixture = moe(features.shared)["all_tasks"]  # [B, H]
        return {task.name: mixture for task in tasks}

    return build_model(schema, tasks, body, name=name, **options)
