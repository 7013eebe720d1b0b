"""Distillation: a small student model trained on a large teacher's predictions as well as the labels.

:func:`distill` takes the teacher's predictions on the training rows as per-task soft targets
and trains the student on a mix of them and the hard labels, through the student's own
compiled objective (its optimizer, balancer, task weights and metrics keep working). Per task:

* **binary**: cross-entropy to the teacher's probability; with a temperature ``T`` both
  probabilities are softened on the logit scale, ``sigmoid(logit / T)``, and the loss is
  multiplied by ``T**2`` (Hinton et al., 2015) so its gradients keep their size. Being a
  cross-entropy, its floor is ``T**2`` times the softened teacher's entropy, not 0 (the
  gradients are those of the KL divergence; a balancer that reads loss sizes sees the offset);
* **regression**: squared error to the teacher's prediction;
* **multi-class**: KL divergence from the teacher's distribution to the student's, both
  softened by ``softmax(log p / T)``, times ``T**2``.

A distilled task's loss is ``alpha * hard + (1 - alpha) * soft``: ``hard`` the task's usual
loss (mean over the rows with a label), ``soft`` the mean soft-target loss over the rows it
covers. With ``unlabelled_rows=True`` (default) the soft target also covers the rows whose
hard label the task does not use (missing, or outside the task's ``space``), so they still
teach the student; with False, only the labelled rows.

The teacher is an in-memory tfmtl model or an export (a SavedModel version folder, called
through its ``serving_default`` signature, as TF Serving would). The student may take fewer
features than the teacher: each model is given its own features from the data.
"""

from __future__ import annotations

import math
import numbers
import os
import pathlib
from typing import Any, Mapping, Sequence

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.objective.labels import row_weights
from tfmtl.tasks.kinds import TaskKind
from tfmtl.tasks.task import Task

#: Label key under which a batch carries the teacher's prediction for a student task.
TEACHER_KEY = "{task}/teacher"
_EPSILON = 1e-7


def teacher_key(task: str) -> str:
    """The label key of the teacher's prediction for ``task`` (``"<task>/teacher"``)."""
    return TEACHER_KEY.format(task=task)


def soft_target_loss(kind: TaskKind | str, teacher: Any, student: Any, temperature: float = 1.0) -> tf.Tensor:
    """Per-row soft-target loss ``[B]`` of a student's predictions against a teacher's.

    Args:
      kind: The task's kind.
      teacher, student: Probabilities ``[B]``/``[B, 1]`` (binary), values (regression) or
        class probabilities ``[B, C]`` (multi-class).
      temperature: Softens both sides (binary, multi-class); the loss is multiplied by ``T**2``.

    Example: binary cross-entropy to the teacher's probability, at T = 1 and T = 2.

    >>> import numpy as np
    >>> from tfmtl.training.distill import soft_target_loss
    >>> t, s = np.array([0.9, 0.2]), np.array([0.6, 0.2])
    >>> np.round(soft_target_loss("binary", t, s).numpy(), 4)
    array([0.5514, 0.5004], dtype=float32)
    >>> bool(np.allclose(-(t * np.log(s) + (1 - t) * np.log(1 - s)), soft_target_loss("binary", t, s), atol=1e-5))
    True
    >>> np.round(soft_target_loss("binary", t, s, temperature=2.0).numpy(), 2)  # T**2 times a softer gap
    array([2.59, 2.55], dtype=float32)
    """
    kind = TaskKind(kind)
    if kind is TaskKind.MULTICLASS:
        def softened(p: Any) -> tf.Tensor:  # log softmax(log p / T)
            return tf.nn.log_softmax(tf.math.log(tf.clip_by_value(tf.cast(p, tf.float32), _EPSILON, 1.0)) / temperature)

        teacher_log, student_log = softened(teacher), softened(student)
        return temperature ** 2 * tf.reduce_sum(tf.exp(teacher_log) * (teacher_log - student_log), axis=-1)
    teacher = tf.reshape(tf.cast(teacher, tf.float32), [-1])
    student = tf.reshape(tf.cast(student, tf.float32), [-1])
    if kind is TaskKind.REGRESSION:
        return tf.square(student - teacher)
    teacher_logit = _logit(teacher) / temperature
    student_logit = _logit(student) / temperature
    return temperature ** 2 * tf.nn.sigmoid_cross_entropy_with_logits(tf.sigmoid(teacher_logit), student_logit)


