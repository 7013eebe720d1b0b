"""Shared-bottom multi-task model (hard parameter sharing)."""

from __future__ import annotations

from typing import Sequence

from tfmtl.features.schema import Schema
from tfmtl.layers.interaction import Interaction
from tfmtl.layers.mlp import MLP
from tfmtl.models.builder import build_model, check_units
from tfmtl.models.model import MultiTaskModel
from tfmtl.tasks.task import Task


def shared_bottom(
    schema: Schema,
    tasks: Sequence[Task],
    *,
    bottom_units: Sequence[int] = (256, 128),
    cross_layers: int = 0,
    cross_projection_dim: int | None = None,
    interaction: Interaction | None = None,
    name: str = "shared_bottom",
) -> MultiTaskModel:
    """One shared ReLU MLP under one tower per task: ``y_k = h_k(f(x))``.

    Args:
      schema: Adapted feature schema.
      tasks: The tasks; each gets a tower (``task.tower_units``) and a head.
      bottom_units: Hidden units of the shared MLP (TFRS's ``MLP`` block).
      cross_layers: Number of DCN-v2 ``tfrs.layers.dcn.Cross`` layers on the
        encoded features before the bottom (0 = none).
      cross_projection_dim: Low-rank projection of the cross layers (None = full rank).
      interaction: ``tfmtl.layers.Cross(...)`` or ``tfmtl.layers.Dot(...)`` on the encoded
        features (instead of ``cross_layers``).
      name: Model name.

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

    def body(shared, tasks):
        bottom = MLP(units, final_activation="relu", name="bottom")(shared)  # [B, H]
        return {task.name: bottom for task in tasks}

    return build_model(
        schema, tasks, body, cross_layers=cross_layers, cross_projection_dim=cross_projection_dim,
        interaction=interaction, name=name,
    )
