"""Representation-level gradient balancing: per-task gradients of the shared representation, not of the parameters.

With ``compile(gradients_at="representation")``, a gradient strategy sees each task's
gradient with respect to the shared representation ``z`` (the shared bottom's output,
the experts' outputs, the last extraction level's shared experts, or the encoded
features) instead of the shared parameters. Each task then needs one backward pass
through its own tower only, down to ``z``, and one backward pass of the whole network
follows, as in LibMTL's ``rep_grad`` and MultiBalance (arXiv 2411.11871).

How the update is formed, for per-task representation gradients ``r_k = dL_k/dz``
(``[B, ...]``, of the statically weighted losses):

1. ``R_k = sum over the batch of r_k``, flattened to ``[K, D]`` and averaged over
   replicas, so every replica balances the same global matrix. LibMTL's ``rep_grad``
   forms its Gram matrix the same way; MGDA-UB as published takes the Gram of the
   full ``B x D`` gradients, a different matrix, so MGDA here is LibMTL's form.
2. The strategy's :meth:`~tfmtl.balancing.GradientBalancer.balance` runs on ``R``; its
   result is a combination ``sum_k c_k R_k`` of the task gradients (true of every
   strategy tfmtl ships), whose coefficients ``c`` are read back exactly by giving the
   strategy ``[R | eps I]``: the extra columns come back as ``eps c``. ``eps`` is 1e-4
   of the smallest task's norm, so they change each Gram entry by at most 1e-8 of the
   task's own squared norm, below float32 resolution.
3. The gradient that reaches ``z`` becomes ``sum_k c_k r_k`` per row in place of the
   plain ``sum_k w_k r_k``, and flows on to every parameter below ``z`` in one backward
   pass: ``grad = d(total)/dθ + (dz/dθ)^T (sum_k (c_k - w_k) r_k)``. Parameters above
   ``z`` (towers, gates) get their plain gradient.

An elementwise strategy (``elementwise = True``: GradDrop) gets instead the batch sums
of ``r_k * sign(z)`` (``[K, D]``, averaged over replicas) and returns a factor per task
and unit (:meth:`~tfmtl.balancing.GradientBalancer.multipliers`); the gradient that reaches
``z`` is then ``sum_k m_k * r_k`` per row, the same factors for every row.

DB-MTL works at the parameters only (its update is a moving average of past gradients).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

from tfmtl._compat import keras, tf
from tfmtl.balancing.base import LossBalancer
from tfmtl.objective.gradients import finite_or_zero, mean_over_replicas, unscaled

#: The values ``compile(gradients_at=...)`` takes.
LEVELS = ("parameters", "representation")


@contextlib.contextmanager
def recorded_outputs(
    layers: Sequence[keras.layers.Layer], watch: Callable[[Any], None] | None = None
) -> Iterator[list[Any]]:
    """Record the outputs of ``layers``' calls inside the block (the tensors a tape can differentiate by).

    Each layer's ``call`` is wrapped for the block only (an instance attribute shadows the
    method) and restored exactly as it was afterwards. ``watch`` (a tape's ``watch``) is
    called on every output as it is made, so that a tape differentiates by it even when no
    trainable variable is upstream (encoded features without embeddings).

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("x", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("a")], bottom_units=(3,))
    >>> with recorded_outputs([model.get_layer("bottom")]) as outputs:
    ...     _ = model({"x": np.array([1.0, 2.0])})
    >>> [output.shape.as_list() for output in outputs]
    [[2, 3]]
    """
    outputs: list[Any] = []
    unique = list({id(layer): layer for layer in layers}.values())
    saved = [layer.__dict__.get("call") for layer in unique]  # an instance `call` the layer already had
    for layer in unique:
        original = layer.call

        def call(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            output = _original(*args, **kwargs)
            if watch is not None:
                watch(output)
            outputs.append(output)
            return output

        object.__setattr__(layer, "call", call)
    try:
        yield outputs
    finally:
        for layer, previous in zip(unique, saved):
            if previous is None:
                object.__delattr__(layer, "call")
            else:
                object.__setattr__(layer, "call", previous)


def representation_gradients(
    tape: Any,
    balancer: LossBalancer,
    optimizer: Any,
    *,
    representation: Sequence[tf.Tensor],
    task_names: Sequence[str],
    task_objectives: Sequence[tf.Tensor],
    task_losses: tf.Tensor,
    combine_weights: tf.Tensor | None,
    total_objective: tf.Tensor,
    variables: Sequence[tf.Variable],
) -> list[Any]:
    """Gradients for ``variables`` with the strategy applied at ``representation`` (see the module docstring).

    Args:
      tape: The persistent tape that recorded the forward pass.
      balancer: A gradient strategy.
      optimizer: The model's optimizer (loss scaling is undone when it has any).
      representation: The shared representation's tensors of this forward pass.
      task_names: The tasks' names, in order (for errors).
      task_objectives: Each task's (statically weighted, loss-scaled) loss.
      task_losses: ``[K]`` the statically weighted losses, for the strategy.
      combine_weights: ``[K]`` the weights the strategy's ``combine`` put on the losses (``loss_weights()``;
        None: 1 each).
      total_objective: The scaled total loss divided by the number of replicas.
      variables: Every variable to update.

    Raises:
      ValueError: a task's loss does not depend on the representation.
    """
    name = type(balancer).__name__
    if not representation:
        raise ValueError(f"{name}: the shared representation was not computed in this step")
    per_task = []  # per task, per tensor: dL_k/dz in float32, still loss-scaled
    for task, objective in zip(task_names, task_objectives):
        grads = tape.gradient(objective, list(representation))
        if all(g is None for g in grads):
            raise ValueError(
                f"{name} at the representation: task {task!r}'s loss does not depend on the shared representation "
                "(it has no path through it); use gradients_at='parameters'"
            )
        per_task.append([tf.zeros(z.shape if z.shape.is_fully_defined() else tf.shape(z), tf.float32)
                         if g is None else tf.cast(tf.convert_to_tensor(g), tf.float32)
                         for g, z in zip(grads, representation)])
    k = len(task_objectives)
    plain = tf.ones([k]) if combine_weights is None else tf.cast(combine_weights, tf.float32)  # d(total)/dz's
    if getattr(balancer, "elementwise", False):
        factors = _unit_factors(balancer, optimizer, representation, per_task, task_losses)
        corrections = [[factors[i][j] - plain[i] for i in range(k)] for j in range(len(representation))]
    else:
        coefficients = _coefficients(balancer, optimizer, per_task, task_losses)
        corrections = [[coefficients[i] - plain[i] for i in range(k)]] * len(representation)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    output_gradients = [
        tf.cast(tf.add_n([corrections[j][i] * per_task[i][j] for i in range(k)]) / replicas, z.dtype)
        for j, z in enumerate(representation)
    ]
    gradients = tape.gradient(
        [total_objective, *representation], list(variables),
        output_gradients=[tf.ones_like(total_objective), *output_gradients],
    )
    return unscaled(optimizer, list(gradients))


def _batch_sums(optimizer: Any, per_task: list[list[tf.Tensor]], task_losses: tf.Tensor,
                signs: Sequence[tf.Tensor] | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """``([K, D] batch sums of each task's unscaled gradients (times ``signs``), [K] losses)``, both averaged over
    replicas, and both zeros on a step whose gradients overflowed."""
    summed = tf.stack([
        tf.concat([tf.reshape(tf.reduce_sum(g if signs is None else g * signs[j], axis=0), [-1])
                   for j, g in enumerate(unscaled(optimizer, list(grads)))], 0)
        for grads in per_task
    ])  # [K, D], float32
    return finite_or_zero(mean_over_replicas(summed), mean_over_replicas(task_losses))


def _coefficients(balancer: LossBalancer, optimizer: Any, per_task: list[list[tf.Tensor]],
                  task_losses: tf.Tensor) -> tf.Tensor:
    """``[K]``: the coefficients of the strategy's combination of the batch-summed task gradients (steps 1-2)."""
    summed, losses = _batch_sums(optimizer, per_task, task_losses)
    k = len(per_task)
    norms = tf.norm(summed, axis=1)
    # eps below every task's own norm, so the extra columns change no task's Gram entries measurably.
    smallest = tf.reduce_min(tf.where(norms > 0, norms, tf.fill([k], float("inf"))))
    eps = tf.where(tf.math.is_finite(smallest), 1e-4 * smallest, 0.0)
    augmented = tf.concat([summed, eps * tf.eye(k, dtype=summed.dtype)], axis=1)  # [K, D + K]
    return tf.math.divide_no_nan(balancer.balance(augmented, losses)[-k:], eps)  # [K]


def _unit_factors(balancer: Any, optimizer: Any, representation: Sequence[tf.Tensor],
                  per_task: list[list[tf.Tensor]], task_losses: tf.Tensor) -> list[list[tf.Tensor]]:
    """Per task, per tensor: the elementwise strategy's factors ``[1, ...]`` (one per unit, broadcast over the batch),
    from the batch sums of ``r_k * sign(z)`` averaged over replicas."""
    signs = [tf.sign(tf.cast(z, tf.float32)) for z in representation]
    shapes = [g.shape[1:] for g in per_task[0]]
    signed, losses = _batch_sums(optimizer, per_task, task_losses, signs)
    factors = balancer.multipliers(signed, losses)  # [K, D]
    sizes = [shape.num_elements() for shape in shapes]
    return [[tf.reshape(part, [1, *shape]) for part, shape in zip(tf.split(row, sizes), shapes)]
            for row in tf.unstack(factors)]


__all__ = ["LEVELS", "recorded_outputs", "representation_gradients"]