def _logit(p: tf.Tensor) -> tf.Tensor:
    p = tf.clip_by_value(p, _EPSILON, 1.0 - _EPSILON)
    return tf.math.log(p) - tf.math.log1p(-p)


class Distillation:
    """What the student's objective mixes into its task losses while :func:`distill` trains it.

    Args:
      alpha: Per distilled task, the weight of the hard-label loss (the soft target's is ``1 - alpha``).
      temperature: Per distilled task, the temperature of its soft target.
      unlabelled_rows: Whether rows whose hard label a task does not use learn from the teacher.
    """

    def __init__(self, alpha: Mapping[str, float], temperature: Mapping[str, float], unlabelled_rows: bool) -> None:
        self.alpha = dict(alpha)
        self.temperature = dict(temperature)
        self.unlabelled_rows = unlabelled_rows

    def add_targets(self, tasks: Sequence[Task], data: Any, labels: dict[str, Any], weights: dict[str, Any]) -> None:
        """Put each distilled task's teacher prediction and its row weights beside the hard labels.

        Batches without the teacher's predictions (validation data) are left as they are:
        their loss is the hard-label loss.
        """
        _, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        for task in tasks:
            key = teacher_key(task.name)
            if task.name not in self.alpha or key not in y:
                continue
            labels[key] = tf.cast(y[key], tf.float32)
            if not self.unlabelled_rows:
                weights[key] = weights[task.name]
                continue
            weights[key] = row_weights(task, y, sample_weight, weights[task.name])

    def task_loss(self, task: Task, hard: tf.Tensor, prediction: tf.Tensor, labels: Mapping[str, Any],
                  weights: Mapping[str, Any]) -> tf.Tensor:
        """``alpha * hard + (1 - alpha) * soft`` for a distilled task whose batch carries the teacher's prediction."""
        key = teacher_key(task.name)
        if task.name not in self.alpha or key not in labels:
            return hard
        soft = soft_target_loss(task.kind, labels[key], prediction, self.temperature[task.name])
        weight = weights[key]
        soft = tf.math.divide_no_nan(tf.reduce_sum(soft * weight), tf.reduce_sum(weight))
        alpha = self.alpha[task.name]
        return alpha * hard + (1.0 - alpha) * soft


