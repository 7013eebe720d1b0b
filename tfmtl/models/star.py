"""STAR: Star Topology Adaptive Recommender for multi-scenario data (Sheng et al., CIKM 2021)."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl.features.categorical import Categorical
from tfmtl.features.schema import Schema
from tfmtl.layers.star import StarNetwork
from tfmtl.models.builder import build_model, check_units
from tfmtl.models.model import MultiTaskModel
from tfmtl.tasks.task import Task


def star(
    schema: Schema,
    tasks: Sequence[Task],
    *,
    scenario_feature: str,
    units: Sequence[int] = (128, 64),
    aux_units: Sequence[int] = (64,),
    name: str = "star",
    **options: Any,
) -> MultiTaskModel:
    """STAR: one network whose weights are shared weights times per-scenario weights, for every task.

    Shapes: B batch, D width of the shared representation, S scenarios, H = ``units[-1]``.
    Row b's scenario is ``p`` = its row in ``scenario_feature``'s table (S = the
    table's ``table_size`` rows, one scenario each):

        e'  = (gamma * gamma_p) * (e - mu_p) / sqrt(var_p + eps) + (beta + beta_p)   # partitioned normalisation
        h^l = relu(h^{l-1} (W_l ⊙ W_{l,p}) + (b_l + b_{l,p})),  h^0 = e'             # star FCN, units
        out = h^L + MLP_aux([e_scenario ; e])                                          # auxiliary network

    ``e`` is the shared representation (every feature encoded, after any
    interaction) and ``e_scenario`` the scenario feature's embedding. See
    :class:`~tfmtl.layers.PartitionedNormalization` (per-scenario batch statistics in
    training, per-scenario moving averages at inference), :class:`~tfmtl.layers.StarFCN`
    and :class:`~tfmtl.layers.StarNetwork` (where the auxiliary network is added).

    Multi-task: STAR is a single-task CTR model. Here ONE star network is shared by
    all tasks, and its ``[B, H]`` output feeds each task's tower (``Task.tower_units``)
    and head: scenarios differ in the shared network, tasks in their towers, and the
    per-scenario parameters (``S`` copies of every FCN kernel) are not multiplied by
    the number of tasks.

    Unknown scenarios: ids outside the vocabulary go to the out-of-vocabulary rows
    ``0 .. num_oov_buckets - 1`` (:func:`~tfmtl.features.categorical.vocabulary_lookup`).
    Their ``W_p = 1``, ``b_p = 0``, ``gamma_p = 1``, ``beta_p = 0`` stay at their init
    (they get no gradient) and their normalisation uses the global moving statistics,
    unless training saw out-of-vocabulary scenario ids: so an unknown scenario is
    served by the shared weights (its scenario embedding is the untrained OOV row,
    read by the shared features and the auxiliary network like any other row). With a
    hashed scenario feature (``num_hash_bins``) there is no such row: an unknown id
    shares a bucket with known ones. Decoupled weight decay (an optimizer's
    ``weight_decay``) would shrink the unseen scenarios' ``W_p`` and break that fallback.

    Limits: the per-scenario statistics are kept per replica under ``MirroredStrategy``
    (not summed across replicas), start at 0 / 1 and are used from a scenario's first
    row on (rare scenarios are normalised with young averages), and are computed in the
    layer's dtype (not tested under ``mixed_float16``); the star layers build one matmul
    per scenario (meant for a scenario feature with a small vocabulary; not tested with
    ``jit_compile``). A warm start refuses a grown scenario vocabulary.

    Implemented from the paper and Scenario-Wise-Rec's ``star.py`` (without its
    per-domain batch normalisation after each layer, which the paper does not have);
    unverified: the paper's training statistics and batch composition, and the
    auxiliary network's input and depth.

    Args:
      schema: Adapted feature schema.
      tasks: The tasks; each gets a tower (``task.tower_units``) and a head over the star output.
      scenario_feature: The :class:`~tfmtl.features.Categorical` feature naming each row's scenario.
      units: The star FCN's layer units.
      aux_units: The auxiliary MLP's ReLU layers (before its linear ``[B, H]`` output).
      name: Model name.
      **options: :func:`~tfmtl.models.build_model`'s: ``interaction`` (or ``cross_layers``,
        ``cross_projection_dim``), ``regularization`` (the shared FCN, the auxiliary MLP,
        the towers; not the per-scenario parameters).

    Returns:
      A :class:`MultiTaskModel` with one output per task.

    References:
      Sheng et al., "One Model to Serve All: Star Topology Adaptive Recommender for
      Multi-Domain CTR Prediction", CIKM 2021. arXiv:2101.11427.

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Categorical("scenario", embedding_dim=2, vocabulary=("feed", "search")),
    ...                        tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.star(schema, [tfmtl.Task.binary("click")], scenario_feature="scenario",
    ...                           units=(8, 4), aux_units=(4,))
    >>> model({"scenario": np.array(["feed", "new"]), "price": np.array([1.0, 2.0])})["click"].shape
    TensorShape([2, 1])
    >>> model.get_layer("star_network").norm.num_scenarios  # 2 scenarios + 1 out-of-vocabulary row
    3
    """
    if scenario_feature not in schema.names:
        raise ValueError(
            f"star: scenario_feature {scenario_feature!r} is not a feature of the schema {list(schema.names)}"
        )
    spec = schema[scenario_feature]
    if type(spec) is not Categorical:
        raise ValueError(
            f"star: scenario_feature {scenario_feature!r} must be a Categorical feature (one id per row), "
            f"it is {type(spec).__name__}"
        )
    if not spec.is_adapted:
        raise ValueError(
            f"star: scenario_feature {scenario_feature!r} has no vocabulary yet: call schema.adapt(data) first"
        )
    units = check_units(units, "units")

    def body(features, tasks):
        rows = features.rows(scenario_feature)  # [B] int64, in [0, table_size)
        scenario_embedding = features.select([scenario_feature], name="star_scenario")  # [B, A]
        network = StarNetwork(
            spec.table_size, units, aux_units, regularization=features.regularization, scenario_feature=scenario_feature,
            name="star_network",
        )
        hidden = network([features.shared, scenario_embedding, rows])  # [B, H]
        return {task.name: hidden for task in tasks}

    return build_model(schema, tasks, body, name=name, **options)
