"""Entire Space Multi-task Model, generalised to a funnel of N steps (Ma et al., SIGIR 2018)."""

from __future__ import annotations

from typing import Sequence

from tfmtl._compat import keras, tf
from tfmtl.features.schema import Schema
from tfmtl.layers.funnel import FunnelProduct
from tfmtl.layers.interaction import Interaction
from tfmtl.layers.mlp import MLP
from tfmtl.models.builder import check_names, encode_features, transfer_from
from tfmtl.models.model import MultiTaskModel
from tfmtl.tasks.kinds import TaskKind
from tfmtl.tasks.task import Task, check_tasks


def conditional_name(step: Task, previous: Task) -> str:
    """Output name of ``p(step | previous)``, e.g. ``conversion_given_click`` (ESMM's pCVR)."""
    return f"{step.name}_given_{previous.name}"


def esmm(
    schema: Schema,
    steps: Sequence[Task],
    *,
    interaction: Interaction | None = None,
    name: str = "esmm",
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
      interaction: ``tfmtl.layers.Cross(...)`` or ``tfmtl.layers.Dot(...)`` on the encoded features.
      name: Model name.

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
    for step in steps:
        if step.kind is not TaskKind.BINARY:
            raise ValueError(f"ESMM funnel steps are binary; task {step.name!r} is {step.kind.value}")
        if step is not steps[0] and step.negative_sampling_rate < 1:
            raise ValueError(
                f"ESMM: task {step.name!r} is a product of the funnel's probabilities; a negative_sampling_rate "
                f"goes on the first step ({steps[0].name!r}), whose corrected probability the products then use"
            )
    conditionals = [conditional_name(step, prev) for prev, step in zip(steps, steps[1:])]
    check_names(schema, steps, extra_outputs=conditionals)
    inputs, shared = encode_features(schema, interaction)  # [B, D]: embeddings shared by all steps
    outputs: dict[str, tf.Tensor] = {}
    factors: list[tf.Tensor] = []
    hiddens: dict[str, tf.Tensor] = {}
    for index, step in enumerate(steps):
        hidden = MLP(step.tower_units, final_activation="relu", name=f"{step.name}_tower")(shared) if step.tower_units else shared
        if step.transfer:  # AITM's transfer from an earlier step's tower (Task.transfer)
            if step.follows not in hiddens:
                raise ValueError(
                    f"task {step.name!r}: transfer=True takes information from the step it follows, "
                    f"{step.follows!r}, which must come earlier in the funnel {[s.name for s in steps]}"
                )
            hidden = transfer_from(step, hiddens[step.follows], hidden)
        hiddens[step.name] = hidden
        if index == 0:
            probability = step.head()(hidden)  # [B, 1]: p(step_1)
            outputs[step.name] = probability
        else:
            probability = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name=conditionals[index - 1])(hidden)
            outputs[conditionals[index - 1]] = probability  # [B, 1]: p(step_k | step_{k-1})
            outputs[step.name] = FunnelProduct(step)(factors + [probability])  # [B, 1]
        factors.append(probability)
    return MultiTaskModel(inputs=inputs, outputs=outputs, name=name)
