"""Entire Space Multi-task Model, generalised to a funnel of N steps (Ma et al., SIGIR 2018)."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl.features.schema import Schema
from tfmtl.models.builder import build_model
from tfmtl.models.model import MultiTaskModel
from tfmtl.tasks.funnel import FunnelHeads, conditional_name
from tfmtl.tasks.task import Task, check_tasks


def esmm(
    schema: Schema,
    steps: Sequence[Task],
    *,
    name: str = "esmm",
    **options: Any,
) -> MultiTaskModel:
    """ESMM over a funnel of binary steps, e.g. impression -> click -> add-to-cart -> purchase.

    Every step k has its own tower (``task.tower_units``) over the shared
    embeddings and predicts the conditional ``p(step_k | step_{k-1})``. Step k's
    output, named after the task, is the product ``p(step_1 and ... and step_k)``
    and is trained on all impressions with the task's label (1 when the
    impression reached step k). So no loss ever sees the biased "clicked only"
    sample space. For ``[click, conversion]`` the outputs are ESMM's:

    * ``click``: pCTR (loss on the click label);
    * ``conversion``: pCTCVR = pCTR x pCVR (loss on the conversion label);
    * ``conversion_given_click``: pCVR (no loss; served, so it can be used).

    Each output gets its own serving signature (``predict_conversion_given_click``...).
    A step with ``follows=<earlier step>, transfer=True`` adds AITM's adaptive
    information transfer from that step's tower to its own.

    Args:
      schema: Adapted feature schema.
      steps: The funnel's binary tasks, earliest first.
      name: Model name.
      **options: :func:`~tfmtl.models.build_model`'s: ``interaction`` (or ``cross_layers``,
        ``cross_projection_dim``), ``regularization``.

    References:
      Ma et al., "Entire Space Multi-Task Model: An Effective Approach for
      Estimating Post-Click Conversion Rate", SIGIR 2018.

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.esmm(schema, [tfmtl.Task.binary("click"), tfmtl.Task.binary("conversion")])
    >>> out = model({"price": np.array([1.0])})
    >>> sorted(out), bool(np.isclose(out["conversion"], out["click"] * out["conversion_given_click"]))
    (['click', 'conversion', 'conversion_given_click'], True)
    """
    steps = check_tasks(steps)
    heads = FunnelHeads(steps)
    seen: set[str] = set()
    for step in steps:
        if step.transfer and step.follows not in seen:
            raise ValueError(
                f"task {step.name!r}: transfer=True takes information from the step it follows, "
                f"{step.follows!r}, which must come earlier in the funnel {[s.name for s in steps]}"
            )
        seen.add(step.name)
    return build_model(schema, steps, lambda features, tasks: {task.name: features.shared for task in tasks},
                       name=name, heads=heads, **options)


__all__ = ["conditional_name", "esmm"]
