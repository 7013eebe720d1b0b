"""The one path every architecture takes: inputs -> features -> body -> towers -> transfer -> heads.

An architecture is a *body*: a function from the encoded features to one ``[B, H]``
representation per task. :func:`build_model` does the rest the same way for all of
them: the preprocessing and embeddings from the schema, an optional feature
interaction, each task's tower (``Task.tower_units``), AITM's transfer between
funnel steps (``Task.transfer``), and the heads (each task's own, or a funnel's
:class:`~tfmtl.tasks.FunnelHeads`). Order penalties (``Task.order_weight``) are
the objective's, for every architecture.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol, Sequence

from tfmtl._compat import keras, tf
from tfmtl.features.encoder import FeatureEncoder
from tfmtl.features.kinds import int_tuple
from tfmtl.features.preprocessing import FeaturePreprocessor
from tfmtl.features.schema import Schema
from tfmtl.layers.interaction import Cross, Dot, Interaction
from tfmtl.layers.mlp import MLP
from tfmtl.layers.regularization import Regularization
from tfmtl.layers.transfer import AdaptiveInformationTransfer
from tfmtl.models.model import MultiTaskModel
from tfmtl.tasks.task import Task, check_tasks


@keras.utils.register_keras_serializable(package="tfmtl")
class FeatureSlice(keras.layers.Layer):
    """Some features' columns of the encoded ``[B, D]`` tensor, concatenated in the order asked.

    Args:
      widths: ``(feature, width)`` of each slice of the input, in input order
        (:meth:`FeatureEncoder.output_widths`).
      names: The features to keep.

    Example:

    >>> import numpy as np, tfmtl
    >>> cut = tfmtl.models.builder.FeatureSlice([("a", 2), ("b", 1)], ["b", "a"])
    >>> cut(np.array([[1.0, 2.0, 3.0]], np.float32)).numpy().tolist()
    [[3.0, 1.0, 2.0]]
    """

    def __init__(self, widths: Sequence[Sequence[Any]], names: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.widths = [(str(name), int(width)) for name, width in widths]
        self.names = [str(name) for name in names]
        starts, start = {}, 0
        for name, width in self.widths:
            starts[name] = (start, start + width)
            start += width
        unknown = sorted(set(self.names) - set(starts))
        if unknown or not self.names:
            raise ValueError(f"feature(s) {unknown or self.names} are not among the encoded features {sorted(starts)}")
        self.columns = [starts[name] for name in self.names]

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.concat([inputs[:, begin:end] for begin, end in self.columns], axis=-1)  # [B, d]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "widths": [list(pair) for pair in self.widths], "names": self.names}


class EncodedFeatures:
    """What a :class:`Body` reads: the shared representation, and each feature on its own.

    Attributes:
      shared: ``[B, D]``: every feature encoded and concatenated (after the interaction, if any).
      schema: The model's adapted schema.
      regularization: The model's :class:`~tfmtl.layers.Regularization`, for the body's layers.

    Example, a body that reads one feature's embedding beside the shared representation:

    >>> import numpy as np, tfmtl
    >>> def body(features, tasks):
    ...     item = features.select(["item"], name="item_only")  # [B, 2]
    ...     return {task.name: item for task in tasks}
    >>> schema = tfmtl.Schema([tfmtl.Categorical("item", embedding_dim=2, vocabulary=("a", "b")),
    ...                        tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.build_model(schema, [tfmtl.Task.binary("click")], body, name="m")
    >>> model.get_layer("item_only").output_shape
    (None, 2)
    """

    def __init__(
        self, schema: Schema, encoder: FeatureEncoder, preprocessed: Mapping[str, tf.Tensor],
        encoded: tf.Tensor, shared: tf.Tensor, regularization: Regularization,
    ) -> None:
        self.schema = schema
        self.shared = shared
        self.regularization = regularization
        self._encoder = encoder
        self._preprocessed = preprocessed
        self._encoded = encoded  # [B, D0], before the interaction

    def select(self, names: Sequence[str], *, name: str) -> tf.Tensor:
        """``[B, d]``: the encodings of the features ``names`` (before any interaction), in that order."""
        return FeatureSlice(self._encoder.output_widths(), list(names), name=name)(self._encoded)

    def rows(self, feature: str) -> tf.Tensor:
        """``[B]`` int64: a categorical feature's row in its table (the out-of-vocabulary buckets included)."""
        if feature not in self.schema.names:
            raise ValueError(f"feature {feature!r} is not in the schema {list(self.schema.names)}")
        rows = self._preprocessed[feature]
        if rows.dtype != tf.int64 or rows.shape.rank != 1:
            raise ValueError(f"feature {feature!r} must be a categorical feature (one id per row), it is {type(self.schema[feature]).__name__}")
        return rows


class Body(Protocol):
    """An architecture: the encoded features and the tasks in, one ``[B, H]`` tensor per task out.

    Any function with this signature is a body; :func:`build_model` adds the
    rest. Name the layers it creates: names must be unique in the model.

    Example, a body with one ReLU layer per task:

    >>> import numpy as np, tfmtl
    >>> def per_task_layer(features, tasks):
    ...     return {task.name: tfmtl.layers.MLP([8], final_activation="relu", name=f"{task.name}_body")(features.shared)
    ...             for task in tasks}
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.build_model(schema, [tfmtl.Task.binary("click")], per_task_layer, name="mine")
    >>> model({"price": np.array([1.0, 2.0])})["click"].shape
    TensorShape([2, 1])
    """

    def __call__(self, features: EncodedFeatures, tasks: Sequence[Task]) -> Mapping[str, tf.Tensor]: ...


#: Heads: each task's final ``[B, H]`` in, the model's outputs out (default: each task's :meth:`Task.head`).
Heads = Callable[[Mapping[str, tf.Tensor], Sequence[Task]], Mapping[str, tf.Tensor]]


def build_model(
    schema: Schema,
    tasks: Sequence[Task],
    body: Body,
    *,
    name: str,
    interaction: Interaction | None = None,
    cross_layers: int = 0,
    cross_projection_dim: int | None = None,
    regularization: Regularization | None = None,
    heads: Heads | None = None,
) -> MultiTaskModel:
    """Build a :class:`MultiTaskModel` around an architecture's ``body``.

    Args:
      schema: Adapted feature schema.
      tasks: The tasks. Each gets a tower of ``task.tower_units`` (ReLU) over its
        body output; a task with ``transfer=True`` then gets AITM's adaptive
        information transfer from the final representation of the task it
        ``follows``; then its head.
      body: The architecture (see :class:`Body`).
      name: Model name.
      interaction: ``tfmtl.layers.Cross(...)`` or ``tfmtl.layers.Dot(...)`` on the
        encoded features, before the body.
      cross_layers: Shorthand for ``interaction=Cross(cross_layers, cross_projection_dim)``.
      cross_projection_dim: Low-rank projection of those cross layers (None = full rank).
      regularization: Initializers, regularizers and dropout of the body's and the
        towers' layers, and L2 on the looked-up embedding rows (default: none).
      heads: What turns the final representations into outputs (default: each
        task's own head; :class:`~tfmtl.tasks.FunnelHeads` for ESMM).

    Returns:
      A :class:`MultiTaskModel` with one output per task (plus the heads' extra outputs).

    Example, shared-bottom written as a body:

    >>> import numpy as np, tfmtl
    >>> def bottom(features, tasks):
    ...     hidden = tfmtl.layers.MLP([8], final_activation="relu", name="bottom")(features.shared)
    ...     return {task.name: hidden for task in tasks}
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.build_model(schema, [tfmtl.Task.binary("click"), tfmtl.Task.regression("dwell")],
    ...                                  bottom, name="mine")
    >>> sorted(model({"price": np.array([1.0])}))
    ['click', 'dwell']
    """
    tasks = check_tasks(tasks)
    regularization = Regularization.from_config(regularization)
    check_names(schema, tasks, extra_outputs=getattr(heads, "extra_outputs", ()))
    if cross_layers < 0:
        raise ValueError(f"cross_layers must be >= 0, got {cross_layers}")
    if cross_layers:
        if interaction is not None:
            raise ValueError("give cross_layers or interaction, not both")
        interaction = Cross(cross_layers, cross_projection_dim)
    inputs, features = encode_features(schema, interaction, regularization)
    representations = body(features, tasks)
    missing = [task.name for task in tasks if task.name not in representations]
    if missing:
        raise ValueError(f"the body returned no representation for task(s) {missing}; it returned {sorted(representations)}")
    unknown = sorted(set(representations) - {task.name for task in tasks})
    if unknown:
        raise ValueError(f"the body returned representations for {unknown}, which are not tasks {[t.name for t in tasks]}")
    towers = {}
    for task in tasks:
        hidden = representations[task.name]  # [B, H]
        if task.tower_units:
            hidden = MLP(task.tower_units, final_activation="relu", **regularization.mlp_kwargs(), name=f"{task.name}_tower")(hidden)
        towers[task.name] = hidden
    by_name = {task.name: task for task in tasks}
    final: dict[str, tf.Tensor] = {}

    def after_transfer(task: Task) -> tf.Tensor:
        """The task's tower output, after AITM's transfer from the step it follows (``Task.transfer``)."""
        if task.name not in final:
            hidden = towers[task.name]
            if task.transfer:
                hidden = transfer_from(task, after_transfer(by_name[task.follows]), hidden)  # type: ignore[index]
            final[task.name] = hidden
        return final[task.name]

    hidden = {task.name: after_transfer(task) for task in tasks}
    if heads is None:
        outputs = {task.name: task.head()(hidden[task.name]) for task in tasks}  # [B, 1] (or [B, C])
    else:
        outputs = dict(heads(hidden, tasks))
    return MultiTaskModel(inputs=inputs, outputs=outputs, name=name)


def transfer_from(task: Task, previous: tf.Tensor, hidden: tf.Tensor) -> tf.Tensor:
    """AITM's adaptive information transfer (``Task.transfer``): ``[B, *]`` and ``[B, H]`` -> ``[B, H]``."""
    return AdaptiveInformationTransfer(int(hidden.shape[-1]), name=f"{task.name}_transfer")([previous, hidden])


def encode_features(
    schema: Schema, interaction: Interaction | None = None, regularization: Regularization | None = None,
) -> tuple[dict[str, Any], EncodedFeatures]:
    """The model's raw inputs and the :class:`EncodedFeatures` a body reads.

    Raw inputs go through the preprocessing stage (:class:`FeaturePreprocessor`, layer
    ``"preprocessing"``: checks, lookups, hashing, standardization), then the trainable
    stage's :class:`FeatureEncoder` (layer ``"features"``), then ``interaction``.
    """
    if not isinstance(schema, Schema):
        raise TypeError(f"schema must be a tfmtl.features.Schema, got {type(schema).__name__}")
    if interaction is not None and not isinstance(interaction, (Cross, Dot)):
        raise TypeError(f"interaction must be tfmtl.layers.Cross(...) or Dot(...), got {interaction!r}")
    regularization = Regularization.from_config(regularization)
    inputs = schema.inputs()
    preprocessed = FeaturePreprocessor(schema, name="preprocessing")(inputs)
    encoder = FeatureEncoder(schema, regularization.embedding_l2, name="features")
    encoded = encoder(preprocessed)  # [B, D]
    shared = interaction(encoded, encoder) if interaction is not None else encoded  # [B, D']
    return inputs, EncodedFeatures(schema, encoder, preprocessed, encoded, shared, regularization)


_RESERVED = {
    "features", "preprocessing", "dot_interaction", "bottom", "mixture_of_experts", "hierarchy_of_experts", "shared", "all_tasks",
    "epnet", "ppnet", "pepnet_gate_features", "pepnet_prior_features", "star_network", "star_scenario",
}


def check_names(schema: Schema, tasks: Sequence[Task], extra_outputs: Sequence[str] = ()) -> None:
    """Feature names, task names and internal layer names become Keras layer names: keep them apart."""
    task_names = {task.name for task in tasks} | set(extra_outputs)
    both = sorted(task_names & set(schema.names))
    if both:
        raise ValueError(f"{both} name(s) both a feature and a task; rename the task (e.g. 'p_{both[0]}')")
    internal = _RESERVED | {f"{kind}_{i}" for kind in ("cross", "extraction", "fusion") for i in range(64)} | {
        f"{t}_{suffix}" for t in task_names for suffix in ("tower", "gate", "transfer")
    }
    clashes = sorted((task_names | set(schema.names)) & internal)
    if clashes:
        raise ValueError(f"feature/task name(s) {clashes} are reserved for tfmtl's internal layers; rename them")


def check_units(units: Sequence[int], what: str) -> list[int]:
    """A builder's layer sizes: a non-empty sequence of ints >= 1 (see :func:`~tfmtl.features.kinds.int_tuple`)."""
    return list(int_tuple(units, what, non_empty=True))


__all__ = ["Body", "EncodedFeatures", "FeatureSlice", "Heads", "build_model", "check_units", "encode_features", "transfer_from"]
