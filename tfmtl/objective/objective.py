"""The multi-task objective: from a batch and the model's outputs to one update, its logs and its metrics.

:class:`MultiTaskObjective` is what ``MultiTaskModel.compile`` creates and the train
and test steps call. It owns every part of "what the model is trained to do":

* label preparation (missing labels, task spaces, sample weights: :mod:`.labels`);
* each task's per-example loss (the task kind's, or one given to ``compile``: :mod:`.arguments`),
  on the sampled probability for a task with a ``negative_sampling_rate``, whose metrics count
  each negative ``1 / rate`` times (:mod:`tfmtl.tasks.sampling`);
* the static weights (``Task.loss_weight`` or ``compile(loss_weights=...)``), multiplied in
  here only, and the balancing strategy (:mod:`tfmtl.balancing`), the only owner of the
  dynamic weights, which sees the statically weighted losses everywhere;
* the losses outside the tasks' (layers' ``add_loss``: gate load balance, calibrators;
  the order penalty of tasks that ``follow`` another);
* the metrics and the logged ``<task>/weight``;
* how the gradients are combined (:mod:`.gradients`: the plain gradient of the total, or
  a gradient strategy's combination of per-task gradients on the shared parameters).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, Sequence

from tfmtl._compat import keras, tf
from tfmtl.balancing import LossBalancer, check_balancer
from tfmtl.objective.arguments import build_metrics, resolve
from tfmtl.objective.gradients import balanced_gradients, mean_over_replicas, scaled, unscaled
from tfmtl.objective.labels import prepare_labels, shaped
from tfmtl.objective.representation import LEVELS, recorded_outputs, representation_gradients
from tfmtl.tasks.metrics import GroupAUC
from tfmtl.tasks.sampling import population_weights, to_sampled
from tfmtl.tasks.task import Task


def _copy(metric: Any, suffix: str) -> Any:
    """A fresh metric of ``metric``'s class and configuration, named with ``suffix`` (for ``cold_start_by``)."""
    cls = type(metric)
    own = set(inspect.signature(cls.__init__).parameters) - {"self", "name", "dtype", "args", "kwargs"}
    if cls.get_config is keras.metrics.Metric.get_config and own:
        raise ValueError(
            f"cold_start_by copies each metric for the cold and warm rows from its get_config(), but "
            f"{cls.__name__} ({metric.name}) takes {sorted(own)} without returning them from get_config: "
            "give it a get_config, or compile without cold_start_by"
        )
    try:
        copy = cls.from_config({**metric.get_config(), "name": metric.name + suffix})
    except (TypeError, ValueError) as error:
        raise ValueError(f"cold_start_by: cannot copy metric {metric.name} ({cls.__name__}) from its config: {error}"
                         ) from None
    copy.evaluation_only = True  # the model marks cold rows in its test step only
    return copy


