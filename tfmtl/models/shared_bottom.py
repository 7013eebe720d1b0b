"""Shared-bottom multi-task model (hard parameter sharing)."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl.features.schema import Schema
from tfmtl.layers.mlp import MLP
from tfmtl.models.builder import build_model, check_units
from tfmtl.models.model import MultiTaskModel
from tfmtl.tasks.task import Task


def shared_bottom(
    schema: Schema,
    tasks: Sequence[Task],
    *,
    bottom_units: Sequence[int] = (256, 128),
    name: str = "shared_bottom",
    **options: Any,
) -> MultiTaskModel:
    """One shared ReLU MLP under one tower per task: ``y_k = h_k(f(x))``.

    Args:
      schema: Adapted feature schema.
      tasks: The tasks; each gets a tower (``task.tower_units``) and a head.
      bottom_units: Hidden units of the shared MLP (TFRS's ``MLP`` block).
      name: Model name.
      **options: :func:`~tfmtl.models.build_model`'s: ``interaction`` (or ``cross_layers``,
        ``cross_projection_dim``), ``regularization``.

    Returns:
      A compiled-ready :class:`MultiTaskModel` with one output per task.

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Categorical("item", embedding_dim=4, vocabulary=("a", "b"))])
    >>> model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click")], bottom_units=(8,))
    >>> model({"item": np.array(["a", "new"])})["click"].shape
    TensorShape([2, 1])
    """
    units = check_units(bottom_units, "bottom_units")

    def body(features, tasks):
        bottom = MLP(units, final_activation="relu", **features.regularization.mlp_kwargs(), name="bottom")(features.shared)  # [B, H]
        return {task.name: bottom for task in tasks}

    return build_model(schema, tasks, body, name=name, **options)
