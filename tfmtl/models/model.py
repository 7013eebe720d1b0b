"""The functional multi-task model: schema-checked inputs, task-driven compile, the multi-task step.

Its other parts live beside it: :mod:`tfmtl.models.entry_points` (raw inputs checked
before Keras sees them) and :mod:`tfmtl.models.saving` (``.keras`` files with the
compile and balancer state). What it is trained to do (labels, losses, weights,
metrics, gradient combination) is its :class:`~tfmtl.objective.MultiTaskObjective`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.balancing import LossBalancer
from tfmtl.features.encoder import FeatureEncoder
from tfmtl.features.preprocessing import FeaturePreprocessor, is_preprocessed
from tfmtl.features.schema import Schema
from tfmtl.layers.extraction import ExtractionLayer
from tfmtl.models.entry_points import RawInputEntryPoints
from tfmtl.models.saving import KerasSaving
from tfmtl.objective import MultiTaskObjective
from tfmtl.tasks.task import Task, check_tasks

#: Training steps per call into TensorFlow that ``compile()`` chooses when not told.
DEFAULT_STEPS_PER_EXECUTION = 16

@keras.utils.register_keras_serializable(package="tfmtl")
class MultiTaskModel(KerasSaving, RawInputEntryPoints, keras.Model):
    """A Keras functional model with dict inputs (features) and dict outputs (tasks).

    Built by the architectures in :mod:`tfmtl.models` (``shared_bottom``, ``mmoe``,
    ``omoe``, ``cgc``, ``ple``, ``esmm``, ``aitm``); not usually constructed
    directly. On top of a plain functional model it:

    * checks every input batch against the schema (unknown/missing feature,
      dtype, shape) with errors that name the feature;
    * fills ``compile``'s losses, loss weights and metrics from the tasks, and
      balances the task losses with a :mod:`tfmtl.balancing` strategy;
    * reads each task's label from its ``label`` key in the data (with the
      task's space, sample-weight column and missing labels applied) and raises a
      clear error when it is missing;
    * logs one flat dict: ``loss``, and per task ``<task>/loss`` (unweighted),
      ``<task>/weight`` (current total weight; training only) and
      ``<task>/<metric>``.

    The schema comes from the model's :class:`~tfmtl.features.FeatureEncoder`
    and the tasks from its output layers that carry a :class:`~tfmtl.Task`
    (``TaskHead``, ``FunnelProduct``; the pre-0.2 ``FunnelHead``; Keras orders dict outputs by
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
    >>> model.compile()  # losses, weights and metrics come from the tasks; LazyAdam by default
    >>> history = model.fit({"item": np.array(["a", "b"])}, {"click": np.array([1.0, 0.0])}, verbose=0)
    >>> sorted(history.history)
    ['ctr/auc', 'ctr/copc', 'ctr/ece', 'ctr/logloss', 'ctr/loss', 'ctr/weight', 'loss']
    """

    def __init__(
        self, inputs: Any, outputs: Any, name: str | None = None, trainable: bool = True, **kwargs: Any
    ) -> None:
        # The same arguments as a functional model, so Keras's from_config rebuilds it.
        super().__init__(inputs=inputs, outputs=outputs, name=name, trainable=trainable, **kwargs)
        encoders = [layer for layer in self.layers if isinstance(layer, FeatureEncoder)]
        preprocessors = [layer for layer in self.layers if isinstance(layer, FeaturePreprocessor)]
        if len(encoders) != 1 or len(preprocessors) != 1:
            raise ValueError(
                "a MultiTaskModel needs exactly one FeaturePreprocessor and one FeatureEncoder layer, found "
                f"{len(preprocessors)} and {len(encoders)}"
            )
        self.schema: Schema = encoders[0].schema
        # The trainable stage: the same layers from the preprocessed inputs on (no lookup,
        # hash or string op). Kept off Keras's tracking: its variables are the model's.
        object.__setattr__(self, "preprocessor", preprocessors[0])
        object.__setattr__(self, "trainable_stage", keras.Model(preprocessors[0].output, self.output, name="stage"))
        # Keras's input check would run before tfmtl's and name inputs by position:
        # Schema.conform checks every input, naming the feature (and pads/truncates sequences).
        self.input_spec = None
        # Task outputs are the layers that carry a Task (TaskHead, FunnelProduct); other
        # outputs (e.g. ESMM's conditional pCVR) are served but have no loss.
        heads = [self.get_layer(output) for output in self.output_names]
        self.tasks: tuple[Task, ...] = check_tasks(
            head.task for head in heads if isinstance(getattr(head, "task", None), Task)
        )

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(task.name for task in self.tasks)

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        return self.trainable_stage(self.preprocess(inputs), training=training)

    def preprocess(self, features: Any) -> dict[str, tf.Tensor]:
        """The preprocessing stage: raw features checked and mapped to ids and standardized values.

        A batch already preprocessed in ``tf.data`` (by a reader or
        ``MultiTaskData.to_dataset``) is checked to come from this model's schema and
        passed on. Every entry point (``fit``, ``evaluate``, ``predict``, ``model(x)``,
        the export's signatures) goes through here.
        """
        if is_preprocessed(features):
            return self.preprocessor.strip(features)
        return self.preprocessor(features)  # (it conforms them first)

    def compile(
        self,
        optimizer: Any = None,
        loss: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Sequence[Any]] | None = None,
        loss_weights: Mapping[str, float] | None = None,
        balancer: LossBalancer | None = None,
        gauc_by: str | None = None,
        gradients_at: str = "parameters",
        jit_compile: bool = False,
        cold_start_by: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Keras ``compile`` with losses, loss weights and metrics taken from the tasks.

        The arguments make the model's :class:`~tfmtl.objective.MultiTaskObjective`
        (``model.objective``), which owns labels, losses, weights, metrics and how the
        gradients are combined.

        With no arguments, the fast path: :class:`~tfmtl.training.LazyAdam` (Adam that
        updates only the embedding rows in the batch; rows absent from a batch keep
        their moments) at learning rate 1e-3, and :data:`DEFAULT_STEPS_PER_EXECUTION`
        training steps per call into TensorFlow (batch-level callbacks then see every
        that many steps; one under ``MultiWorkerMirroredStrategy`` and ``ParameterServerStrategy``). An optimizer or
        ``steps_per_execution`` you give is used as given.

        Args:
          optimizer: Keras optimizer (or its name); default ``LazyAdam(1e-3)``.
          loss: Optional dict task name -> per-example loss ``(labels, predictions) -> [B]``
            (e.g. ``keras.losses.binary_focal_crossentropy``, or a Keras loss name such
            as ``"mse"``; Keras loss objects are called unreduced). Missing labels, task
            spaces and sample weights are applied around it. As in Keras, a list gives
            one per task in the model's task order, and a single loss applies to every
            task. Default: the task kind's loss.
          metrics: Optional dict task name -> list of Keras metrics, replacing the
            task's defaults; they are named ``<task>/<metric name>``. A list of lists
            gives them by task order; a flat list applies to every task.
          loss_weights: Optional dict task name -> static weight, replacing
            ``Task.loss_weight``; or a list, one per task in the model's task order.
          balancer: A :mod:`tfmtl.balancing` strategy (default ``FixedWeights()``).
          gradients_at: Where a gradient strategy takes each task's gradient:
            ``"parameters"`` (the shared parameters; the default) or ``"representation"``
            (the shared representation, :meth:`representation_layers`: each task's
            backward pass stops there, and the combination flows on to the parameters
            below in one pass; see :mod:`tfmtl.objective.representation`).
          gauc_by: A feature (e.g. ``"user_id"``) to group by: adds
            ``<task>/gauc`` (:class:`~tfmtl.tasks.GroupAUC`) to every binary task's
            evaluation metrics.
          cold_start_by: Id features (``Categorical`` with a vocabulary), e.g.
            ``"item_id"`` or ``("item_id", "user_id")``: ``evaluate`` also reports each
            task metric on the cold rows, whose id (any of them) is out of the vocabulary
            the schema was adapted on, as ``<task>/<metric>_cold``, and on the others as
            ``<task>/<metric>_warm`` (GAUC excepted).
          jit_compile: Compile the trainable stage's forward and backward pass with
            XLA. The preprocessing stage (lookups, hashing: ops XLA has no kernel for)
            and the optimizer's sparse updates stay outside the compiled part.
          **kwargs: Passed to Keras (``steps_per_execution``, ``run_eagerly``, ...).
        """
        objective = MultiTaskObjective(
            self.tasks, loss=loss, metrics=metrics, loss_weights=loss_weights, balancer=balancer, gauc_by=gauc_by,
            gradients_at=gradients_at, features=self.schema.names, cold_start_by=self._cold_start_features(cold_start_by),
        )
        if not isinstance(jit_compile, bool):
            raise TypeError(f"jit_compile must be True or False, got {jit_compile!r}")
        given = dict(kwargs)  # as given (a default chosen below stays a default when loaded)
        if optimizer is None:
            from tfmtl.training.optimizers import LazyAdam

            optimizer = LazyAdam(1e-3)
        # One step per execution across machines. Under MultiWorkerMirroredStrategy, an execution of
        # several steps that runs out of data part-way (an epoch that is not a multiple of it) fails in
        # the gradient all-gather ("Shape mismatch in the collective instance"). Under
        # ParameterServerStrategy, Keras shortens the last execution by assigning the shared
        # steps_per_execution variable from the coordinator while the workers' steps run asynchronously.
        multi_worker = isinstance(self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy) or bool(
            getattr(self.distribute_strategy, "_should_use_with_coordinator", False))
        kwargs.setdefault("steps_per_execution", 1 if multi_worker else DEFAULT_STEPS_PER_EXECUTION)
        with self.distribute_strategy.scope():
            shared = self._shared_candidates(self.trainable_variables, objective.balancer)
            # (checks the strategy against the tasks: nothing is changed if it fails)
            objective.build(shared_size=sum(v.shape.num_elements() for v in shared))
        # What load_model needs to compile the model the same way (see get_compile_config). Kept off Keras's
        # tracking: the strategy in it would otherwise add its variables to model.weights / get_weights().
        object.__setattr__(self, "_tfmtl_compile_args", {**objective.config, "jit_compile": jit_compile, **given})
        # Keras's own jit_compile would compile the lookups too: tfmtl compiles the trainable stage only.
        super().compile(optimizer=optimizer, jit_compile=False, **kwargs)
        # Kept off Keras's tracking, so model.weights / get_weights() stay the model's own;
        # model.save() stores the strategy's state (see save_own_variables).
        object.__setattr__(self, "_objective", objective)
        self.reset_step_functions()

    def reset_step_functions(self) -> None:
        """Trace the training step afresh at its next call (after a change to the objective, e.g. distillation)."""
        jit_compile = self.__dict__.get("_tfmtl_compile_args", {}).get("jit_compile", False)
        object.__setattr__(
            self, "_step", tf.function(self._core, jit_compile=True, autograph=False) if jit_compile else self._core
        )
        self.train_function = None

    @property
    def distribute_reduction_method(self) -> str:
        """How ``fit`` reduces the replicas' step outputs: ``"first"`` unless you set another.

        The step returns metric results that are already synchronized across replicas and
        workers (the same value everywhere). Keras's own default sums them, which under
        ``MultiWorkerMirroredStrategy`` doubled every training log with 2 workers.
        """
        return self._distribute_reduction_method or "first"

    @distribute_reduction_method.setter
    def distribute_reduction_method(self, value: str) -> None:
        self._distribute_reduction_method = value

    @property
    def objective(self) -> MultiTaskObjective | None:
        """What the model is trained to do: labels, losses, weights, metrics (None before ``compile``)."""
        return self.__dict__.get("_objective")

    @property
    def balancer(self) -> LossBalancer | None:
        """The compiled loss-balancing strategy (None before ``compile``)."""
        objective = self.objective
        return objective.balancer if objective is not None else None

    @property
    def metrics(self) -> list[Any]:
        objective = self.objective
        if objective is None:
            return super().metrics
        return [*objective.metrics, *(m for layer in self._flatten_layers() for m in layer._metrics)]

    def fit(self, *args: Any, callbacks: Any = None, **kwargs: Any) -> Any:
        """Keras ``fit`` (raw feature dicts checked first); also tells the balancing strategy when an epoch ends."""
        objective = self.objective
        if objective is not None:
            if isinstance(callbacks, keras.callbacks.CallbackList):
                callbacks.append(_EpochEnd(objective))
            else:
                callbacks = [*(callbacks or []), _EpochEnd(objective)]
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def _validate_and_get_metrics_result(self, logs: Any) -> Any:
        # Keras replaces the last step's logs by the metrics' results only when the key sets match, and under
        # ParameterServerStrategy the last step is not the epoch. tfmtl's logs also hold the task weights (not
        # metrics: read from the balancer here, on the coordinator) and leave out per-group AUCs in training:
        # each key is taken from its owner.
        if not isinstance(logs, dict) or self.objective is None:
            return super()._validate_and_get_metrics_result(logs)
        results = {name: value for name, value in self.get_metrics_result().items() if name in logs}
        results.update({key: value for key, value in self.objective.weight_logs().items() if key in logs})
        return {key: _python(results[key]) if key in results else value for key, value in logs.items()}

    def train_step(self, data: Any) -> Any:
        x, labels, weights = self.objective.prepare(data)
        preprocessed = self.preprocess(x)  # host / tf.data work: outside the compiled part
        y_pred, losses, total, gradients = self._step(preprocessed, labels, weights)
        # Applied outside XLA: sparse (IndexedSlices) updates need no deduplication by tf.unique there.
        self.optimizer.apply_gradients(zip(gradients, self._variables_to_train()))
        self.objective.after_update(lambda: self.trainable_stage(preprocessed, training=True), labels, weights, losses)
        return self.objective.update_metrics(x, labels, weights, y_pred, losses, total, training=True)

    def _core(self, preprocessed: Any, labels: Any, weights: Any) -> tuple[Any, tf.Tensor, tf.Tensor, list[Any]]:
        """Forward and backward pass of the trainable stage: ``(predictions, [K] losses, total, gradients)``."""
        return self.objective.training_step(
            lambda: self.trainable_stage(preprocessed, training=True), labels, weights, self.optimizer,
            self._variables_to_train(), self._shared_candidates, layer_losses=lambda: self.losses,
            representation_layers=self.representation_layers(),
        )

    def test_step(self, data: Any) -> Any:
        x, labels, weights = self.objective.prepare(data)
        if is_preprocessed(x) and self.objective.has_group_metrics():
            raise ValueError(
                "compile(gauc_by=...) groups rows by raw ids, but these batches were preprocessed in tf.data: "
                "evaluate on raw batches (a reader or to_dataset with preprocess=False)"
            )
        preprocessed = self.preprocess(x)
        y_pred = self.trainable_stage(preprocessed, training=False)
        losses, total = self.objective.losses(labels, weights, y_pred, self.losses)
        cold = None
        if self.objective.cold_start_by:  # an id out of vocabulary is looked up into an OOV row, 0..oov-1
            out = [preprocessed[name] < self.schema[name].num_oov_buckets for name in self.objective.cold_start_by]
            cold = tf.cast(tf.reduce_any(tf.stack(out), axis=0), tf.float32)
        return self.objective.update_metrics(x, labels, weights, y_pred, losses, total, training=False, cold=cold)

    def _cold_start_features(self, names: str | Sequence[str] | None) -> tuple[str, ...]:
        """``compile(cold_start_by=...)`` checked: vocabulary ``Categorical`` features of the schema."""
        from tfmtl.features.categorical import Categorical

        names = (names,) if isinstance(names, str) else tuple(names or ())
        for name in names:
            spec = self.schema[name] if name in self.schema else None
            if not isinstance(spec, Categorical) or spec.padded or spec.vocabulary is None:
                raise ValueError(
                    f"cold_start_by names {name!r}, which is not a Categorical feature with a vocabulary (one id per "
                    f"row, not hashed); the schema's are: "
                    f"{[s.name for s in self.schema if isinstance(s, Categorical) and not s.padded and s.vocabulary]}"
                )
        return names

    def _variables_to_train(self) -> list[tf.Variable]:
        own = {id(v) for v in self.trainable_variables}
        extra = [v for v in self.objective.trainable_variables if id(v) not in own]
        return [*self.trainable_variables, *extra]

    def representation_layers(self) -> list[Any]:
        """The layers whose outputs are the shared representation that every task reads.

        The shared bottom (layer ``"bottom"``); else the experts of a mixture of experts;
        else the shared experts of the last extraction level (CGC/PLE); else the encoded
        features (layer ``"features"``: ESMM, AITM and models without a shared body).
        """
        names = {layer.name: layer for layer in self.layers}
        if "bottom" in names:
            return [names["bottom"]]
        if "mixture_of_experts" in names:
            return [names["mixture_of_experts"].experts]
        levels = [layer for layer in self.layers if isinstance(layer, ExtractionLayer)]
        if levels and levels[-1].shared_experts is not None:
            return [levels[-1].shared_experts]
        return [layer for layer in self.layers if isinstance(layer, FeatureEncoder)]

    def _shared_candidates(self, variables: Sequence[tf.Variable], balancer: Any = None) -> list[tf.Variable]:
        balancer = self.balancer if balancer is None else balancer
        names = getattr(balancer, "layers", None)
        if names is None:
            encoder = {id(v) for layer in self.layers if isinstance(layer, FeatureEncoder) for v in layer.variables}
            own = {id(v) for v in balancer.trainable_variables}
            return [v for v in variables if id(v) not in encoder | own]
        chosen = set()
        for name in names:
            try:
                chosen |= {id(v) for v in self.get_layer(name).trainable_variables}
            except ValueError:
                known = [layer.name for layer in self.layers]
                raise ValueError(f"balancer layers: no layer {name!r}; layers: {known}") from None
        return [v for v in variables if id(v) in chosen]


class _EpochEnd(keras.callbacks.Callback):
    def __init__(self, objective: MultiTaskObjective) -> None:
        super().__init__()
        self.objective = objective

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.objective.on_epoch_end()


def _python(value: Any) -> Any:
    array = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
    return array.item() if array.ndim == 0 else array
