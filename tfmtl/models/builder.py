"""Wiring shared by every architecture: inputs -> features -> body -> towers -> heads."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from tfmtl._compat import tf
from tfmtl.features.encoder import FeatureEncoder
from tfmtl.features.kinds import int_tuple
from tfmtl.features.preprocessing import FeaturePreprocessor
from tfmtl.features.schema import Schema
from tfmtl.layers.interaction import Cross, Dot, Interaction
from tfmtl.layers.mlp import MLP
from tfmtl.layers.transfer import AdaptiveInformationTransfer
from tfmtl.models.model import MultiTaskModel
from tfmtl.tasks.task import Task, check_tasks

#: A body maps the shared ``[B, D]`` representation to one ``[B, H]`` tensor per task.
Body = Callable[[tf.Tensor, Sequence[Task]], Mapping[str, tf.Tensor]]


def build_model(
    schema: Schema,
    tasks: Sequence[Task],
    body: Body,
    *,
    cross_layers: int = 0,
    cross_projection_dim: int | None = None,
    interaction: Interaction | None = None,
    name: str,
) -> MultiTaskModel:
    """Build a :class:`MultiTaskModel` around an architecture-specific ``body``.

    ``cross_layers``/``cross_projection_dim`` are a shorthand for ``interaction=Cross(...)``.
    A task with ``transfer=True`` gets AITM's adaptive information transfer from
    the task it ``follows`` between its tower and its head.
    """
    tasks = check_tasks(tasks)
    check_names(schema, tasks)
    if cross_layers < 0:
        raise ValueError(f"cross_layers must be >= 0, got {cross_layers}")
    if cross_layers:
        if interaction is not None:
            raise ValueError("give cross_layers or interaction, not both")
        interaction = Cross(cross_layers, cross_projection_dim)
    inputs, shared = encode_features(schema, interaction)
    representations = body(shared, tasks)
    towers = {}
    for task in tasks:
        hidden = representations[task.name]  # [B, H]
        if task.tower_units:
            hidden = MLP(task.tower_units, final_activation="relu", name=f"{task.name}_tower")(hidden)
        towers[task.name] = hidden
    by_name = {task.name: task for task in tasks}
    transferred: dict[str, tf.Tensor] = {}

    def final(task: Task) -> tf.Tensor:
        """The task's tower output, after AITM's transfer from the step it follows (``Task.transfer``)."""
        if task.name not in transferred:
            hidden = towers[task.name]
            if task.transfer:
                hidden = transfer_from(task, final(by_name[task.follows]), hidden)  # type: ignore[index]
            transferred[task.name] = hidden
        return transferred[task.name]

    outputs = {task.name: task.head()(final(task)) for task in tasks}  # [B, 1] (or [B, C])
    return MultiTaskModel(inputs=inputs, outputs=outputs, name=name)


def transfer_from(task: Task, previous: tf.Tensor, hidden: tf.Tensor) -> tf.Tensor:
    """AITM's adaptive information transfer (``Task.transfer``): ``[B, *]`` and ``[B, H]`` -> ``[B, H]``."""
    return AdaptiveInformationTransfer(int(hidden.shape[-1]), name=f"{task.name}_transfer")([previous, hidden])


def encode_features(schema: Schema, interaction: Interaction | None = None) -> tuple[dict[str, Any], tf.Tensor]:
    """The model's raw inputs and its shared ``[B, D]`` representation.

    Raw inputs go through the preprocessing stage (:class:`FeaturePreprocessor`, layer
    ``"preprocessing"``: checks, lookups, hashing, standardization), then the trainable
    stage's :class:`FeatureEncoder` (layer ``"features"``), then ``interaction``.
    """
    if not isinstance(schema, Schema):
        raise TypeError(f"schema must be a tfmtl.features.Schema, got {type(schema).__name__}")
    if interaction is not None and not isinstance(interaction, (Cross, Dot)):
        raise TypeError(f"interaction must be tfmtl.layers.Cross(...) or Dot(...), got {interaction!r}")
    inputs = schema.inputs()
    preprocessed = FeaturePreprocessor(schema, name="preprocessing")(inputs)
    encoder = FeatureEncoder(schema, name="features")
    shared = encoder(preprocessed)  # [B, D]
    if interaction is not None:
        shared = interaction(shared, encoder)  # [B, D']
    return inputs, shared


_RESERVED = {"features", "preprocessing", "dot_interaction", "bottom", "mixture_of_experts", "shared", "all_tasks"}


def check_names(schema: Schema, tasks: Sequence[Task], extra_outputs: Sequence[str] = ()) -> None:
    """Feature names, task names and internal layer names become Keras layer names: keep them apart."""
    task_names = {task.name for task in tasks} | set(extra_outputs)
    both = sorted(task_names & set(schema.names))
    if both:
        raise ValueError(f"{both} name(s) both a feature and a task; rename the task (e.g. 'p_{both[0]}')")
    internal = _RESERVED | {f"{kind}_{i}" for kind in ("cross", "extraction") for i in range(64)} | {
        f"{t}_{suffix}" for t in task_names for suffix in ("tower", "gate", "transfer")
    }
    clashes = sorted((task_names | set(schema.names)) & internal)
    if clashes:
        raise ValueError(f"feature/task name(s) {clashes} are reserved for tfmtl's internal layers; rename them")


def check_units(units: Sequence[int], what: str) -> list[int]:
    """A builder's layer sizes: a non-empty sequence of ints >= 1 (see :func:`~tfmtl.features.kinds.int_tuple`)."""
    return list(int_tuple(units, what, non_empty=True))


__all__ = ["Body", "build_model", "check_units", "encode_features", "transfer_from"]
