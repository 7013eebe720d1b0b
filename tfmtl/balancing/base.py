"""What every balancing strategy shares.

The :class:`LossBalancer` protocol, the gradient strategies' base
(:class:`GradientBalancer`), replica-safe state variables and a counter-based random draw.
"""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl._compat import tf
from tfmtl.tasks.task import Task


def state_variable(value: Any, name: str, dtype: tf.DType = tf.float32) -> tf.Variable:
    # Strategy state written identically on every replica: keep the first replica's value.
    return tf.Variable(
        value, dtype=dtype, trainable=False, name=name,
        synchronization=tf.VariableSynchronization.ON_WRITE, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
    )


def counter_uniform(seed: int, step: tf.Tensor, n: int) -> tf.Tensor:
    """``[n]`` float32 uniforms in (0, 1) from ``(seed, step)``: an integer hash, the same bits everywhere.

    TensorFlow's stateless random ops draw other numbers once compiled with XLA; this
    hash (32-bit integer arithmetic in int64) gives the same draws with and without
    XLA, on any device and replica.

    Example:

    >>> import tfmtl, tensorflow as tf
    >>> a = tfmtl.balancing.counter_uniform(0, tf.constant(5, tf.int64), 3)
    >>> b = tf.function(lambda: tfmtl.balancing.counter_uniform(0, tf.constant(5, tf.int64), 3), jit_compile=True)()
    >>> bool(tf.reduce_all(a == b)), bool(tf.reduce_all((a > 0) & (a < 1)))
    (True, True)
    """
    mask = tf.constant(0xFFFFFFFF, tf.int64)
    seed = int(seed) & 0xFFFFFFFF
    x = tf.bitwise.bitwise_and(tf.cast(step, tf.int64) * n + tf.range(n, dtype=tf.int64), mask)
    x = tf.bitwise.bitwise_xor(x, tf.constant(seed, tf.int64))
    for _ in range(3):  # the 'hash32' finalizer: xorshift-multiply rounds, each kept to 32 bits
        x = tf.bitwise.bitwise_and(tf.bitwise.bitwise_xor(tf.bitwise.right_shift(x, 16), x) * 0x45D9F3B, mask)
    x = tf.bitwise.bitwise_xor(tf.bitwise.right_shift(x, 16), x)
    return (tf.cast(x, tf.float32) + 0.5) / 4294967296.0


def adam_direction(
    gradient: tf.Tensor, first_moment: tf.Variable, second_moment: tf.Variable, updates: tf.Variable,
    beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
) -> tf.Tensor:
    """One Adam update of the moment variables by ``gradient``; returns the bias-corrected step direction.

    A strategy's own small parameters (GradNorm's weights, FAMO's logits) move by
    ``-learning_rate`` times it. ``updates`` counts the steps taken.

    Example:

    >>> import tensorflow as tf
    >>> m, v, t = tf.Variable([0.0]), tf.Variable([0.0]), tf.Variable(0.0)
    >>> round(float(adam_direction(tf.constant([-3.0]), m, v, t)[0]), 4)  # the first step: about the gradient's sign
    -1.0
    """
    step = updates + 1.0
    first = beta_1 * first_moment + (1 - beta_1) * gradient
    second = beta_2 * second_moment + (1 - beta_2) * gradient * gradient
    first_moment.assign(first)
    second_moment.assign(second)
    updates.assign(step)
    return (first / (1 - beta_1**step)) / (tf.sqrt(second / (1 - beta_2**step)) + epsilon)


