"""Multi-gate Mixture-of-Experts (Ma et al., KDD 2018)."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl.features.schema import Schema
from tfmtl.layers.gate import GateOptions
from tfmtl.layers.mixture import MixtureOfExperts
from tfmtl.models.builder import build_model, check_units
from tfmtl.models.model import MultiTaskModel
from tfmtl.tasks.task import Task


def mmoe(
    schema: Schema,
    tasks: Sequence[Task],
    *,
    num_experts: int = 4,
    expert_units: Sequence[int] = (256, 128),
    gate: GateOptions = GateOptions(),
    name: str = "mmoe",
    **options: Any,
) -> MultiTaskModel:
    """MMoE: shared experts, one softmax gate per task, one tower per task.

    ``y_k = h_k(sum_i g_k(x)_i f_i(x))`` with ``g_k(x) = softmax(W_k x)``, where the
    experts ``f_i`` are identical ReLU MLPs with independently drawn weights.

    Args:
      schema: Adapted feature schema.
      tasks: The tasks; each gets a gate, a tower (``task.tower_units``) and a head.
      num_experts: Number of experts.
      expert_units: Hidden units of each expert.
      gate: Gate options (temperature, expert dropout, load-balancing loss), all off by default.
      name: Model name.
      **options: :func:`~tfmtl.models.build_model`'s: ``interaction`` (or ``cross_layers``,
        ``cross_projection_dim``), ``regularization``.

    Returns:
      A :class:`MultiTaskModel` with one output per task.

    References:
      Ma et al., "Modeling Task Relationships in Multi-task Learning with
      Multi-gate Mixture-of-Experts", KDD 2018.

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.mmoe(schema, [tfmtl.Task.binary("click"), tfmtl.Task.regression("rating")],
    ...                           num_experts=2, expert_units=(8,))
    >>> sorted(model({"price": np.array([1.0, 2.0])}))
    ['click', 'rating']
    """
    units = check_units(expert_units, "expert_units")
    if num_experts < 1:
        raise ValueError(f"num_experts must be >= 1, got {num_experts}")

    def body(features, tasks):
        moe = MixtureOfExperts(
            num_experts, units, gate_names=[task.name for task in tasks], **gate.as_kwargs(),
            regularization=features.regularization, name="mixture_of_experts",
        )
        return moe(features.shared)  # {task: [B, H]}

    return build_model(schema, tasks, body, name=name, **options)