def distill(
    teacher: Any,
    student: Any,
    data: Any,
    *,
    alpha: float | Mapping[str, float] = 0.5,
    temperature: float | Mapping[str, float] = 1.0,
    tasks: Sequence[str] | Mapping[str, str] | None = None,
    unlabelled_rows: bool = True,
    batch_size: int = 512,
    epochs: int = 1,
    validation_data: Any = None,
    teacher_batch_size: int = 4096,
    **fit_kwargs: Any,
) -> Any:
    """Train ``student`` on ``data``'s labels mixed with ``teacher``'s predictions (see the module docstring).

    The teacher answers every training row once, before training; the student is then
    fitted as usual (its own compile: optimizer, balancer, metrics; ``compile()`` with no
    arguments if it was not compiled) and exports as usual. The training logs' ``loss`` and
    ``<task>/loss`` are the distillation objective's; validation scores the hard labels.

    Args:
      teacher: A tfmtl model, or the path of an export's version folder (its
        ``serving_default`` signature is called, as TF Serving would), or a loaded SavedModel.
      student: The tfmtl model to train.
      data: A :class:`~tfmtl.data.MultiTaskData`, or ``(features, labels)`` dicts of arrays,
        holding every feature either model takes (each gets its own) and the student's labels.
      alpha: Weight of the hard labels in a distilled task's loss, in [0, 1] (0: the teacher
        alone; 1: the labels alone); one number, or per task (the others take 0.5).
      temperature: Softening of the binary and multi-class soft targets, > 0; one number, or
        per task (the others take 1). Regression tasks take none.
      tasks: The student's tasks to distill (default all), or a dict student task -> teacher
        task when the names differ. The others train on their labels alone.
      unlabelled_rows: Rows whose hard label a distilled task does not use (missing, or
        outside its ``space``) learn from the teacher's prediction (True), or not at all (False).
      batch_size, epochs, **fit_kwargs: As for ``student.fit``.
      validation_data: As for ``student.fit``; a ``MultiTaskData`` or ``(features, labels)``
        dicts may hold the teacher's features too (the student is given its own).
      teacher_batch_size: Rows per teacher call.

    Returns:
      The student's ``fit`` History.

    Example: a student without the item's category learns from a teacher that has it.

    >>> import tfmtl
    >>> data = tfmtl.data.synthetic_recsys(1_500, seed=0)
    >>> schema = data.schema.adapt(data.features, verbose=0)
    >>> teacher = tfmtl.models.mmoe(schema, data.tasks, num_experts=2, expert_units=(16,))
    >>> teacher.compile()
    >>> _ = teacher.fit(data.to_dataset(256), verbose=0)
    >>> small = tfmtl.Schema([schema["user_id"], schema["item_id"]])
    >>> student = tfmtl.models.shared_bottom(small, data.tasks, bottom_units=(8,))
    >>> history = tfmtl.training.distill(teacher, student, data, alpha=0.3, temperature=2.0, verbose=0)
    >>> sorted(history.history)[:3]
    ['click/auc', 'click/copc', 'click/ece']
    """
    if not isinstance(unlabelled_rows, bool):
        raise TypeError(f"unlabelled_rows must be True or False, got {unlabelled_rows!r}")
    source = _Teacher.of(teacher)
    student_tasks = {task.name: task for task in student.tasks}
    pairs = _task_pairs(tasks, student_tasks, source)
    softened = {name: teacher_task for name, teacher_task in pairs.items()
                if student_tasks[name].kind is not TaskKind.REGRESSION}
    if isinstance(temperature, Mapping):
        for name, value in temperature.items():
            if name in pairs and name not in softened and value != 1:
                raise ValueError(f"task {name!r}: a temperature softens binary and multi-class targets; this "
                                 f"regression task takes its teacher's value as it is (give it temperature 1)")
        temperature = {name: value for name, value in temperature.items() if name in softened or name not in pairs}
    temperatures = _per_task(temperature, "temperature", softened, 1.0, _check_temperature)
    spec = Distillation(_per_task(alpha, "alpha", pairs, 0.5, _check_alpha),
                        {name: temperatures.get(name, 1.0) for name in pairs}, unlabelled_rows)
    if isinstance(teacher_batch_size, bool) or not isinstance(teacher_batch_size, int) or teacher_batch_size < 1:
        raise ValueError(f"teacher_batch_size must be an int >= 1, got {teacher_batch_size!r}")
    if "validation_split" in fit_kwargs:
        raise ValueError("distill: give validation_data instead of validation_split (the split rows would carry the "
                         "teacher's targets, and validation scores the hard labels)")
    features, labels = _arrays(data)
    needed = set(source.feature_names) | set(student.schema.input_specs())
    for name in features:
        if name not in needed:
            raise ValueError(f"feature {name!r} is taken by neither the teacher ({', '.join(source.feature_names)}) nor "
                             f"the student ({', '.join(student.schema.input_specs())}): drop it from the data")
    for who, names in (("teacher", source.feature_names), ("student", list(student.schema.input_specs()))):
        for name in names:
            if name not in features:
                raise ValueError(f"the {who} takes feature {name!r}, which the data lack")
    for name in pairs:
        if teacher_key(name) in labels:
            raise ValueError(f"the data hold a label {teacher_key(name)!r}, the key distill gives task {name!r}'s "
                             "teacher prediction")
    predictions = source.predict({name: features[name] for name in source.feature_names}, teacher_batch_size)
    targets = dict(labels)
    for name, teacher_task in pairs.items():
        targets[teacher_key(name)] = _checked_prediction(student_tasks[name], teacher_task, predictions[teacher_task])
    if student.objective is None:
        student.compile()
    student_x = {name: features[name] for name in student.schema.input_specs()}
    if hasattr(validation_data, "features") and hasattr(validation_data, "labels"):
        validation_data = (validation_data.features, validation_data.labels)
    if isinstance(validation_data, tuple) and validation_data and isinstance(validation_data[0], Mapping):
        own = student.schema.input_specs()  # the teacher's features may come along: the student takes its own
        validation_data = ({name: value for name, value in validation_data[0].items() if name in own},
                           *validation_data[1:])
    with _distilling(student, spec):
        return student.fit(student_x, targets, batch_size=batch_size, epochs=epochs, validation_data=validation_data,
                           **fit_kwargs)


