"""PEPNet: Parameter and Embedding Personalized Network (Chang et al., KDD 2023)."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl.features.schema import Schema
from tfmtl.layers.pepnet import EPNet, PPNet
from tfmtl.models.builder import build_model, check_units
from tfmtl.models.model import MultiTaskModel
from tfmtl.tasks.task import Task


def pepnet(
    schema: Schema,
    tasks: Sequence[Task],
    *,
    gate_features: Sequence[str],
    prior_features: Sequence[str] | None = None,
    tower_units: Sequence[int] = (128, 64),
    gamma: float = 2.0,
    name: str = "pepnet",
    **options: Any,
) -> MultiTaskModel:
    """PEPNet: a domain gate on the embeddings (EPNet), then one gated tower per task (PPNet).

    Shapes: B batch, D_e width of the shared representation, T tasks.

        E        = the shared representation (every feature encoded, after any interaction)   # [B, D_e]
        O_ep     = GateNU([e_dom ; stop_gradient(E)]) * E                                      # EPNet
        h^0      = O_ep
        h^l_t    = dropout(GateNU_{t,l}([o_prior ; stop_gradient(O_ep)]) * relu(W_{t,l} h^{l-1}_t + b))  # PPNet

    ``GateNU(x) = gamma * sigmoid(W2 relu(W1 x + b1) + b2)``, element-wise over the
    columns it multiplies, ``e_dom`` the encodings of ``gate_features`` and ``o_prior``
    those of ``prior_features`` (before any interaction). In the paper ``e_dom`` is the
    domain side (e.g. the scenario id) and ``o_prior`` the user, item and author ids.

    PEPNet's towers are its PPNet layers, ``tower_units``, one gated tower per task.
    Each :class:`~tfmtl.Task`'s own ``tower_units`` (default ``(64,)``) add plain ReLU
    layers after them, before the head: give ``Task(..., tower_units=())`` for PEPNet's
    towers alone.

    Implemented from the paper and TorchEasyRec's ``personalized_net.py`` (gate after
    the activation, element-wise gates, hidden width of a PPNet gate = its layer's
    width, EPNet's hidden width = ``D_e``); unverified: whether the paper's gates are
    per field, and whether a PPNet gate scales a layer's input or its output.
    ``E`` here holds every feature (the gate features too). Dropout after each gated
    layer is ``regularization.dropout``.

    Args:
      schema: Adapted feature schema.
      tasks: The tasks; each gets a PPNet tower, then its own tower and head.
      gate_features: Names of the domain-side features EPNet's gate reads.
      prior_features: Names of the personalised prior features PPNet's gates read
        (default: ``gate_features``).
      tower_units: Units of each task's PPNet layers.
      gamma: Scale of every GateNU (the paper's 2: gates in ``(0, 2)``).
      name: Model name.
      **options: :func:`~tfmtl.models.build_model`'s: ``interaction`` (or ``cross_layers``,
        ``cross_projection_dim``), ``regularization``.

    Returns:
      A :class:`MultiTaskModel` with one output per task.

    References:
      Chang et al., "PEPNet: Parameter and Embedding Personalized Network for
      Infusing with Personalized Prior Information", KDD 2023. arXiv:2302.01115.

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Categorical("domain", embedding_dim=2, vocabulary=("feed", "search")),
    ...                        tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.pepnet(schema, [tfmtl.Task.binary("click", tower_units=())],
    ...                             gate_features=["domain"], tower_units=(8, 4))
    >>> model({"domain": np.array(["feed", "search"]), "price": np.array([1.0, 2.0])})["click"].shape
    TensorShape([2, 1])
    >>> model.get_layer("ppnet").units
    (8, 4)
    """
    gate_features = _feature_names(schema, gate_features, "gate_features")
    if prior_features is not None:
        prior_features = _feature_names(schema, prior_features, "prior_features")
    units = check_units(tower_units, "tower_units")

    def body(features, tasks):
        domain = features.select(gate_features, name="pepnet_gate_features")  # [B, D_d]
        prior = domain  # [B, P]
        if prior_features is not None:
            prior = features.select(prior_features, name="pepnet_prior_features")
        o_ep = EPNet(gamma, regularization=features.regularization, name="epnet")([features.shared, domain])  # [B, D_e]
        return PPNet([task.name for task in tasks], units, gamma, features.regularization, name="ppnet")([o_ep, prior])

    return build_model(schema, tasks, body, name=name, **options)


def _feature_names(schema: Schema, names: Any, argument: str) -> list[str]:
    """``names`` as a list of the schema's feature names, else an error naming pepnet's ``argument``."""
    if isinstance(names, str) or not hasattr(names, "__iter__"):
        raise ValueError(f"pepnet: {argument} must be a sequence of feature names, e.g. [{names!r}]; got {names!r}")
    names = list(names)
    if not names:
        raise ValueError(f"pepnet: {argument} must name at least one feature of the schema {list(schema.names)}")
    unknown = [n for n in names if n not in schema.names]
    if unknown:
        raise ValueError(f"pepnet: {argument} {unknown} are not features of the schema {list(schema.names)}")
    return names

