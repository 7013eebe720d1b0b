"""STEM: shared and task-specific embeddings with AFTB gates (Su et al., AAAI 2024)."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from tfmtl.features.bucketized import Bucketized
from tfmtl.features.categorical import Categorical
from tfmtl.features.kinds import count, int_tuple
from tfmtl.features.numeric import Numeric
from tfmtl.features.schema import Schema
from tfmtl.layers.stem import SHARED, StemLayer
from tfmtl.models.builder import FeatureSlice, build_model, check_units
from tfmtl.models.model import MultiTaskModel
from tfmtl.tasks.task import Task, check_tasks


def stem(
    schema: Schema,
    tasks: Sequence[Task],
    *,
    num_shared_experts: int = 1,
    num_task_experts: int = 1,
    expert_units: Sequence[int] = (64,),
    gate_units: Sequence[int] = (),
    num_levels: int = 1,
    name: str = "stem",
    **options: Any,
) -> MultiTaskModel:
    """STEM: T task-specific embeddings and one shared embedding, each read by its own experts.

    Every embedded feature gets one table of width ``d * (T + 1)`` (as in the authors'
    code), whose rows are cut into ``T + 1`` parts of ``d``: part t is task t's
    embedding, the last part the shared one. Concatenated over the features they give
    ``x_1 .. x_T`` and ``x_S``; features that are not split (below) are appended,
    unchanged, to every part. Then ``num_levels`` :class:`~tfmtl.layers.StemLayer`
    levels: task t's experts read ``x_t``, the shared experts ``x_S``, and task t's gate
    ``softmax(W_t MLP_t(x_t + x_S))`` mixes all ``T*m + m_s`` experts with a stop-gradient
    on the other tasks' experts ("All Forward, Task-specific Backward"). Inner levels
    also mix a shared output without stop-gradient; the next level reads
    ``x_t <- out_t``, ``x_S <- out_S``. The last level's ``out_t`` feeds task t's tower.

    Which features are split: those with a learned embedding (``embedding_dim``):
    :class:`~tfmtl.features.Categorical`, :class:`~tfmtl.features.Sequence`,
    :class:`~tfmtl.features.MultiValued`, :class:`~tfmtl.features.Bucketized`, and a
    :class:`~tfmtl.features.Numeric` with ``embedding_dim`` (its periodic embedding's
    Dense layer is widened; its frequencies are shared by all parts). Not split, and so
    given to every part: plain numerics, dense vectors and pretrained (frozen) tables,
    with their projections.

    The model is built on a widened copy of ``schema`` (:func:`stem_schema`): every split
    feature's ``embedding_dim`` times ``T + 1``. So ``model.schema`` is the widened schema,
    its tables (export compression, warm start) are the widened tables, and a schema
    taken back from ``model.schema`` must not be given to ``stem`` again (it would be
    widened twice).

    Implemented from the authors' ``models/STEM.py`` (LiangcaiSu/STEM, whose README
    says it is under construction) and tfmtl's notes on the paper. Checked in that
    code: one table of ``d * (T + 1)`` per feature, split in the order
    ``[task 1 .. task T, shared]``; the AFTB gates (see :class:`~tfmtl.layers.StemLayer`);
    the towers on the last level's task outputs. Different or unverified: their
    embedding layer is FuxiCTR's, which may embed numeric fields too (not checked);
    here plain numerics, dense vectors and pretrained tables are not split. A sequence
    pooled by attention computes its attention weights from the whole widened vectors,
    so there a task's loss reaches the other tasks' embedding parts (the isolation is
    exact for mean, sum and max pooling). Their gate MLP ends in a biased Dense layer
    (here a bias-free gate). Results were not compared with the paper's (its TikTok
    config, per tfmtl's notes: embedding_dim 16, experts [512, 512, 512], gates
    [128, 64], towers [128, 64], 8 shared experts, 1 per task, 1 level). Not a
    reproduction.

    Args:
      schema: Adapted feature schema (not yet widened).
      tasks: The tasks; each gets an embedding part, experts, a gate, a tower and a head.
      num_shared_experts: m_s: shared experts per level.
      num_task_experts: m: experts per task per level.
      expert_units: Hidden units of every expert.
      gate_units: Hidden ReLU units of each gate before its softmax logits (() = linear gate).
      num_levels: Stacked STEM levels.
      name: Model name.
      **options: :func:`~tfmtl.models.build_model`'s ``regularization`` (also the
        embedding L2). ``interaction`` and ``cross_layers`` are refused: STEM splits the
        features' embeddings, which come before any interaction.

    Returns:
      A :class:`MultiTaskModel` with one output per task, on the widened schema.

    References:
      Su, Pan, Wang, Xiao, Quan, Chen, Jiang, "STEM: Unleashing the Power of
      Embeddings for Multi-task Recommendation", AAAI 2024 (arXiv 2308.13537).

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Categorical("item", embedding_dim=4, vocabulary=("a", "b")),
    ...                        tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.stem(schema, [tfmtl.Task.binary("click"), tfmtl.Task.regression("rating")],
    ...                           expert_units=(8,))
    >>> model.schema["item"].embedding_dim  # 4 * (2 tasks + 1 shared)
    12
    >>> {k: v.shape.as_list() for k, v in model({"item": np.array(["a", "b"]), "price": np.array([1.0, 2.0])}).items()}
    {'click': [2, 1], 'rating': [2, 1]}
    """
    tasks = check_tasks(tasks)
    units = check_units(expert_units, "expert_units")
    gate_units = list(int_tuple(gate_units, "gate_units"))
    num_levels = count(num_levels, "num_levels", minimum=1)
    for option in ("interaction", "cross_layers", "cross_projection_dim"):
        if options.get(option):
            raise ValueError(
                f"stem takes no {option}={options[option]!r}: it splits each feature's embedding into task and "
                "shared parts, before any interaction"
            )
    names = [task.name for task in tasks]
    parts = names + [SHARED]
    widened = stem_schema(schema, len(tasks))
    split = [spec.name for spec in schema if is_split(spec)]
    layers = [f"stem_{part}_embedding" for part in parts] + ["stem_embeddings"]
    layers += [f"stem_{level}" for level in range(num_levels)]
    clashes = sorted(set(layers) & (set(names) | set(schema.names)))
    if clashes:
        raise ValueError(f"feature/task name(s) {clashes} are the names of stem's layers; rename them")

    def body(features, tasks):
        # -- the T + 1 embeddings: each split feature's parts, then the unsplit features --
        order = split + [spec.name for spec in features.schema if spec.name not in split]
        widths = []
        for feature in order:
            width = features.schema[feature].output_dim
            if feature in split:
                widths += [(f"{feature}/{part}", width // len(parts)) for part in parts]
            else:
                widths.append((feature, width))
        encoded = features.select(order, name="stem_embeddings")  # [B, sum of widths]
        unsplit = [feature for feature in order if feature not in split]
        hidden = {
            part: FeatureSlice(widths, [f"{f}/{part}" for f in split] + unsplit, name=f"stem_{part}_embedding")(encoded)
            for part in parts
        }  # each [B, D]
        # -- the STEM levels --
        for level in range(num_levels):
            hidden = StemLayer(
                names, num_shared_experts=num_shared_experts, num_task_experts=num_task_experts, expert_units=units,
                gate_units=gate_units, shared_gate=level < num_levels - 1, regularization=features.regularization,
                name=f"stem_{level}",
            )(hidden)
        return {task: hidden[task] for task in names}

    return build_model(widened, tasks, body, name=name, **options)


def is_split(spec: Any) -> bool:
    """Whether STEM cuts ``spec``'s encoding into task and shared parts: a learned embedding (``embedding_dim``)."""
    if isinstance(spec, (Categorical, Bucketized)):  # Sequence and MultiValued are Categorical
        return True
    return isinstance(spec, Numeric) and spec.embedding_dim is not None


def stem_schema(schema: Schema, num_tasks: int) -> Schema:
    """``schema`` with every split feature's ``embedding_dim`` times ``num_tasks + 1`` (STEM's one table per feature).

    Example:

    >>> import tfmtl
    >>> from tfmtl.models.stem import stem_schema
    >>> schema = tfmtl.Schema([tfmtl.Categorical("item", embedding_dim=4), tfmtl.Numeric("price")])
    >>> [spec.output_dim for spec in stem_schema(schema, 2)]
    [12, 1]
    """
    if not isinstance(schema, Schema):
        raise TypeError(f"schema must be a tfmtl.features.Schema, got {type(schema).__name__}")
    num_tasks = count(num_tasks, "num_tasks", minimum=1)
    return Schema([
        dataclasses.replace(spec, embedding_dim=spec.embedding_dim * (num_tasks + 1)) if is_split(spec) else spec
        for spec in schema
    ])


#: The schema a ``stem`` model carries (:meth:`tfmtl.training.RunConfig.model_schema` reads it for warm starts).
stem.model_schema = lambda schema, tasks: stem_schema(schema, len(tuple(tasks)))  # type: ignore[attr-defined]

__all__ = ["is_split", "stem", "stem_schema"]
