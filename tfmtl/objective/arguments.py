"""``compile``'s per-task arguments: Keras's forms resolved to one loss, weight and metric list per task.

Keras takes ``loss``, ``loss_weights`` and ``metrics`` as a dict by output name, a
list in output order, or one value for every output. :func:`resolve` accepts the
same forms and returns them keyed by task, with each task's defaults filled in.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

from tfmtl._compat import keras, tf
from tfmtl.tasks.kinds import TaskKind
from tfmtl.tasks.losses import MaskedLoss, per_example_loss
from tfmtl.tasks.metrics import GroupAUC
from tfmtl.tasks.task import Task

#: Per-example loss: (clean labels, predictions) -> ``[B]``.
LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


@dataclasses.dataclass(frozen=True)
class TaskArguments:
    """``compile``'s loss, weight and metric arguments, resolved per task."""

    losses: dict[str, LossFn]  # every task's per-example loss
    static_weights: tuple[float, ...]  # one per task, in task order
    metrics: dict[str, Sequence[Any]]  # the metrics given per task (a task absent here keeps its defaults)
    given: dict[str, Any]  # the arguments as dicts by task, for get_compile_config


def resolve(tasks: Sequence[Task], loss: Any, metrics: Any, loss_weights: Any) -> TaskArguments:
    """Check and resolve ``loss``, ``metrics`` and ``loss_weights`` against ``tasks`` (see the module docstring).

    Example:

    >>> import tfmtl
    >>> tasks = (tfmtl.Task.binary("click"), tfmtl.Task.regression("watch"))
    >>> resolve(tasks, loss=[None, "mae"], metrics=None, loss_weights=[1.0, 0.5]).static_weights
    (1.0, 0.5)
    >>> resolve(tasks, loss=None, metrics=None, loss_weights=[1.0])
    Traceback (most recent call last):
    ValueError: loss_weights has 1 entries, but the model has 2 tasks (click, watch, in that order): ...
    """
    loss = _by_task(tasks, "loss", loss, one_for_all=lambda v: isinstance(v, str) or callable(v))
    metrics = _by_task(
        tasks, "metrics", metrics,
        one_for_all=lambda v: isinstance(v, (list, tuple))
        and not all(m is None or isinstance(m, (list, tuple)) for m in v),
        each=lambda ms: [m.__class__.from_config(m.get_config()) if isinstance(m, keras.metrics.Metric) else m
                         for m in ms],  # one metric object per task
    )
    loss_weights = _by_task(tasks, "loss_weights", loss_weights, one_for_all=lambda v: False)
    names = [task.name for task in tasks]
    for what, given in (("loss", loss), ("metrics", metrics), ("loss_weights", loss_weights)):
        unknown = sorted(set(given or {}) - set(names))
        if unknown:
            raise ValueError(f"{what} name unknown task(s) {unknown}; tasks: {', '.join(names)}")
    weights = {task.name: float(task.loss_weight) for task in tasks}
    weights.update({name: float(value) for name, value in (loss_weights or {}).items()})
    return TaskArguments(
        losses={task.name: _per_example(task, (loss or {}).get(task.name)) for task in tasks},
        static_weights=tuple(weights[name] for name in names),
        metrics=dict(metrics or {}),
        given={"loss": dict(loss) if loss else None, "metrics": dict(metrics) if metrics else None,
               "loss_weights": dict(loss_weights) if loss_weights else None},
    )


def build_metrics(
    tasks: Sequence[Task], given: Mapping[str, Sequence[Any]], gauc_by: str | None
) -> dict[str, list[Any]]:
    """Fresh metric objects per task (create them in the strategy's scope): the given ones, else the task's."""
    out = {}
    for task in tasks:
        chosen = given.get(task.name)
        out[task.name] = task.metrics() if chosen is None else [_named(task, metric) for metric in chosen]
        if gauc_by is not None and task.kind is TaskKind.BINARY:
            out[task.name].append(GroupAUC(gauc_by, name=f"{task.name}/gauc"))
    return out


def _by_task(tasks: Sequence[Task], what: str, given: Any, one_for_all: Callable[[Any], bool],
             each: Callable[[Any], Any] = lambda value: value) -> dict[str, Any] | None:
    """One of Keras's forms (dict, list in task order, one for all) as a dict by task name."""
    names = ", ".join(task.name for task in tasks)
    if given is None or isinstance(given, Mapping):
        return given
    if isinstance(given, (list, tuple)) and not one_for_all(given):
        if len(given) != len(tasks):
            raise ValueError(
                f"{what} has {len(given)} entries, but the model has {len(tasks)} tasks ({names}, in that order): "
                "give one per task, or a dict by task name"
            )
        return {task.name: value for task, value in zip(tasks, given) if value is not None}
    if one_for_all(given):
        return {task.name: each(given) for task in tasks}
    raise TypeError(f"{what} must be a dict by task name or a list in task order ({names}), got {given!r}")


def _per_example(task: Task, given: Any) -> LossFn:
    if given is None:
        return task.per_example_loss
    if isinstance(given, str):
        try:
            given = keras.losses.get(given)
        except ValueError:
            raise ValueError(f"loss for task {task.name!r}: {given!r} is not a Keras loss name") from None
    if isinstance(given, MaskedLoss):  # its masking, mean and sampling correction are the objective's own
        kind = given.kind
        return lambda labels, predictions: per_example_loss(kind, labels, predictions)
    if isinstance(given, keras.losses.Loss):
        return given.call
    if callable(given):
        return given
    raise TypeError(f"loss for task {task.name!r} must be a callable (labels, predictions) -> [batch], got {given!r}")


def _named(task: Task, metric: Any) -> Any:
    metric = keras.metrics.get(metric)
    if not isinstance(metric, keras.metrics.Metric):
        raise TypeError(f"metrics for task {task.name!r} must be Keras Metric objects, got {metric!r}")
    if not metric.name.startswith(f"{task.name}/"):
        metric._name = f"{task.name}/{metric.name}"
    return metric


__all__ = ["LossFn", "TaskArguments", "build_metrics", "resolve"]