class _Teacher:
    """A teacher's feature names, task names and predictions, from a tfmtl model or a SavedModel."""

    def __init__(self, feature_names: list[str], outputs: Mapping[str, tf.TensorShape], call: Any,
                 tasks: Mapping[str, Task] | None = None) -> None:
        self.feature_names = feature_names
        self.outputs = dict(outputs)
        self.tasks = dict(tasks or {})  # known for a tfmtl model; an export's are known by their outputs only
        self._call = call

    @classmethod
    def of(cls, teacher: Any) -> "_Teacher":
        if isinstance(teacher, (str, os.PathLike)):
            path = pathlib.Path(teacher)
            if not (path / "saved_model.pb").exists():
                raise FileNotFoundError(f"teacher: no saved_model.pb in {teacher} (give an export's version folder)")
            teacher = tf.saved_model.load(str(path))
        if hasattr(teacher, "schema") and hasattr(teacher, "tasks"):
            names = list(teacher.schema.input_specs())
            shapes = {name: tensor.shape for name, tensor in teacher.output.items()}
            tasks = {task.name: task for task in teacher.tasks}
            return cls(names, shapes, lambda batch: teacher.predict_on_batch(batch), tasks)
        signatures = getattr(teacher, "signatures", None)
        if signatures is None or "serving_default" not in signatures:
            raise TypeError(f"teacher must be a tfmtl model or an export (a SavedModel with a serving_default "
                            f"signature), got {type(teacher).__name__}")
        signature = signatures["serving_default"]
        specs = signature.structured_input_signature[1]
        outputs = {name: spec.shape for name, spec in signature.structured_outputs.items()}

        def call(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            feed = {}
            for name, spec in specs.items():
                try:
                    feed[name] = tf.convert_to_tensor(batch[name], spec.dtype)
                except (TypeError, ValueError):
                    raise TypeError(f"teacher feature {name!r}: the export takes {spec.dtype.name} values of shape "
                                    f"{spec.shape}, the data hold {np.asarray(batch[name]).dtype}") from None
                if not spec.shape.is_compatible_with(feed[name].shape):
                    raise ValueError(f"teacher feature {name!r}: the export takes shape {spec.shape}, the data hold "
                                     f"{feed[name].shape}")
            return {name: value.numpy() for name, value in signature(**feed).items()}

        return cls(sorted(specs), outputs, call)

    def predict(self, features: Mapping[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
        rows = len(next(iter(features.values())))
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, rows, batch_size):
            batch = {name: values[start:start + batch_size] for name, values in features.items()}
            for name, value in self._call(batch).items():
                parts.setdefault(name, []).append(np.asarray(value))
        return {name: np.concatenate(values) for name, values in parts.items()}


def _task_pairs(tasks: Any, student_tasks: Mapping[str, Task], teacher: _Teacher) -> dict[str, str]:
    """Student task -> teacher task, checked."""
    if tasks is None:
        pairs = {name: name for name in student_tasks}
    elif isinstance(tasks, Mapping):
        pairs = dict(tasks)
    elif isinstance(tasks, str):
        pairs = {tasks: tasks}
    else:
        pairs = {name: name for name in tasks}
    for name, teacher_task in pairs.items():
        if name not in student_tasks:
            raise ValueError(f"distill: the student has no task {name!r}; its tasks: {', '.join(student_tasks)}")
        if teacher_task not in teacher.outputs:
            raise ValueError(f"task {name!r}: the teacher has no output {teacher_task!r} to distill it from; the "
                             f"teacher's: {', '.join(teacher.outputs)} (map the names with tasks={{student: teacher}})")
        theirs, mine = teacher.tasks.get(teacher_task), student_tasks[name]
        if theirs is not None and (theirs.kind, theirs.space) != (mine.kind, mine.space):
            raise ValueError(
                f"task {name!r} is {mine.kind.value} on {_rows(mine.space)}, the teacher's {teacher_task!r} is "
                f"{theirs.kind.value} on {_rows(theirs.space)}: they predict different things (map the tasks with "
                f"tasks={{student: teacher}}, e.g. an ESMM teacher's conditional output, or leave it out)")
    return pairs


def _rows(space: str | None) -> str:
    return "every row" if space is None else f"the rows where {space!r} is 1"


def _per_task(value: Any, what: str, pairs: Mapping[str, str], default: float, check: Any) -> dict[str, float]:
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(pairs))
        if unknown:
            raise ValueError(f"{what}: {unknown[0]!r} is not a distilled task; distilled: {', '.join(pairs)}")
        values = {name: value.get(name, default) for name in pairs}
    else:
        values = {name: value for name in pairs}
    for name, number in values.items():
        check(name, number)
    return {name: float(number) for name, number in values.items()}


def _check_alpha(task: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"task {task!r}: alpha (the hard labels' share of the loss) must be in [0, 1], got {value!r}")


def _check_temperature(task: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"task {task!r}: temperature must be a finite number > 0, got {value!r}")


def _arrays(data: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    if hasattr(data, "features") and hasattr(data, "labels"):
        return dict(data.features), dict(data.labels)
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(part, Mapping) for part in data):
        return {k: np.asarray(v) for k, v in data[0].items()}, {k: np.asarray(v) for k, v in data[1].items()}
    raise TypeError(f"distill: data must be a MultiTaskData or (features, labels) dicts of arrays, got "
                    f"{type(data).__name__}")


def _checked_prediction(task: Task, teacher_task: str, prediction: np.ndarray) -> np.ndarray:
    """The teacher's prediction as the student task's soft target, or an error naming the task."""
    prediction = np.asarray(prediction, np.float32)
    if task.kind is TaskKind.MULTICLASS:
        if prediction.ndim != 2 or prediction.shape[1] != task.num_classes:
            raise ValueError(f"task {task.name!r} has {task.num_classes} classes; the teacher's {teacher_task!r} "
                             f"answers shape {prediction.shape[1:]}")
        if prediction.min() < 0 or not np.allclose(prediction.sum(axis=1), 1.0, atol=1e-3):
            raise ValueError(f"task {task.name!r}: the teacher's {teacher_task!r} must answer class probabilities "
                             "(rows >= 0 summing to 1), not scores or logits")
    else:
        prediction = prediction.reshape(len(prediction), -1)
        if prediction.shape[1] != 1:
            raise ValueError(f"task {task.name!r} is {task.kind.value}: the teacher's {teacher_task!r} answers "
                             f"{prediction.shape[1]} values per row, not one")
        prediction = prediction[:, 0]
    if not np.all(np.isfinite(prediction)):
        raise ValueError(f"task {task.name!r}: the teacher's {teacher_task!r} answers NaN or Inf")
    if task.kind is TaskKind.BINARY and (prediction.min() < 0 or prediction.max() > 1):
        raise ValueError(f"task {task.name!r} is binary: the teacher's {teacher_task!r} answers values outside "
                         f"[0, 1] (a regression task?)")
    return prediction


class _distilling:
    """Inside: the student's objective mixes in the soft targets (fresh step functions in and out)."""

    def __init__(self, student: Any, spec: Distillation) -> None:
        self.student, self.spec = student, spec

    def __enter__(self) -> None:
        self.student.objective.distillation = self.spec
        self.student.reset_step_functions()  # (the spec's numbers are constants of the traced step)

    def __exit__(self, *exc: Any) -> None:
        self.student.objective.distillation = None
        self.student.reset_step_functions()


__all__ = ["Distillation", "distill", "soft_target_loss", "teacher_key"]