class MultiTaskObjective:
    """Labels, per-task losses, static and dynamic weights, extra losses, metrics and gradients of a multi-task model.

    ``MultiTaskModel.compile`` makes one from its arguments (``model.objective``);
    the train step is then a forward pass, :meth:`losses` under a gradient tape,
    :meth:`gradients`, the optimizer's update and :meth:`update_metrics`.

    Args:
      tasks: The model's tasks, in the model's task order.
      loss: Optional per-task losses (see ``MultiTaskModel.compile``).
      metrics: Optional per-task metrics, replacing the task's defaults.
      loss_weights: Optional per-task static weights, replacing ``Task.loss_weight``.
      balancer: A :mod:`tfmtl.balancing` strategy (default ``FixedWeights()``).
      gauc_by: A feature to group binary tasks' evaluation AUC by (``<task>/gauc``).
      gradients_at: Where a gradient strategy takes the per-task gradients:
        ``"parameters"`` (the shared parameters) or ``"representation"`` (the shared
        representation: one backward pass per task through its tower only; see
        :mod:`tfmtl.objective.representation`).
      features: The model's feature names (to check ``gauc_by``).

    Example: the total loss of two tasks, one label missing.

    >>> import numpy as np, tfmtl
    >>> tasks = [tfmtl.Task.binary("click"), tfmtl.Task.regression("watch", loss_weight=0.5)]
    >>> objective = MultiTaskObjective(tasks)
    >>> objective.build()
    >>> _, labels, weights = objective.prepare(({}, {"click": np.array([1.0, 0.0]), "watch": np.array([2.0, np.nan])}))
    >>> predictions = {"click": np.array([[0.5], [0.5]]), "watch": np.array([[1.0], [9.0]])}
    >>> losses, total = objective.losses(labels, weights, predictions)
    >>> np.round(losses.numpy(), 4), round(float(total), 4)  # log 2, (2 - 1)^2; total = log 2 + 0.5 * 1
    (array([0.6931, 1.    ], dtype=float32), 1.1931)
    """

    def __init__(
        self,
        tasks: Sequence[Task],
        *,
        loss: Any = None,
        metrics: Any = None,
        loss_weights: Any = None,
        balancer: LossBalancer | None = None,
        gauc_by: str | None = None,
        gradients_at: str = "parameters",
        features: Sequence[str] | None = None,
        cold_start_by: Sequence[str] = (),
    ) -> None:
        self.tasks = tuple(tasks)
        arguments = resolve(self.tasks, loss, metrics, loss_weights)
        if gauc_by is not None and features is not None and gauc_by not in features:
            raise ValueError(f"gauc_by={gauc_by!r} is not a feature; features: {', '.join(features)}")
        self.per_example_losses = arguments.losses
        #: One static weight per task, in task order (the only place they are multiplied in).
        self.static_weights: tuple[float, ...] = arguments.static_weights
        self.balancer: LossBalancer = check_balancer(balancer)
        self.gauc_by = gauc_by
        if gradients_at not in LEVELS:
            raise ValueError(f"gradients_at must be one of {LEVELS}, got {gradients_at!r}")
        if gradients_at == "representation" and not self.balancer.uses_gradients:
            raise ValueError(
                f"gradients_at='representation' is for gradient strategies; {type(self.balancer).__name__} "
                "combines the losses only"
            )
        levels = getattr(self.balancer, "levels", LEVELS)
        if self.balancer.uses_gradients and gradients_at not in levels:
            raise ValueError(
                f"{type(self.balancer).__name__} takes the gradients at the {' or '.join(levels)} only, not "
                f"gradients_at={gradients_at!r} (see its docstring)"
            )
        if gradients_at == "representation" and getattr(self.balancer, "layers", None) is not None:
            raise ValueError(
                f"{type(self.balancer).__name__}(layers=...) names shared parameters; at the representation the "
                "model's representation_layers() are used: drop layers= or use gradients_at='parameters'"
            )
        self.gradients_at = gradients_at
        #: Features whose out-of-vocabulary rows are "cold": evaluation adds ``<task>/<metric>_cold`` and
        #: ``_warm`` (the model marks the rows; see ``MultiTaskModel.compile``).
        self.cold_start_by = tuple(cold_start_by)
        #: ``compile``'s arguments as given (task defaults stay defaults), for saving.
        self.config: dict[str, Any] = {
            **arguments.given, "balancer": self.balancer, "gauc_by": gauc_by, "gradients_at": gradients_at,
        }
        if self.cold_start_by:
            self.config["cold_start_by"] = list(self.cold_start_by)
        self._given_metrics = arguments.metrics
        self._built = False
        #: False only inside ``evaluate(..., negatives_sampled=False)``: the evaluation data hold every
        #: negative, so a task with a ``negative_sampling_rate`` takes its loss and metrics on the
        #: corrected probability with every row counted once. (Read when the step is traced.)
        self.negatives_sampled = True
        #: Set by :func:`tfmtl.training.distill` while it trains: a distilled task's loss mixes its
        #: hard-label loss with the teacher's soft target when the batch carries one.
        self.distillation: Any = None

    def build(self, shared_size: int | None = None) -> None:
        """Create the metrics and the strategy's state (in the model's distribution strategy scope).

        Args:
          shared_size: The number of candidate shared parameters (for a gradient strategy with
            ``[K, P]`` state at the parameters; ``compile`` gives it).
        """
        self.balancer.build(self.tasks)
        if shared_size is not None and self.balancer.uses_gradients and self.gradients_at == "parameters":
            self.balancer.build_shared(shared_size)
        self.loss_tracker = keras.metrics.Mean("loss")
        self.task_loss_trackers = [keras.metrics.Mean(f"{task.name}/loss") for task in self.tasks]
        self.order_trackers = {
            task.name: keras.metrics.Mean(f"{task.name}/order_violation") for task in self.tasks if task.follows
        }
        self.task_metrics = build_metrics(self.tasks, self._given_metrics, self.gauc_by)
        #: Per task, ``(metric on cold rows, metric on warm rows)`` copies of its metrics (GAUC excepted).
        self.cold_warm_metrics: dict[str, list[tuple[Any, Any]]] = {
            task.name: [(_copy(metric, "_cold"), _copy(metric, "_warm")) for metric in self.task_metrics[task.name]
                        if not isinstance(metric, GroupAUC)]
            for task in self.tasks
        } if self.cold_start_by else {}
        self._built = True

    @property
    def metrics(self) -> list[Any]:
        """Every metric the objective logs: ``loss``, ``<task>/loss``, order violations, the tasks' metrics."""
        if not self._built:
            return []
        return [
            self.loss_tracker, *self.task_loss_trackers, *self.order_trackers.values(),
            *(metric for metrics in self.task_metrics.values() for metric in metrics),
            *(metric for pairs in self.cold_warm_metrics.values() for pair in pairs for metric in pair),
        ]

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        """The strategy's own trained variables (e.g. learned uncertainties), updated by the model's optimizer."""
        return list(self.balancer.trainable_variables)

    def prepare(self, data: Any) -> tuple[Any, dict[str, tf.Tensor], dict[str, tf.Tensor]]:
        """``(features, clean labels by task, row weights by task)`` from a Keras batch (see :mod:`.labels`).

        While distilling, the batch's teacher predictions and their row weights come along
        under ``"<task>/teacher"`` (see :mod:`tfmtl.training.distill`).
        """
        x, labels, weights = prepare_labels(self.tasks, data)
        if self.distillation is not None:
            self.distillation.add_targets(self.tasks, data, labels, weights)
        return x, labels, weights

    def _sampled(self, task: Task) -> bool:
        return task.negative_sampling_rate < 1 and self.negatives_sampled

    def task_losses(
        self, labels: Mapping[str, tf.Tensor], weights: Mapping[str, tf.Tensor], predictions: Any
    ) -> list[tf.Tensor]:
        """Each task's weighted mean loss over its present labels (0 if none): K scalars, unweighted by task.

        Kept apart (not stacked) so that a gradient of one task's loss is None, not
        zero, for the variables only other tasks use.
        """
        out = []
        for task in self.tasks:
            prediction = corrected = tf.cast(predictions[task.name], tf.float32)
            if self._sampled(task):  # corrected predictions, sampled labels: the loss of the sampled p
                prediction = to_sampled(prediction, task.negative_sampling_rate)
            per_example = self.per_example_losses[task.name](shaped(task, labels[task.name]), prediction)
            per_example = tf.reshape(per_example, [-1])  # [B]
            weight = weights[task.name]
            loss = tf.math.divide_no_nan(tf.reduce_sum(per_example * weight), tf.reduce_sum(weight))
            if self.distillation is not None:  # the teacher answers true probabilities: compared with the corrected
                loss = self.distillation.task_loss(task, loss, corrected, labels, weights)
            out.append(loss)
        return out

    def extra_loss(self, predictions: Any, layer_losses: Sequence[tf.Tensor] = ()) -> tf.Tensor:
        """Losses outside the tasks': the layers' ``add_loss`` terms and the order penalties of following tasks."""
        total = tf.add_n([tf.cast(loss, tf.float32) for loss in layer_losses]) if layer_losses else tf.constant(0.0)
        for task in self.tasks:
            if task.follows:
                violation = tf.reduce_mean(tf.nn.relu(
                    tf.cast(predictions[task.name], tf.float32) - tf.cast(predictions[task.follows], tf.float32)
                ))
                if self._built:
                    self.order_trackers[task.name].update_state(violation)
                total += task.order_weight * violation
        return total

    def losses(
        self, labels: Mapping[str, tf.Tensor], weights: Mapping[str, tf.Tensor], predictions: Any,
        layer_losses: Sequence[tf.Tensor] = (),
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """``([K] per-task losses, total)`` for evaluation: no strategy state changes."""
        losses = tf.stack(self.task_losses(labels, weights, predictions))
        total = self.balancer.combine(self.weighted(losses)) + self.extra_loss(predictions, layer_losses)
        return losses, total

    def weighted(self, losses: tf.Tensor) -> tf.Tensor:
        """The per-task losses ``[K]`` times the static weights: what every strategy sees."""
        return losses * tf.constant(self.static_weights, tf.float32)

    def task_weights(self) -> tf.Tensor:
        """Each task's current total weight ``[K]``: static weight times the strategy's (logged ``<task>/weight``)."""
        return tf.constant(self.static_weights, tf.float32) * self.balancer.task_weights()

    def training_step(
        self, forward: Callable[[], Any], labels: Mapping[str, tf.Tensor], weights: Mapping[str, tf.Tensor],
        optimizer: Any, variables: Sequence[tf.Variable],
        shared_candidates: Callable[[Sequence[tf.Variable]], list[tf.Variable]],
        layer_losses: Callable[[], Sequence[tf.Tensor]] = lambda: (),
        representation_layers: Sequence[Any] = (),
    ) -> tuple[Any, tf.Tensor, tf.Tensor, list[Any]]:
        """One forward and backward pass: ``(predictions, [K] losses, total, gradients aligned with variables)``.

        Args:
          forward: Runs the model (training mode) and returns its predictions by task.
          labels, weights: From :meth:`prepare`.
          optimizer: The model's optimizer (a loss-scale optimizer's scale is applied and undone).
          variables: Every variable to update.
          shared_candidates: Picks, from ``variables``, those a gradient strategy may treat as shared.
          layer_losses: Returns the layers' ``add_loss`` terms of this forward pass.
          representation_layers: The layers whose outputs are the shared representation
            (used with ``gradients_at="representation"``).
        """
        balancer = self.balancer
        at_representation = self.gradients_at == "representation"
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape(persistent=balancer.uses_gradients) as tape:
            with recorded_outputs(representation_layers if at_representation else (), tape.watch) as representation:
                predictions = forward()
            task_losses = self.task_losses(labels, weights, predictions)  # K scalars, this replica's
            losses = tf.stack(task_losses)
            weighted = self.weighted(losses)
            balancer.observe(mean_over_replicas(weighted))
            combine_weights = balancer.loss_weights() if balancer.uses_gradients else None  # what combine applies
            extra = self.extra_loss(predictions, layer_losses())
            total = balancer.combine(weighted) + extra
            scaled_total = scaled(optimizer, total / replicas)  # the optimizer sums the replicas' gradients
            if balancer.uses_gradients:
                scaled_tasks = [scaled(optimizer, loss * w) for loss, w in zip(task_losses, self.static_weights)]
        if at_representation:
            gradients = representation_gradients(
                tape, balancer, optimizer, representation=representation,
                task_names=[task.name for task in self.tasks], task_objectives=scaled_tasks,
                task_losses=weighted, combine_weights=combine_weights, total_objective=scaled_total,
                variables=variables,
            )
        elif balancer.uses_gradients:
            gradients = balanced_gradients(
                tape, balancer, optimizer, task_objectives=scaled_tasks, task_losses=weighted,
                total_objective=scaled_total, extra_loss=extra, variables=variables,
                candidates=shared_candidates(variables),
            )
        else:
            gradients = unscaled(optimizer, tape.gradient(scaled_total, variables))
        del tape
        return predictions, losses, total, list(gradients)

    def after_update(
        self, forward: Callable[[], Any], labels: Mapping[str, tf.Tensor], weights: Mapping[str, tf.Tensor],
        losses: tf.Tensor,
    ) -> None:
        """For strategies with ``needs_updated_losses`` (FAMO): the batch's losses again, after the update.

        Args:
          forward: Runs the updated model on the same batch (no gradient is taken).
          labels, weights: The batch's, from :meth:`prepare`.
          losses: The step's per-task losses ``[K]`` (from :meth:`training_step`).
        """
        if not self.balancer.needs_updated_losses:
            return
        updated = tf.stop_gradient(tf.stack(self.task_losses(labels, weights, forward())))
        self.balancer.after_update(
            mean_over_replicas(self.weighted(losses)), mean_over_replicas(self.weighted(updated))
        )

    def update_metrics(
        self, features: Any, labels: Any, weights: Any, predictions: Any, losses: tf.Tensor, total: tf.Tensor,
        training: bool, cold: tf.Tensor | None = None,
    ) -> dict[str, tf.Tensor]:
        """Update the metrics with a step's results and return the step's logs.

        ``cold``: ``[B]`` float, 1 on the rows whose ``cold_start_by`` ids are out of
        vocabulary (evaluation only): the cold and warm copies of the metrics see those rows
        and the others.
        """
        self.loss_tracker.update_state(total)
        group_aucs = set()  # computed once at the end of evaluate (see GroupAUC)
        for index, task in enumerate(self.tasks):
            self.task_loss_trackers[index].update_state(losses[index])
            label = shaped(task, labels[task.name])
            weight = weights[task.name]
            if self._sampled(task):  # metrics estimate the data before sampling
                weight = weight * population_weights(labels[task.name], task.negative_sampling_rate)
            for metric in self.task_metrics[task.name]:
                if training and getattr(metric, "evaluation_only", False):
                    continue
                if isinstance(metric, GroupAUC):
                    group_aucs.add(metric.name)
                    metric.update_state(label, predictions[task.name], weight, groups=features[metric.group_by])
                else:
                    metric.update_state(label, predictions[task.name], weight)
            if cold is not None:
                for on_cold, on_warm in self.cold_warm_metrics.get(task.name, ()):
                    on_cold.update_state(label, predictions[task.name], weight * cold)
                    on_warm.update_state(label, predictions[task.name], weight * (1.0 - cold))
        # Training logs leave out the evaluation-only metrics (GAUC, the decision metrics, cold/warm copies).
        hidden = {m.name for m in self.metrics if getattr(m, "evaluation_only", False)} if training else group_aucs
        logs = {metric.name: metric.result() for metric in self.metrics if metric.name not in hidden}
        if training:
            logs.update(self.weight_logs())
        else:
            # Keras replaces the last step's logs by every metric's result() once evaluate ends.
            logs.update({name: tf.constant(float("nan")) for name in group_aucs})
        return logs

    def weight_logs(self) -> dict[str, tf.Tensor]:
        """``<task>/weight`` for every task: the current total weights."""
        current = self.task_weights()
        return {f"{task.name}/weight": current[index] for index, task in enumerate(self.tasks)}

    def has_group_metrics(self) -> bool:
        """Whether evaluation groups rows by a raw feature (``gauc_by``)."""
        return any(isinstance(m, GroupAUC) for ms in self.task_metrics.values() for m in ms)

    def on_epoch_end(self) -> None:
        """Tell the strategy that a training epoch ended (eagerly)."""
        self.balancer.on_epoch_end()


__all__ = ["MultiTaskObjective"]
