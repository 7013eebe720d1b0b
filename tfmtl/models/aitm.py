"""Adaptive Information Transfer Multi-task model for funnels (Xi et al., KDD 2021)."""

from __future__ import annotations

from typing import Sequence

from tfmtl._compat import tf
from tfmtl.features.schema import Schema
from tfmtl.layers.interaction import Interaction
from tfmtl.layers.mlp import MLP
from tfmtl.layers.transfer import FunnelHead
from tfmtl.models.builder import check_names, encode_features, transfer_from
from tfmtl.models.model import MultiTaskModel
from tfmtl.tasks.kinds import TaskKind
from tfmtl.tasks.task import Task, check_tasks


def aitm(
    schema: Schema,
    steps: Sequence[Task],
    *,
    tower_units: int = 64,
    calibration_weight: float = 0.6,
    interaction: Interaction | None = None,
    name: str = "aitm",
) -> MultiTaskModel:
    """AITM over a funnel of binary steps (impression -> click -> conversion -> ...).

    Each step has a tower over the shared embeddings; step t's representation
    takes in what step t-1 learned through an :class:`AdaptiveInformationTransfer`
    layer, and its head predicts ``p(step t)`` on all impressions (labels are
    impression-level: 1 when the impression reached step t). The behavioural
    expectation calibrator (in each later step's :class:`FunnelHead`) penalises a
    later step's probability exceeding the previous one's. The same two parts are
    an option on any architecture's funnel tasks:
    ``Task.binary("conversion", follows="click", transfer=True, order_weight=0.6)``.

    Args:
      schema: Adapted feature schema.
      steps: The funnel's binary tasks, earliest first (their ``tower_units``
        give each tower's hidden layers; the last is widened to ``tower_units``).
      tower_units: Width H of the towers' outputs and of the transfer layers.
      calibration_weight: The calibrator's weight (alpha; 0 disables it).
      interaction: ``tfmtl.layers.Cross(...)`` or ``tfmtl.layers.Dot(...)`` on the encoded features.
      name: Model name.

    References:
      Xi et al., "Modeling the Sequential Dependence among Audience Multi-step
      Conversions with Multi-task Learning in Targeted Display Advertising", KDD 2021.

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.aitm(schema, [tfmtl.Task.binary("click"), tfmtl.Task.binary("conversion")],
    ...                           tower_units=8)
    >>> sorted(model({"price": np.array([1.0])}))
    ['click', 'conversion']
    """
    steps = check_tasks(steps)
    for step in steps:
        if step.kind is not TaskKind.BINARY:
            raise ValueError(f"AITM funnel steps are binary; task {step.name!r} is {step.kind.value}")
    check_names(schema, steps)  # "<step>_transfer" layer names are reserved there
    inputs, shared = encode_features(schema, interaction)  # [B, D]
    outputs: dict[str, tf.Tensor] = {}
    previous_hidden = previous_probability = None
    for step in steps:
        hidden = MLP([*step.tower_units, tower_units], final_activation="relu", name=f"{step.name}_tower")(shared)
        if previous_hidden is None:
            probability = step.head()(hidden)  # [B, 1]
        else:
            hidden = transfer_from(step, previous_hidden, hidden)  # [B, tower_units]
            probability = FunnelHead(step, calibration=calibration_weight)([hidden, previous_probability])
        outputs[step.name] = probability
        previous_hidden, previous_probability = hidden, probability  # [B, H], [B, 1]
    return MultiTaskModel(inputs=inputs, outputs=outputs, name=name)
