"""Adaptive Information Transfer Multi-task model for funnels (Xi et al., KDD 2021)."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from tfmtl.features.schema import Schema
from tfmtl.models.builder import build_model
from tfmtl.models.model import MultiTaskModel
from tfmtl.tasks.kinds import TaskKind
from tfmtl.tasks.task import Task, check_tasks


def aitm(
    schema: Schema,
    steps: Sequence[Task],
    *,
    tower_units: int = 64,
    calibration_weight: float = 0.6,
    name: str = "aitm",
    **options: Any,
) -> MultiTaskModel:
    """AITM over a funnel of binary steps (impression -> click -> conversion -> ...).

    Each step has a tower over the shared embeddings; step t's representation
    takes in what step t-1 learned through an
    :class:`~tfmtl.layers.AdaptiveInformationTransfer` layer, and its head
    predicts ``p(step t)`` on all impressions (labels are impression-level: 1
    when the impression reached step t). The behavioural expectation calibrator
    adds ``calibration_weight * mean(max(p_t - p_{t-1}, 0))`` to the loss.

    This is :func:`build_model` with the funnel written on the tasks: every later
    step becomes ``Task.binary(..., follows=<previous step>, transfer=True,
    order_weight=calibration_weight)`` with ``tower_units`` widened to end in
    ``tower_units``, so ``model.tasks`` shows the funnel, and the calibrator is
    the objective's order penalty (logged as ``<step>/order_violation``). Any
    architecture gets the same from such tasks.

    Args:
      schema: Adapted feature schema.
      steps: The funnel's binary tasks, earliest first (their ``tower_units``
        give each tower's hidden layers; the last is widened to ``tower_units``).
        A step may name the step before it in ``follows`` (any other is refused)
        and carry its own ``order_weight``.
      tower_units: Width H of the towers' outputs and of the transfer layers.
      calibration_weight: The calibrator's weight (alpha; 0 disables it), for the
        steps without an ``order_weight`` of their own (a step's ``order_weight=0``, the
        Task default, takes this one: set ``calibration_weight=0`` to turn it off).
      name: Model name.
      **options: :func:`~tfmtl.models.build_model`'s: ``interaction`` (or ``cross_layers``,
        ``cross_projection_dim``), ``regularization``.

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
    >>> conversion = model.tasks[1]
    >>> conversion.follows, conversion.transfer, conversion.order_weight, conversion.tower_units
    ('click', True, 0.6, (64, 8))
    """
    return build_model(schema, funnel_tasks(steps, tower_units, calibration_weight),
                       lambda features, tasks: {task.name: features.shared for task in tasks}, name=name, **options)


def funnel_tasks(steps: Sequence[Task], tower_units: int, calibration_weight: float) -> tuple[Task, ...]:
    """AITM's funnel as tasks: each later step follows the one before, with transfer and the order penalty."""
    steps = check_tasks(steps)
    if not calibration_weight >= 0:
        raise ValueError(f"calibration_weight must be >= 0, got {calibration_weight!r}")
    out = []
    for index, step in enumerate(steps):
        if step.kind is not TaskKind.BINARY:
            raise ValueError(f"AITM funnel steps are binary; task {step.name!r} is {step.kind.value}")
        change: dict[str, Any] = {"tower_units": (*step.tower_units, int(tower_units))}
        if index:
            previous = steps[index - 1].name
            if step.follows not in (None, previous):
                raise ValueError(
                    f"AITM: step {step.name!r} follows {step.follows!r}, but the step before it in the funnel "
                    f"{[s.name for s in steps]} is {previous!r}"
                )
            change.update(follows=previous, transfer=True, order_weight=step.order_weight or float(calibration_weight))
        elif step.follows is not None:
            raise ValueError(f"AITM: the funnel's first step {step.name!r} cannot follow another ({step.follows!r})")
        out.append(dataclasses.replace(step, **change))
    return tuple(out)
