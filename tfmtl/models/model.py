"""The functional multi-task model: schema-checked inputs, task-driven compile."""

from __future__ import annotations

from typing import Any, Mapping

from tfmtl._compat import keras
from tfmtl.features.encoder import FeatureEncoder
from tfmtl.features.schema import Schema
from tfmtl.tasks.task import Task, check_tasks


@keras.utils.register_keras_serializable(package="tfmtl")
class MultiTaskModel(keras.Model):
    """A Keras functional model with dict inputs (features) and dict outputs (tasks).

    Built by the architectures in :mod:`tfmtl.models` (``shared_bottom``, ``mmoe``,
    ``omoe``, ``cgc``, ``ple``, ``esmm``, ``aitm``); not usually constructed
    directly. On top of a plain functional model it:

    * checks every input batch against the schema (unknown/missing feature,
      dtype, shape) with errors that name the feature;
    * fills ``compile``'s losses, loss weights and metrics from the tasks;
    * reads each task's label from its ``label`` key in the data and raises a
      clear error when it is missing.

    The schema comes from the model's :class:`~tfmtl.features.FeatureEncoder`
    and the tasks from its output layers that carry a :class:`~tfmtl.Task`
    (``TaskHead``, ``FunnelProduct``, ``FunnelHead``; Keras orders dict outputs by
    name, and so ``tasks``), so a model
    saved with ``model.save("m.keras")`` loads back (``keras.models.load_model``)
    as a ``MultiTaskModel`` with both.

    Args:
      inputs: dict of feature name to ``keras.Input``.
      outputs: dict of output name to output tensor; task outputs come from a
        ``TaskHead`` named after the task.
      name: Model name.
      trainable: Keras ``trainable``.

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Categorical("item", embedding_dim=2, vocabulary=("a", "b"))])
    >>> model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("ctr", label="click")], bottom_units=(4,))
    >>> model.compile(optimizer="adam")  # losses, weights and metrics come from the tasks
    >>> history = model.fit({"item": np.array(["a", "b"])}, {"click": np.array([1.0, 0.0])}, verbose=0)
    >>> sorted(history.history)
    ['ctr_auc', 'ctr_logloss', 'loss']
    """

    def __init__(self, inputs: Any, outputs: Any, name: str | None = None, trainable: bool = True, **kwargs: Any) -> None:
        # The same arguments as a functional model, so Keras's from_config rebuilds it.
        super().__init__(inputs=inputs, outputs=outputs, name=name, trainable=trainable, **kwargs)
        encoders = [layer for layer in self.layers if isinstance(layer, FeatureEncoder)]
        if len(encoders) != 1:
            raise ValueError(f"a MultiTaskModel needs exactly one FeatureEncoder layer, found {len(encoders)}")
        self.schema: Schema = encoders[0].schema
        # Task outputs are the layers that carry a Task (TaskHead, FunnelProduct); other
        # outputs (e.g. ESMM's conditional pCVR) are served but have no loss.
        heads = [self.get_layer(output) for output in self.output_names]
        self.tasks: tuple[Task, ...] = check_tasks(head.task for head in heads if isinstance(getattr(head, "task", None), Task))

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(task.name for task in self.tasks)

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        return super().call(self.schema.conform(inputs), training=training, mask=mask)

    def compile(
        self,
        optimizer: Any = "adam",
        loss: Any = None,
        metrics: Any = None,
        loss_weights: Mapping[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        """Keras ``compile`` with losses, loss weights and metrics taken from the tasks.

        Anything given explicitly (a dict keyed by task name) overrides the tasks.
        """
        # What load_model needs to compile the model the same way (see get_compile_config).
        self._tfmtl_compile_args = {
            "loss": loss, "metrics": metrics, "loss_weights": dict(loss_weights) if loss_weights else None, **kwargs
        }
        if loss is None:
            loss = {task.name: task.loss() for task in self.tasks}
            loss.update({name: None for name in self.output_names if name not in loss})  # served only
        if loss_weights is None:
            loss_weights = {task.name: float(task.loss_weight) for task in self.tasks}
        else:
            unknown = sorted(set(loss_weights) - set(self.task_names))
            if unknown:
                raise ValueError(f"loss_weights name unknown task(s) {unknown}; tasks: {', '.join(self.task_names)}")
        if metrics is None:
            metrics = {task.name: task.metrics() for task in self.tasks}
            if len(self.tasks) == 1:
                # Keras prefixes metric names with the output name only for several
                # outputs; name them "<task>_<metric>" for one task too.
                for metric in metrics[self.tasks[0].name]:
                    metric._name = f"{self.tasks[0].name}_{metric.name}"
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, loss_weights=loss_weights, **kwargs)

    # Keras restores compile() on load only when a model with its own compile() says how.
    def get_compile_config(self) -> dict[str, Any] | None:
        """The arguments given to :meth:`compile` (task defaults stay defaults), serialized."""
        if not getattr(self, "_tfmtl_compile_args", None):
            return None
        args = {"optimizer": self.optimizer, **self._tfmtl_compile_args}
        return {key: keras.saving.serialize_keras_object(value) for key, value in args.items()}

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Compile again from :meth:`get_compile_config`'s output (used by ``load_model``)."""
        self.compile(**{key: keras.saving.deserialize_keras_object(value) for key, value in config.items()})
        if self.built and isinstance(self.optimizer, keras.optimizers.Optimizer):
            self.optimizer.build(self.trainable_variables)  # so the saved optimizer state can load

    # -- labels ----------------------------------------------------------
    def _labels_by_task(self, data: Any) -> Any:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if y is None:
            keys = ", ".join(f"{task.name}: {task.label_key!r}" for task in self.tasks)
            raise ValueError(f"no labels in the data: give (features, labels) with labels keyed by ({keys})")
        if not isinstance(y, Mapping):
            raise TypeError(f"labels must be a dict keyed by label name, got {type(y).__name__}")
        for task in self.tasks:
            if task.label_key not in y:
                raise ValueError(
                    f"task {task.name!r} has no label {task.label_key!r} in the data; label keys present: "
                    f"{sorted(y)}. Use NaN for rows without a label."
                )
        y = {task.name: y[task.label_key] for task in self.tasks}
        return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)

    def train_step(self, data: Any) -> Any:
        return super().train_step(self._labels_by_task(data))

    def test_step(self, data: Any) -> Any:
        return super().test_step(self._labels_by_task(data))
