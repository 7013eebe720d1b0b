"""Staged training: freeze or unfreeze layers by their role in the multi-task graph."""

from __future__ import annotations

from typing import Any, Mapping

from tfmtl._compat import keras, tf
from tfmtl.features.encoder import FeatureEncoder
from tfmtl.features.preprocessing import FeaturePreprocessor

#: Role of the feature encoder (lookups, embeddings, normalization).
FEATURES = "features"
#: Role of the layers that feed two or more tasks (shared bottom, experts and gates, interactions).
SHARED = "shared"


def layer_roles(model: Any) -> dict[str, list[keras.layers.Layer]]:
    """The model's layers by role: ``"features"``, ``"shared"``, and one entry per task (its tower and head).

    Roles come from the graph, not from names: walking back from each task's output
    (and stopping at other tasks' outputs, so ESMM's CTCVR product does not claim the
    CTR and CVR towers), a layer reached from one task belongs to it, a layer reached
    from several is shared; the :class:`~tfmtl.features.FeatureEncoder` is ``"features"`` (the
    preprocessing stage, which has nothing to train, has no role).

    Example:

    >>> import tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")],
    ...                                    bottom_units=(4,))
    >>> {role: [layer.name for layer in layers] for role, layers in layer_roles(model).items()}
    {'features': ['features'], 'shared': ['bottom'], 'buy': ['buy_tower', 'buy'], 'click': ['click_tower', 'click']}
    """
    outputs = dict(zip(model.output_names, model.outputs))
    task_layers = {id(outputs[name]._keras_history.layer): name for name in model.task_names}
    reached: dict[int, set[str]] = {}
    for task in model.task_names:
        stack, seen = [outputs[task]], set()
        while stack:
            layer, node_index, _ = stack.pop()._keras_history
            if id(layer) in seen or task_layers.get(id(layer), task) != task:
                continue
            seen.add(id(layer))
            reached.setdefault(id(layer), set()).add(task)
            stack.extend(tf.nest.flatten(layer._inbound_nodes[node_index].keras_inputs))
    roles: dict[str, list[keras.layers.Layer]] = {FEATURES: [], SHARED: [], **{task: [] for task in model.task_names}}
    for layer in model.layers:
        tasks = reached.get(id(layer), set())
        if isinstance(layer, FeatureEncoder):
            roles[FEATURES].append(layer)
        elif isinstance(layer, FeaturePreprocessor):
            continue  # the preprocessing stage: nothing to train
        elif len(tasks) == 1:
            roles[next(iter(tasks))].append(layer)
        elif tasks and not isinstance(layer, keras.layers.InputLayer):
            roles[SHARED].append(layer)
    return roles


def set_trainable(
    model: Any,
    *,
    features: bool | None = None,
    shared: bool | None = None,
    tasks: bool | Mapping[str, bool] | None = None,
) -> dict[str, list[str]]:
    """Set ``trainable`` on the layers of each role (None = leave as is); returns the trainable layers by role.

    For staged training: freeze the features and shared body and fine-tune the
    towers (``features=False, shared=False, tasks=True``), or the reverse. In Keras 2
    the change takes effect at the next ``compile``: call ``model.compile(...)`` again
    (pass the same optimizer and balancer objects to keep their state).

    Args:
      model: A MultiTaskModel.
      features: Trainability of the feature encoder (embeddings).
      shared: Trainability of the layers shared by several tasks.
      tasks: Trainability of every task's tower and head, or a dict task name -> bool.

    Example:

    >>> import tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.mmoe(schema, [tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")], num_experts=2,
    ...                           expert_units=(4,))
    >>> set_trainable(model, features=False, shared=False, tasks={"buy": False})
    {'features': [], 'shared': [], 'buy': [], 'click': ['click_tower', 'click']}
    >>> model.compile()  # Keras 2: trainable changes apply at compile
    """
    roles = layer_roles(model)
    if isinstance(tasks, Mapping):
        unknown = sorted(set(tasks) - set(model.task_names))
        if unknown:
            raise ValueError(f"set_trainable: unknown task(s) {unknown}; tasks: {', '.join(model.task_names)}")
        by_task = dict(tasks)
    else:
        by_task = {task: tasks for task in model.task_names}
    wanted = {FEATURES: features, SHARED: shared, **by_task}
    for role, value in wanted.items():
        if value is not None:
            for layer in roles[role]:
                layer.trainable = bool(value)
    return {role: [layer.name for layer in layers if layer.trainable] for role, layers in roles.items()}
