"""Representation-level gradient balancing: per-task gradients of the shared representation, not of the parameters.

With ``compile(gradients_at="representation")``, a gradient strategy sees each task's
gradient with respect to the shared representation ``z`` (the shared bottom's output,
the experts' outputs, the last extraction level's shared experts, or the encoded
features) instead of the shared parameters. Each task then needs one backward pass
through its own tower only, down to ``z``, and one backward pass of the whole network
follows, as in MGDA-UB (Sener and Koltun, 2018) and MultiBalance (arXiv 2411.11871).

How the update is formed, for per-task representation gradients ``r_k = dL_k/dz``
(``[B, ...]``, of the statically weighted losses):

1. ``R_k = sum over the batch of r_k``, flattened to ``[K, D]`` and averaged over
   replicas (LibMTL's ``rep_grad`` forms its Gram matrix the same way), so every
   replica balances the same global matrix.
2. The strategy's :meth:`~tfmtl.balancing.GradientBalancer.balance` runs on ``R``; its
   result is a combination ``sum_k c_k R_k`` of the task gradients (true of every
   strategy tfmtl ships), whose coefficients ``c`` are read back exactly by giving the
   strategy ``[R | eps I]``: the extra columns come back as ``eps c`` (they change the
   Gram matrix by ``eps^2``, below float32 resolution).
3. The gradient that reaches ``z`` becomes ``sum_k c_k r_k`` per row in place of the
   plain ``sum_k w_k r_k``, and flows on to every parameter below ``z`` in one backward
   pass: ``grad = d(total)/dθ + (dz/dθ)^T (sum_k (c_k - w_k) r_k)``. Parameters above
   ``z`` (towers, gates) get their plain gradient.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

from tfmtl._compat import keras, tf
from tfmtl.balancing.base import LossBalancer
from tfmtl.objective.gradients import mean_over_replicas, unscaled

#: The values ``compile(gradients_at=...)`` takes.
LEVELS = ("parameters", "representation")


@contextlib.contextmanager
def recorded_outputs(layers: Sequence[keras.layers.Layer]) -> Iterator[list[Any]]:
    """Record the outputs of ``layers``' calls inside the block (the tensors a tape can differentiate by).

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
    for layer in layers:
        original = layer.call

        def call(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            output = _original(*args, **kwargs)
            outputs.append(output)
            return output

        object.__setattr__(layer, "call", call)  # an instance attribute shadows the method
    try:
        yield outputs
    finally:
        for layer in layers:
            object.__delattr__(layer, "call")


def representation_gradients(
    tape: Any,
    balancer: LossBalancer,
    optimizer: Any,
    *,
    representation: Sequence[tf.Tensor],
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
      task_objectives: Each task's (statically weighted, loss-scaled) loss.
      task_losses: ``[K]`` the statically weighted losses, for the strategy.
      combine_weights: ``[K]`` the weights the strategy's ``combine`` put on the losses (``loss_weights()``;
        None: 1 each).
      total_objective: The scaled total loss divided by the number of replicas.
      variables: Every variable to update.
    """
    if not representation:
        raise ValueError(f"{type(balancer).__name__}: the shared representation was not computed in this step")
    per_task = [tape.gradient(objective, list(representation)) for objective in task_objectives]  # scaled units
    per_task = [[tf.zeros_like(z) if g is None else tf.convert_to_tensor(g) for g, z in zip(grads, representation)]
                for grads in per_task]
    summed = tf.stack([
        tf.concat([tf.reshape(tf.reduce_sum(g, axis=0), [-1]) for g in unscaled(optimizer, list(grads))], 0)
        for grads in per_task
    ])  # [K, D]: batch sums, unscaled
    summed = mean_over_replicas(summed)
    k = len(task_objectives)
    norm = tf.reduce_max(tf.norm(summed, axis=1))
    eps = 1e-4 * norm
    augmented = tf.concat([summed, eps * tf.eye(k, dtype=summed.dtype)], axis=1)  # [K, D + K]
    combined = balancer.balance(augmented, mean_over_replicas(task_losses))
    coefficients = tf.math.divide_no_nan(combined[-k:], eps)  # [K]
    plain = tf.ones([k]) if combine_weights is None else tf.cast(combine_weights, tf.float32)  # d(total)/dz's
    correction = coefficients - plain  # [K]
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    output_gradients = [
        tf.add_n([correction[i] * per_task[i][j] for i in range(k)]) / replicas for j in range(len(representation))
    ]
    gradients = tape.gradient(
        [total_objective, *representation], list(variables),
        output_gradients=[tf.ones_like(total_objective), *output_gradients],
    )
    return unscaled(optimizer, list(gradients))


__all__ = ["LEVELS", "recorded_outputs", "representation_gradients"]