def with_gradient(value: tf.Tensor, losses: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """``value``, with ``weights`` (held constant) as its gradient with respect to the ``[K]`` ``losses``.

    A strategy whose total is not linear in the losses (GLS, STCH, FAMO) stores in
    :meth:`LossBalancer.observe` the total's gradient at the step's losses averaged
    over replicas, and returns the total through this. Every replica then
    back-propagates ``sum_k w_k L_k`` with the same ``w``, and the replicas' summed
    gradients are the total's gradient at the global losses, as with one replica;
    differentiating the total of each replica's own losses would not give that.

    Example:

    >>> import tfmtl, tensorflow as tf
    >>> losses = tf.constant([4.0, 1.0])
    >>> with tf.GradientTape() as tape:
    ...     tape.watch(losses)
    ...     total = tfmtl.balancing.with_gradient(tf.sqrt(tf.reduce_prod(losses)), losses, tf.constant([0.25, 1.0]))
    >>> float(total), tape.gradient(total, losses).numpy()
    (2.0, array([0.25, 1.  ], dtype=float32))
    """
    linear = tf.reduce_sum(tf.stop_gradient(weights) * losses)
    return tf.stop_gradient(value - linear) + linear


class LossBalancer(tf.Module):
    """Base class of the balancing strategies; subclasses override :meth:`combine` or :meth:`balance`.

    A strategy is built once per compiled model (:meth:`build`, inside the
    model's distribution strategy scope) and keeps its state in variables, which
    ``model.save`` stores (a ``tf.train.Checkpoint`` must name ``model.balancer``).

    Example: a strategy that weights each task by the inverse of its current loss.

    >>> import numpy as np, tfmtl
    >>> class InverseLoss(tfmtl.balancing.LossBalancer):
    ...     def observe(self, losses):
    ...         self.weights.assign(1.0 / (losses + 1e-3))
    >>> balancer = InverseLoss()
    >>> balancer.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> balancer.observe(np.array([0.5, 0.1], np.float32))
    >>> np.round(balancer.task_weights().numpy(), 1)
    array([2. , 9.9], dtype=float32)
    """

    #: Whether the strategy needs per-task gradients of the shared parameters.
    uses_gradients = False
    #: Whether the strategy needs the batch's losses again after the update (:meth:`after_update`).
    needs_updated_losses = False

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name or type(self).__name__)
        self.tasks: tuple[Task, ...] = ()

    def build(self, tasks: Sequence[Task]) -> None:
        """Create the strategy's state for ``tasks`` (called by the model's ``compile``)."""
        tasks = tuple(tasks)
        if self.tasks:
            if [t.name for t in self.tasks] == [t.name for t in tasks]:
                return  # compiled again for the same tasks: keep the state
            raise ValueError(f"{type(self).__name__} is already in use by a model with other tasks; make a new one")
        self.tasks = tasks
        with self.name_scope:
            self.weights = state_variable(tf.ones([len(self.tasks)]), "weights")
            self._build()

    def _build(self) -> None:
        pass

    def task_weights(self) -> tf.Tensor:
        """The current weight of each task, ``[K]`` (on top of the static loss weights)."""
        return tf.convert_to_tensor(self.weights)

    def combine(self, losses: tf.Tensor) -> tf.Tensor:
        """The total loss from the per-task (statically weighted) losses ``[K]``; no side effects."""
        return tf.reduce_sum(self.task_weights() * losses)

    def observe(self, losses: tf.Tensor) -> None:
        """Called once per training step, before :meth:`combine`, with the step's (statically weighted)
        losses ``[K]`` averaged over replicas (e.g. to draw new weights or accumulate epoch means)."""

    def after_update(self, losses: tf.Tensor, updated_losses: tf.Tensor) -> None:
        """Strategies with ``needs_updated_losses``: the step's losses ``[K]`` and the same batch's losses
        after the model's update (both statically weighted, averaged over replicas)."""

    def balance(self, gradients: tf.Tensor, losses: tf.Tensor) -> tf.Tensor:
        """Gradient strategies: per-task shared gradients ``[K, P]`` (and losses ``[K]``) to one ``[P]``."""
        raise NotImplementedError

    def on_epoch_end(self) -> None:
        """Called after every training epoch (eagerly, outside the replica context)."""

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "LossBalancer":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({args})"


class GradientBalancer(LossBalancer):
    """Base of the strategies that combine per-task gradients of the shared parameters (:meth:`balance`).

    The shared parameters get :meth:`balance`'s combination; every other parameter (a
    task's tower and head) gets the gradient of :meth:`combine`, by default the plain sum
    of the (statically weighted) losses, so that a task's own parameters see its own
    gradient unscaled. A strategy whose weights also scale the losses (GradNorm)
    overrides :meth:`loss_weights`. The logged ``<task>/weight`` (:meth:`task_weights`)
    is the task's coefficient in the shared update for the strategies that weight the
    gradients (MGDA, CAGrad, Nash-MTL, PE-LTR, IMTL-G, Aligned-MTL, GradVac,
    MetaBalance); PCGrad, which projects them, logs 1; GradNorm logs its weights after
    the step's update.

    Args:
      layers: Names of the layers whose variables are "the shared parameters"
        (default: every non-embedding variable that two tasks share).

    Example: a strategy that gives every task's gradient the same norm.

    >>> import numpy as np, tfmtl
    >>> class UnitGradients(tfmtl.balancing.GradientBalancer):
    ...     def balance(self, gradients, losses):
    ...         weights = 1.0 / tfmtl._compat.tf.norm(gradients, axis=1)
    ...         self.weights.assign(weights)  # logged as <task>/weight
    ...         return tfmtl._compat.tf.linalg.matvec(gradients, weights, transpose_a=True)
    >>> unit = UnitGradients()
    >>> unit.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> unit.balance(np.array([[3.0, 4.0], [0.0, 2.0]], np.float32), np.ones(2, np.float32)).numpy()
    array([0.6, 1.8], dtype=float32)
    """

    uses_gradients = True
    #: Where the strategy can take the per-task gradients (``compile(gradients_at=...)``).
    levels: tuple[str, ...] = ("parameters", "representation")
    #: Whether the strategy acts per unit of the representation (:meth:`multipliers`) rather than
    #: by a combination of the task gradients (GradDrop).
    elementwise = False

    def __init__(self, layers: Sequence[str] | None = None, name: str | None = None) -> None:
        super().__init__(name=name)
        self.layers = None if layers is None else tuple(layers)

    def build_shared(self, size: int) -> None:
        """Called by ``compile`` (after :meth:`build`) with the number of candidate shared parameters,
        an upper bound of the ``P`` that :meth:`balance` sees; for strategies with ``[K, P]`` state (DB-MTL)."""

    def multipliers(self, signed: tf.Tensor, losses: tf.Tensor) -> tf.Tensor:
        """Elementwise strategies: ``[K, D]`` factors of each task's representation gradient per unit, from the
        batch sums of ``r_k * sign(z)`` ``[K, D]`` (see :mod:`tfmtl.objective.representation`)."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"layers": None if self.layers is None else list(self.layers)}

    def loss_weights(self) -> tf.Tensor | None:
        """The weights :meth:`combine` puts on the losses ``[K]``; None (the default) for the plain sum."""
        return None

    def combine(self, losses: tf.Tensor) -> tf.Tensor:
        weights = self.loss_weights()
        return tf.reduce_sum(losses if weights is None else weights * losses)
