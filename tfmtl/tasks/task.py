"""A task: one prediction target with its label, head, loss, metrics and weight."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from tfmtl._compat import keras, tf
from tfmtl.features.kinds import check_name, int_tuple
from tfmtl.tasks.kinds import TaskKind
from tfmtl.tasks.losses import MaskedLoss, per_example_loss
from tfmtl.tasks.sampling import check_rate
from tfmtl.tasks.threshold_metrics import F1, BestF1Threshold, MacroF1, Precision, Recall, check_threshold
from tfmtl.tasks.metrics import (
    COPC,
    ExpectedCalibrationError,
    MaskedAccuracy,
    MaskedAUC,
    MaskedCrossEntropy,
    MaskedLogLoss,
    MaskedMAE,
    MaskedRMSE,
    MaskedTopKAccuracy,
)

#: The label value that means "no label for this task on this row".
MISSING_LABEL = float("nan")


@dataclasses.dataclass(frozen=True)
class Task:
    """One prediction target of a multi-task model.

    The task's ``name`` is its key everywhere: model outputs, losses, loss
    weights, metric names (``<name>/auc``) and serving signatures
    (``predict_<name>``). Rows whose label is missing (NaN, :data:`MISSING_LABEL`;
    or ``-1`` for a multi-class task) are left out of this task's loss and metrics
    but still train the other tasks.

    Args:
      name: Task name.
      kind: ``TaskKind.BINARY`` (sigmoid head, cross-entropy; AUC, logloss, COPC,
        ECE; in ``evaluate`` also precision, recall and F1 at ``threshold`` and the
        best-F1 threshold),
        ``TaskKind.REGRESSION`` (linear head, MSE; RMSE, MAE) or
        ``TaskKind.MULTICLASS`` (softmax head over ``num_classes``, sparse
        cross-entropy; accuracy, top-k accuracy, logloss; macro-F1 in ``evaluate``).
      label: Key of the label in the training data; defaults to ``name``.
      loss_weight: Weight of this task's loss in the total loss (balancing
        strategies start from, or multiply, it).
      tower_units: Hidden units of the task's tower (ReLU MLP) before its head.
      num_classes: Number of classes of a multi-class task (labels ``0..num_classes-1``).
      class_names: Optional names of the classes (what TF Serving's Classify
        returns as ``classes``); default ``"0"``, ``"1"``, ...
      space: The task's sample space: the label key (usually another task's
        label) that must be 1 for a row to count for this task, e.g. conversion
        trained and scored only on clicked rows (``space="click"``). Rows outside
        the space are treated like missing labels.
      sample_weight: Key of a per-row weight column among the labels; weights this
        task's loss and metrics (0 drops the row).
      follows: A binary task this (binary) task follows in a funnel (e.g.
        purchase follows click); with ``order_weight > 0`` a prediction
        ``p(self) > p(follows)`` is penalised by
        ``order_weight * mean(max(p(self) - p(follows), 0))``.
      order_weight: Weight of that order penalty (0 = off). This is AITM's
        behavioural expectation calibrator (Xi et al., KDD 2021; 0.6 there).
      transfer: With ``follows``, AITM's adaptive information transfer, in every
        architecture (shared-bottom, OMoE, MMoE, CGC/PLE, ESMM): this task's
        tower output is mixed with the followed task's (after that task's own
        transfer) by an :class:`~tfmtl.layers.AdaptiveInformationTransfer`
        layer named ``<task>_transfer`` before the head.
      negative_sampling_rate: For a binary task whose training (and evaluation) data keeps
        only this share of its negative labels (every positive; the others made missing,
        see :meth:`~tfmtl.data.MultiTaskData.downsample_negatives`): the model is trained on
        the sampled labels as they are, and every prediction it returns (``predict``,
        ``evaluate``, exported signatures) is corrected back to the true probability,
        ``p / (p + (1 - p) / rate)``; in a ``MultiTaskModel`` the task's metrics count each
        negative ``1 / rate`` times (:mod:`tfmtl.tasks.sampling`). 1 (default): no sampling.
      threshold: For a binary task, the probability from which a row counts as decided
        positive in its precision, recall and F1 metrics (:mod:`tfmtl.tasks.threshold_metrics`).

    Example:

    >>> import tfmtl
    >>> ctr = tfmtl.Task.binary("ctr", label="click", loss_weight=1.0)
    >>> cvr = tfmtl.Task.binary("cvr", label="purchase", space="click", follows="ctr", order_weight=0.1)
    >>> buy = tfmtl.Task.binary("buy", follows="ctr", transfer=True, order_weight=0.6)  # AITM on a funnel step
    >>> ctr.label_key, [m.name for m in ctr.metrics()][:4]
    ('click', ['ctr/auc', 'ctr/logloss', 'ctr/copc', 'ctr/ece'])
    >>> [m.name for m in tfmtl.Task.binary("buy", threshold=0.1).metrics()][4:]
    ['buy/precision', 'buy/recall', 'buy/f1', 'buy/best_f1_threshold']
    >>> sampled = tfmtl.Task.binary("click", negative_sampling_rate=0.1)  # 10% of the negatives kept
    >>> genre = tfmtl.Task.multiclass("genre", num_classes=20)
    >>> [m.name for m in genre.metrics()]
    ['genre/accuracy', 'genre/top5_accuracy', 'genre/logloss', 'genre/macro_f1']
    """

    name: str
    kind: TaskKind = TaskKind.BINARY
    label: str | None = None
    loss_weight: float = 1.0
    tower_units: tuple[int, ...] = (64,)
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    space: str | None = None
    sample_weight: str | None = None
    follows: str | None = None
    order_weight: float = 0.0
    transfer: bool = False
    negative_sampling_rate: float = 1.0
    threshold: float = 0.5

    def __post_init__(self) -> None:
        check_name(self.name, "task")
        if not isinstance(self.kind, TaskKind):
            try:
                object.__setattr__(self, "kind", TaskKind(self.kind))
            except ValueError:
                allowed = ", ".join(kind.value for kind in TaskKind)
                raise ValueError(f"task {self.name!r}: unknown kind {self.kind!r}; allowed: {allowed}") from None
        for field in ("loss_weight", "order_weight"):
            value = getattr(self, field)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"task {self.name!r}: {field} must be a finite number >= 0, got {value!r}")
        object.__setattr__(self, "tower_units", int_tuple(self.tower_units, f"task {self.name!r}: tower_units"))
        self._check_classes()
        for field in ("label", "space", "sample_weight"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"task {self.name!r}: {field} must be a non-empty label key, got {value!r}")
        if self.space is not None and self.space == self.label_key:
            raise ValueError(f"task {self.name!r}: space {self.space!r} is the task's own label")
        if self.follows is not None:
            check_name(self.follows, "task")
            if self.kind is not TaskKind.BINARY:
                raise ValueError(f"task {self.name!r}: follows= needs a binary task, this one is {self.kind.value}")
            if self.follows == self.name:
                raise ValueError(f"task {self.name!r} cannot follow itself")
        elif self.order_weight:
            raise ValueError(f"task {self.name!r}: order_weight needs follows= (the task it must stay below)")
        if not isinstance(self.transfer, bool):
            raise ValueError(f"task {self.name!r}: transfer must be True or False, got {self.transfer!r}")
        if self.transfer and self.follows is None:
            raise ValueError(f"task {self.name!r}: transfer=True needs follows= (the step it takes information from)")
        rate = check_rate(self.negative_sampling_rate, f"task {self.name!r}")
        if rate < 1 and self.kind is not TaskKind.BINARY:
            raise ValueError(
                f"task {self.name!r}: negative_sampling_rate is for binary tasks, this one is {self.kind.value}"
            )
        object.__setattr__(self, "negative_sampling_rate", rate)
        object.__setattr__(self, "threshold", check_threshold(self.threshold, f"task {self.name!r}"))
        if self.threshold != 0.5 and self.kind is not TaskKind.BINARY:
            raise ValueError(f"task {self.name!r}: threshold is for binary tasks, this one is {self.kind.value}")

    def _check_classes(self) -> None:
        if self.kind is not TaskKind.MULTICLASS:
            if self.num_classes is not None or self.class_names is not None:
                raise ValueError(f"task {self.name!r}: num_classes/class_names are for multi-class tasks only")
            return
        if not isinstance(self.num_classes, int) or isinstance(self.num_classes, bool) or self.num_classes < 2:
            raise ValueError(f"task {self.name!r}: a multi-class task needs num_classes >= 2, got {self.num_classes!r}")
        if self.class_names is not None:
            names = tuple(str(name) for name in self.class_names)
            if len(names) != self.num_classes or len(set(names)) != len(names):
                raise ValueError(
                    f"task {self.name!r}: class_names must be {self.num_classes} distinct names, got {len(names)}"
                )
            object.__setattr__(self, "class_names", names)

    @classmethod
    def binary(cls, name: str, **kwargs: Any) -> "Task":
        """A binary task (e.g. click): predicts a probability."""
        return cls(name, TaskKind.BINARY, **kwargs)

    @classmethod
    def regression(cls, name: str, **kwargs: Any) -> "Task":
        """A regression task (e.g. watch time): predicts a real value."""
        return cls(name, TaskKind.REGRESSION, **kwargs)

    @classmethod
    def multiclass(cls, name: str, num_classes: int, **kwargs: Any) -> "Task":
        """A multi-class task (e.g. item category, rating 1-5 as classes): predicts class probabilities."""
        return cls(name, TaskKind.MULTICLASS, num_classes=num_classes, **kwargs)

    def get_config(self) -> dict[str, Any]:
        """A JSON-able description; ``Task.from_config`` inverts it.

        Example:

        >>> import tfmtl
        >>> task = tfmtl.Task.regression("dwell", label="seconds", tower_units=(32, 16))
        >>> tfmtl.Task.from_config(task.get_config()) == task
        True
        """
        config = {**dataclasses.asdict(self), "kind": self.kind.value, "tower_units": list(self.tower_units)}
        if self.class_names is not None:
            config["class_names"] = list(self.class_names)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Task":
        config = dict(config)
        if config.get("class_names") is not None:
            config["class_names"] = tuple(config["class_names"])
        return cls(**config)

    @property
    def label_key(self) -> str:
        return self.label or self.name

    @property
    def output_units(self) -> int:
        """Width of the task's output: 1, or ``num_classes`` for a multi-class task."""
        return self.num_classes if self.kind is TaskKind.MULTICLASS else 1  # type: ignore[return-value]

    @property
    def classes(self) -> tuple[str, ...]:
        """Class labels in score order, as TF Serving's Classify returns them."""
        if self.kind is TaskKind.BINARY:
            return ("0", "1")
        if self.kind is TaskKind.MULTICLASS:
            return self.class_names or tuple(str(i) for i in range(self.output_units))
        raise ValueError(f"task {self.name!r} is a regression task: it has no classes")

    def head(self) -> keras.layers.Layer:
        """The output layer, named after the task, always in float32."""
        return TaskHead(self)

    def loss(self) -> MaskedLoss:
        """A Keras Loss with this task's masked loss, for models trained with plain Keras."""
        return MaskedLoss(self.kind, name=f"{self.name}_loss", negative_sampling_rate=self.negative_sampling_rate)

    def per_example_loss(self, y_true: Any, y_pred: Any) -> Any:
        """This task's loss for each example (labels already cleaned of missing values), ``[B]``."""
        return per_example_loss(self.kind, y_true, y_pred)

    def metrics(self) -> list[keras.metrics.Metric]:
        """Fresh metric objects named ``<task>/<metric>``."""
        prefix = f"{self.name}/"
        if self.kind is TaskKind.BINARY:
            return [
                MaskedAUC(prefix + "auc"), MaskedLogLoss(prefix + "logloss"), COPC(prefix + "copc"),
                ExpectedCalibrationError(name=prefix + "ece"), Precision(self.threshold, prefix + "precision"),
                Recall(self.threshold, prefix + "recall"), F1(self.threshold, prefix + "f1"),
                BestF1Threshold(name=prefix + "best_f1_threshold"),
            ]
        if self.kind is TaskKind.MULTICLASS:
            k = min(5, self.output_units - 1)
            return [
                MaskedAccuracy(prefix + "accuracy"), MaskedTopKAccuracy(k, name=f"{prefix}top{k}_accuracy"),
                MaskedCrossEntropy(prefix + "logloss"), MacroF1(self.output_units, name=prefix + "macro_f1"),
            ]
        return [MaskedRMSE(prefix + "rmse"), MaskedMAE(prefix + "mae")]


