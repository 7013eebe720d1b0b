"""A task: one prediction target with its label, head, loss, metrics and weight."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from tfmtl._compat import keras
from tfmtl.features.schema import check_name
from tfmtl.tasks.kinds import TaskKind
from tfmtl.tasks.losses import MaskedLoss
from tfmtl.tasks.metrics import MaskedAUC, MaskedLogLoss, MaskedMAE, MaskedRMSE

#: The label value that means "no label for this task on this row".
MISSING_LABEL = float("nan")


@dataclasses.dataclass(frozen=True)
class Task:
    """One prediction target of a multi-task model.

    The task's ``name`` is its key everywhere: model outputs, losses, loss
    weights, metric names (``<name>_auc``) and serving signatures
    (``predict_<name>``). Rows whose label is NaN (:data:`MISSING_LABEL`) are left
    out of this task's loss and metrics but still train the other tasks.

    Args:
      name: Task name.
      kind: ``TaskKind.BINARY`` (sigmoid head, cross-entropy, AUC + logloss) or
        ``TaskKind.REGRESSION`` (linear head, MSE, RMSE + MAE).
      label: Key of the label in the training data; defaults to ``name``.
      loss_weight: Weight of this task's loss in the total loss.
      tower_units: Hidden units of the task's tower (ReLU MLP) before its head.

    Example:

    >>> import tfmtl
    >>> ctr = tfmtl.Task.binary("ctr", label="click", loss_weight=1.0)
    >>> ctr.label_key, [m.name for m in ctr.metrics()]
    ('click', ['auc', 'logloss'])
    """

    name: str
    kind: TaskKind = TaskKind.BINARY
    label: str | None = None
    loss_weight: float = 1.0
    tower_units: tuple[int, ...] = (64,)

    def __post_init__(self) -> None:
        check_name(self.name, "task")
        if not isinstance(self.kind, TaskKind):
            try:
                object.__setattr__(self, "kind", TaskKind(self.kind))
            except ValueError:
                allowed = ", ".join(kind.value for kind in TaskKind)
                raise ValueError(f"task {self.name!r}: unknown kind {self.kind!r}; allowed: {allowed}") from None
        if not (isinstance(self.loss_weight, (int, float)) and math.isfinite(self.loss_weight) and self.loss_weight >= 0):
            raise ValueError(f"task {self.name!r}: loss_weight must be a finite number >= 0, got {self.loss_weight!r}")
        object.__setattr__(self, "tower_units", tuple(int(units) for units in self.tower_units))
        if any(units < 1 for units in self.tower_units):
            raise ValueError(f"task {self.name!r}: tower_units must be positive, got {self.tower_units}")

    @classmethod
    def binary(cls, name: str, **kwargs: Any) -> "Task":
        """A binary task (e.g. click): predicts a probability."""
        return cls(name, TaskKind.BINARY, **kwargs)

    @classmethod
    def regression(cls, name: str, **kwargs: Any) -> "Task":
        """A regression task (e.g. watch time): predicts a real value."""
        return cls(name, TaskKind.REGRESSION, **kwargs)

    def get_config(self) -> dict[str, Any]:
        """A JSON-able description; ``Task.from_config`` inverts it.

        Example:

        >>> import tfmtl
        >>> task = tfmtl.Task.regression("dwell", label="seconds", tower_units=(32, 16))
        >>> tfmtl.Task.from_config(task.get_config()) == task
        True
        """
        return {**dataclasses.asdict(self), "kind": self.kind.value, "tower_units": list(self.tower_units)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Task":
        return cls(**config)

    @property
    def label_key(self) -> str:
        return self.label or self.name

    def head(self) -> keras.layers.Layer:
        """The output layer, named after the task, always in float32."""
        return TaskHead(self)

    def loss(self) -> MaskedLoss:
        return MaskedLoss(self.kind, name=f"{self.name}_loss")

    def metrics(self) -> list[keras.metrics.Metric]:
        if self.kind is TaskKind.BINARY:
            return [MaskedAUC(), MaskedLogLoss()]
        return [MaskedRMSE(), MaskedMAE()]


@keras.utils.register_keras_serializable(package="tfmtl")
class TaskHead(keras.layers.Dense):
    """A task's output layer: ``Dense(1)`` with sigmoid (binary) or no activation, in float32.

    It carries its :class:`Task`, so a saved model knows its tasks again after loading.

    Example:

    >>> import numpy as np, tfmtl
    >>> head = tfmtl.tasks.TaskHead(tfmtl.Task.binary("ctr"))
    >>> head.name, head.task.kind.value, head(np.zeros([2, 3], np.float32)).shape
    ('ctr', 'binary', TensorShape([2, 1]))
    """

    def __init__(self, task: Task | dict[str, Any], **kwargs: Any) -> None:
        self.task = task if isinstance(task, Task) else Task.from_config(task)
        kwargs.update(
            units=1,
            activation="sigmoid" if self.task.kind is TaskKind.BINARY else None,
            name=kwargs.get("name") or self.task.name,
            dtype="float32",
        )
        super().__init__(**kwargs)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for key in ("units", "activation", "dtype"):
            config.pop(key, None)
        return {**config, "task": self.task.get_config()}


def check_tasks(tasks: Any) -> tuple[Task, ...]:
    """Validate a list of tasks: non-empty, Task objects, unique names."""
    tasks = tuple(tasks)
    if not tasks:
        raise ValueError("a multi-task model needs at least one Task")
    names: set[str] = set()
    for task in tasks:
        if not isinstance(task, Task):
            raise TypeError(f"expected tfmtl.Task objects, got {task!r}")
        if task.name in names:
            raise ValueError(f"duplicate task name {task.name!r}")
        names.add(task.name)
    return tasks
