"""Gradients for the gradient-based balancing strategies at the shared parameters, replica-aware.

Each task's gradient on the shared variables is taken apart, averaged over
replicas (so every replica balances the same global gradients), combined by the
strategy, and handed back to the optimizer divided by the number of replicas
(the optimizer sums replicas). Every other variable gets the plain gradient of
the total loss.
"""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl._compat import tf
from tfmtl.balancing.base import LossBalancer


def balanced_gradients(
    tape: Any,
    balancer: LossBalancer,
    optimizer: Any,
    *,
    task_objectives: Sequence[tf.Tensor],
    task_losses: tf.Tensor,
    total_objective: tf.Tensor,
    extra_loss: tf.Tensor,
    variables: Sequence[tf.Variable],
    candidates: Sequence[tf.Variable],
) -> list[tf.Tensor]:
    """One gradient per variable, where the shared ones' come from ``balancer.balance``.

    Args:
      tape: The persistent tape that recorded the forward pass.
      balancer: A strategy with ``uses_gradients``.
      optimizer: The model's optimizer (loss scaling is undone when it has any).
      task_objectives: Each task's (statically weighted, loss-scaled) loss, recorded separately.
      task_losses: ``[K]`` the same losses before scaling, for the strategy.
      total_objective: The scaled total loss divided by the number of replicas.
      extra_loss: Losses outside the tasks (``add_loss``, order penalties).
      variables: Every variable to update.
      candidates: The variables that may count as shared; those reached by two or
        more tasks' gradients do.

    Returns:
      Gradients aligned with ``variables``.
    """
    per_task = [unscaled(optimizer, tape.gradient(loss, candidates)) for loss in task_objectives]
    shared = [i for i in range(len(candidates)) if sum(grads[i] is not None for grads in per_task) >= 2]
    if not shared:
        layers = getattr(balancer, "layers", None)
        where = f" in layers {list(layers)}" if layers else ""
        raise ValueError(f"{type(balancer).__name__}: no variables are shared by two tasks{where}")
    shared_vars = [candidates[i] for i in shared]
    flat = tf.stack([flatten([grads[i] for i in shared], shared_vars) for grads in per_task])  # [K, P]
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    flat, losses = finite_or_zero(mean_over_replicas(flat), mean_over_replicas(task_losses))
    combined = balancer.balance(flat, losses) / replicas
    shared_ids = {id(v) for v in shared_vars}
    others = [v for v in variables if id(v) not in shared_ids]
    gradients = dict(zip(map(id, others), unscaled(optimizer, tape.gradient(total_objective, others))))
    offset = 0
    for variable, extra_grad in zip(shared_vars, tape.gradient(extra_loss, shared_vars)):
        size = variable.shape.num_elements()
        grad = tf.reshape(combined[offset:offset + size], variable.shape)
        if extra_grad is not None:
            grad += tf.convert_to_tensor(extra_grad) / replicas
        gradients[id(variable)] = grad
        offset += size
    return [gradients[id(v)] for v in variables]


def finite_or_zero(gradients: tf.Tensor, losses: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Both as they are, or both zeros when any gradient or loss is Inf or NaN.

    A loss-scale overflow step (mixed precision) has non-finite gradients; the loss-scale
    optimizer skips its update, and a strategy shown zeros instead keeps finite state
    (GradNorm's moments, MetaBalance's and GradVac's moving averages) where NaNs would
    stay for the rest of training.
    """
    finite = tf.logical_and(tf.reduce_all(tf.math.is_finite(gradients)), tf.reduce_all(tf.math.is_finite(losses)))
    return tf.where(finite, gradients, tf.zeros_like(gradients)), tf.where(finite, losses, tf.zeros_like(losses))


def mean_over_replicas(value: tf.Tensor) -> tf.Tensor:
    """The mean of ``value`` over the replicas in sync (itself outside a multi-replica context)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.MEAN, value)


def flatten(gradients: Sequence[Any], variables: Sequence[tf.Variable]) -> tf.Tensor:
    """Concatenate gradients (None = zeros, IndexedSlices densified) into one ``[P]`` vector."""
    parts = [
        tf.zeros([v.shape.num_elements()]) if g is None else tf.reshape(tf.convert_to_tensor(g), [-1])
        for g, v in zip(gradients, variables)
    ]
    return tf.concat(parts, 0)


def scaled(optimizer: Any, loss: tf.Tensor) -> tf.Tensor:
    """``loss`` times a LossScaleOptimizer's scale (mixed precision); unchanged otherwise."""
    return optimizer.get_scaled_loss(loss) if hasattr(optimizer, "get_scaled_loss") else loss


def unscaled(optimizer: Any, gradients: list[Any]) -> list[Any]:
    """Undo :func:`scaled` on gradients."""
    if not hasattr(optimizer, "get_unscaled_gradients"):
        return gradients
    return optimizer.get_unscaled_gradients(gradients)