_ACTIVATIONS = {TaskKind.BINARY: "sigmoid", TaskKind.REGRESSION: None, TaskKind.MULTICLASS: "softmax"}


@keras.utils.register_keras_serializable(package="tfmtl")
class TaskHead(keras.layers.Dense):
    """A task's output layer in float32: ``Dense(1)`` with sigmoid (binary) or none
    (regression), or ``Dense(num_classes)`` with softmax (multi-class).

    A binary task with a ``negative_sampling_rate`` ``r < 1`` answers the corrected
    probability ``sigmoid(z + log r)``, ``z`` being the logit the sampled labels train.

    It carries its :class:`Task`, so a saved model knows its tasks again after loading.

    Example:

    >>> import numpy as np, tfmtl
    >>> head = tfmtl.tasks.TaskHead(tfmtl.Task.binary("ctr"))
    >>> head.name, head.task.kind.value, head(np.zeros([2, 3], np.float32)).shape
    ('ctr', 'binary', TensorShape([2, 1]))
    """

    def __init__(self, task: Task | dict[str, Any], **kwargs: Any) -> None:
        self.task = task if isinstance(task, Task) else Task.from_config(task)
        self._log_rate = math.log(self.task.negative_sampling_rate)
        kwargs.update(
            units=self.task.output_units,
            activation=_ACTIVATIONS[self.task.kind] if not self._log_rate else None,
            name=kwargs.get("name") or self.task.name,
            dtype="float32",
        )
        super().__init__(**kwargs)

    def call(self, inputs: Any) -> Any:
        if not self._log_rate:
            return super().call(inputs)
        return tf.sigmoid(super().call(inputs) + self._log_rate)  # logit(q) = logit(p) + log(r)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for key in ("units", "activation", "dtype"):
            config.pop(key, None)
        return {**config, "task": self.task.get_config()}


def check_tasks(tasks: Any) -> tuple[Task, ...]:
    """Validate a list of tasks: non-empty, Task objects, unique names, ``follows`` known and binary."""
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
    by_name = {task.name: task for task in tasks}
    for task in tasks:
        if task.follows is not None:
            earlier = by_name.get(task.follows)
            if earlier is None:
                raise ValueError(f"task {task.name!r} follows unknown task {task.follows!r}; tasks: {sorted(by_name)}")
            if earlier.kind is not TaskKind.BINARY:
                raise ValueError(f"task {task.name!r} follows {earlier.name!r}, which is not binary")
    for task in tasks:  # a funnel runs one way: no task may (indirectly) follow itself
        chain = [task.name]
        while by_name[chain[-1]].follows is not None:
            chain.append(by_name[chain[-1]].follows)  # type: ignore[arg-type]
            if chain[-1] == task.name:
                raise ValueError(f"tasks follow each other in a cycle: {' -> '.join(chain)}")
            if len(chain) > len(tasks):
                break  # a cycle not through this task: reported when its own tasks are checked
    return tasks
