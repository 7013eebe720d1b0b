"""Loss balancing: how a multi-task model turns its per-task losses into one update.

Pass a strategy to :meth:`tfmtl.models.MultiTaskModel.compile`
(``model.compile(balancer=tfmtl.balancing.UncertaintyWeighting())``). Every
strategy starts from the per-task losses already multiplied by the tasks'
static ``loss_weight``; the weights a strategy adds on top are logged every step
as ``<task>/weight`` (the History keeps the last value of each epoch, which is
what a notebook plots).

Loss-only strategies (cheap: one backward pass):

* :class:`FixedWeights`: the static weights only (the default);
* :class:`UncertaintyWeighting`: learned task uncertainties (Kendall et al., 2018);
* :class:`DynamicWeightAverage`: weights from the rate at which each loss falls
  (Liu et al., 2019);
* :class:`RandomLossWeighting`: random weights every step (Lin et al., 2021).

Gradient strategies look at each task's gradient on the *shared* parameters (one
backward pass per task) and work inside ``tf.distribute`` replica contexts: the
per-task gradients are all-reduced across replicas before they are combined, so
every replica applies the same update.

* :class:`GradNorm`: weights that equalise the tasks' gradient norms (Chen et al., 2018);
* :class:`PCGrad`: conflicting gradient components projected away (Yu et al., 2020).

The shared parameters are the trainable variables (outside the feature
embeddings, by default) that receive a gradient from at least two tasks; pass
``layers=`` to choose them by layer name instead (embeddings included, if named).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.tasks.kinds import TaskKind
from tfmtl.tasks.task import Task


def _state(value: Any, name: str, dtype: tf.DType = tf.float32) -> tf.Variable:
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
            self.weights = _state(tf.ones([len(self.tasks)]), "weights")
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
        """Called once per training step, before :meth:`combine`, with the step's losses ``[K]``
        averaged over replicas (e.g. to draw new weights or accumulate epoch means)."""

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


@keras.utils.register_keras_serializable(package="tfmtl")
class FixedWeights(LossBalancer):
    """The tasks' static ``loss_weight`` and nothing else: ``L = sum_k w_k L_k``.

    Example:

    >>> import numpy as np, tfmtl
    >>> balancer = tfmtl.balancing.FixedWeights()
    >>> balancer.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> float(balancer.combine(np.array([0.5, 2.0], np.float32)))
    2.5
    """


@keras.utils.register_keras_serializable(package="tfmtl")
class UncertaintyWeighting(LossBalancer):
    """Learned homoscedastic uncertainty per task (Kendall, Gal and Cipolla, CVPR 2018).

    With a learned ``s_k = log sigma_k^2`` per task (initially 0):

    * regression tasks: ``0.5 * exp(-s_k) * L_k + 0.5 * s_k`` (their eq. 7);
    * binary and multi-class tasks: ``exp(-s_k) * L_k + 0.5 * s_k`` (their eq. 10).

    The logged weight of a task is its factor ``0.5 * exp(-s_k)`` or ``exp(-s_k)``.
    The ``s_k`` are trained by the model's optimizer.

    Example:

    >>> import numpy as np, tfmtl
    >>> balancer = tfmtl.balancing.UncertaintyWeighting()
    >>> balancer.build([tfmtl.Task.binary("click"), tfmtl.Task.regression("dwell")])
    >>> float(balancer.combine(np.array([0.5, 2.0], np.float32)))  # 1 * 0.5 + 0.5 * 2.0, s = 0
    1.5
    """

    def _build(self) -> None:
        self.log_variances = tf.Variable(tf.zeros([len(self.tasks)]), trainable=True, name="log_variances")
        self._factors = tf.constant(
            [0.5 if task.kind is TaskKind.REGRESSION else 1.0 for task in self.tasks], tf.float32
        )

    def task_weights(self) -> tf.Tensor:
        return self._factors * tf.exp(-self.log_variances)

    def combine(self, losses: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(self.task_weights() * losses + 0.5 * self.log_variances)


@keras.utils.register_keras_serializable(package="tfmtl")
class DynamicWeightAverage(LossBalancer):
    """Dynamic Weight Average (Liu, Johns and Davison, CVPR 2019).

    ``w_k(t) = K * exp(r_k / T) / sum_i exp(r_i / T)`` with
    ``r_k = L_k(t-1) / L_k(t-2)``, the ratio of task ``k``'s mean training loss
    in the last two epochs; a task whose loss falls slowly gets more weight. The
    first two epochs use weight 1. Only the losses are needed: as cheap as fixed
    weights.

    Args:
      temperature: ``T``; larger means weights closer to 1.

    Example:

    >>> import numpy as np, tfmtl
    >>> dwa = tfmtl.balancing.DynamicWeightAverage(temperature=2.0)
    >>> dwa.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> for epoch_losses in ([1.0, 1.0], [0.5, 0.9]):  # click's loss halves, buy's barely moves
    ...     dwa.observe(np.array(epoch_losses, np.float32))
    ...     dwa.on_epoch_end()
    >>> np.round(dwa.task_weights().numpy(), 4)  # 2 * softmax([0.5, 0.9] / 2)
    array([0.9003, 1.0997], dtype=float32)
    """

    def __init__(self, temperature: float = 2.0, name: str | None = None) -> None:
        super().__init__(name=name)
        if not temperature > 0:
            raise ValueError(f"DynamicWeightAverage: temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def _build(self) -> None:
        k = len(self.tasks)
        self.loss_sums = _state(tf.zeros([k]), "loss_sums")
        self.steps = _state(0.0, "steps")
        self.history = _state(tf.zeros([2, k]), "history")  # mean losses of the last two epochs
        self.epochs = _state(0, "epochs", tf.int64)

    def observe(self, losses: tf.Tensor) -> None:
        """Add one step's per-task losses to the running epoch means."""
        self.loss_sums.assign_add(tf.cast(losses, tf.float32))
        self.steps.assign_add(1.0)

    def on_epoch_end(self) -> None:
        if float(self.steps.numpy()) == 0.0:
            return
        means = self.loss_sums / self.steps
        self.history.assign(tf.stack([self.history[1], means]))
        self.epochs.assign_add(1)
        if int(self.epochs.numpy()) >= 2:
            ratio = tf.math.divide_no_nan(self.history[1], self.history[0])
            self.weights.assign(len(self.tasks) * tf.nn.softmax(ratio / self.temperature))
        self.loss_sums.assign(tf.zeros_like(self.loss_sums))
        self.steps.assign(0.0)

    def get_config(self) -> dict[str, Any]:
        return {"temperature": self.temperature}


@keras.utils.register_keras_serializable(package="tfmtl")
class RandomLossWeighting(LossBalancer):
    """Random Loss Weighting (Lin et al., 2021): ``w = K * softmax(z)``, ``z ~ N(0, 1)`` drawn every step.

    The draw is seeded by ``seed`` and the step number, so replicas agree and a
    run can be repeated. Lin et al. show it matches many tuned strategies on
    average; it is a strong, free baseline.

    Example:

    >>> import numpy as np, tfmtl
    >>> rlw = tfmtl.balancing.RandomLossWeighting(seed=3)
    >>> rlw.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> rlw.observe(np.array([0.3, 0.8], np.float32))  # a training step draws new weights
    >>> weights = rlw.task_weights().numpy()
    >>> bool(weights[0] != weights[1]), round(float(weights.sum()), 5)  # they sum to K
    (True, 2.0)
    """

    def __init__(self, seed: int = 0, name: str | None = None) -> None:
        super().__init__(name=name)
        self.seed = int(seed)

    def _build(self) -> None:
        self.step = _state(0, "step", tf.int64)

    def observe(self, losses: tf.Tensor) -> None:
        k = len(self.tasks)
        u = counter_uniform(self.seed, self.step, 2 * k)  # Box-Muller: two uniforms per normal
        z = tf.sqrt(-2.0 * tf.math.log(u[:k])) * tf.cos(2.0 * np.pi * u[k:])  # [K] ~ N(0, 1)
        self.weights.assign(len(self.tasks) * tf.nn.softmax(z))
        self.step.assign_add(1)

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}


class _GradientBalancer(LossBalancer):
    uses_gradients = True

    def __init__(self, layers: Sequence[str] | None = None, name: str | None = None) -> None:
        super().__init__(name=name)
        self.layers = None if layers is None else tuple(layers)

    def get_config(self) -> dict[str, Any]:
        return {"layers": None if self.layers is None else list(self.layers)}


@keras.utils.register_keras_serializable(package="tfmtl")
class GradNorm(_GradientBalancer):
    """GradNorm (Chen, Badrinarayanan, Lee and Rabinovich, ICML 2018).

    Each step, with ``g_k`` the gradient of task ``k``'s loss on the shared
    parameters, ``G_k = w_k ||g_k||``, ``G = mean_k G_k``, the relative inverse
    training rate ``r_k = (L_k / L_k(0)) / mean_i (L_i / L_i(0))`` and the target
    ``G * r_k ** alpha`` held constant, the weights take one Adam step on
    ``sum_k |G_k - G r_k^alpha|`` (whose gradient is ``sign(G_k - target_k) ||g_k||``),
    are kept above ``1e-3 K`` and renormalised to sum to ``K``. The model itself
    is updated with the weights of the step's start. ``L_k(0)`` is the first
    step's loss.

    Adam (not plain gradient descent) makes the weights' step size independent
    of the gradient norms' scale, which varies by orders of magnitude between
    models; with plain descent a task with large gradients drives its weight to
    the floor within a few steps.

    Args:
      alpha: Asymmetry: 0 pulls all gradient norms together; larger values
        push harder toward tasks that train slower (paper: 0.12 to 3).
      learning_rate: Adam step size of the weight update.
      layers: Names of the layers whose variables are "the shared parameters"
        (default: every non-embedding variable that two tasks share).

    Example:

    >>> import numpy as np, tfmtl
    >>> gradnorm = tfmtl.balancing.GradNorm(alpha=1.5, learning_rate=0.1)
    >>> gradnorm.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> gradients = np.array([[3.0, 4.0], [0.6, 0.8]], np.float32)  # norms 5 and 1
    >>> combined = gradnorm.balance(gradients, np.array([0.7, 0.2], np.float32))
    >>> combined.numpy()  # sum of w_k g_k with the starting weights (1, 1)
    array([3.6, 4.8], dtype=float32)
    >>> np.round(gradnorm.task_weights().numpy(), 3)  # click's large gradient is turned down by ~lr
    array([0.9, 1.1], dtype=float32)
    """

    BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-8

    def __init__(
        self, alpha: float = 1.5, learning_rate: float = 0.025, layers: Sequence[str] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(layers=layers, name=name)
        if alpha < 0 or not learning_rate > 0:
            raise ValueError(f"GradNorm: need alpha >= 0 and learning_rate > 0, got {alpha}, {learning_rate}")
        self.alpha = float(alpha)
        self.learning_rate = float(learning_rate)

    def _build(self) -> None:
        k = len(self.tasks)
        self.initial_losses = _state(tf.zeros([k]), "initial_losses")
        self.started = _state(False, "started", tf.bool)
        self.first_moment = _state(tf.zeros([k]), "first_moment")
        self.second_moment = _state(tf.zeros([k]), "second_moment")
        self.updates = _state(0.0, "updates")

    def balance(self, gradients: tf.Tensor, losses: tf.Tensor) -> tf.Tensor:
        gradients = tf.convert_to_tensor(gradients, tf.float32)
        losses = tf.convert_to_tensor(losses, tf.float32)
        weights = tf.convert_to_tensor(self.weights)
        initial = tf.where(self.started, self.initial_losses, losses)
        self.initial_losses.assign(initial)
        self.started.assign(True)
        norms = tf.norm(gradients, axis=1)  # ||g_k||
        weighted_norms = weights * norms  # G_k
        inverse_rate = tf.math.divide_no_nan(losses, initial)
        relative = tf.math.divide_no_nan(inverse_rate, tf.reduce_mean(inverse_rate))
        target = tf.stop_gradient(tf.reduce_mean(weighted_norms) * relative**self.alpha)
        grad = tf.sign(weighted_norms - target) * norms  # d/dw_k of sum_k |G_k - target_k|
        step = self.updates + 1.0
        first = self.BETA_1 * self.first_moment + (1 - self.BETA_1) * grad
        second = self.BETA_2 * self.second_moment + (1 - self.BETA_2) * grad * grad
        self.first_moment.assign(first)
        self.second_moment.assign(second)
        self.updates.assign(step)
        adam = (first / (1 - self.BETA_1**step)) / (tf.sqrt(second / (1 - self.BETA_2**step)) + self.EPSILON)
        total = tf.reduce_sum(weights)
        updated = tf.maximum(weights - self.learning_rate * adam, 1e-3 * total)
        self.weights.assign(updated * total / tf.reduce_sum(updated))
        return tf.linalg.matvec(gradients, weights, transpose_a=True)  # [P]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha, "learning_rate": self.learning_rate}


@keras.utils.register_keras_serializable(package="tfmtl")
class PCGrad(_GradientBalancer):
    """Projecting Conflicting Gradients (Yu et al., NeurIPS 2020).

    For each task ``i`` (with gradient ``g_i`` of its statically weighted loss on the
    shared parameters) and every other task ``j`` in a random order: if
    ``g_i . g_j < 0``, ``g_i <- g_i - (g_i . g_j) / ||g_j||^2 g_j``; the shared
    update is the sum of the projected gradients. Task-specific parameters get
    their task's plain gradient. Weights stay at 1 (logged for uniformity).

    Args:
      layers: Names of the layers whose variables are "the shared parameters"
        (default: every non-embedding variable that two tasks share).
      seed: Seed of the random task order.

    Example:

    >>> import numpy as np, tfmtl
    >>> pcgrad = tfmtl.balancing.PCGrad()
    >>> pcgrad.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> conflicting = np.array([[1.0, 0.0], [-1.0, 1.0]], np.float32)
    >>> pcgrad.balance(conflicting, np.zeros(2, np.float32)).numpy()  # [0.5, 0.5] + [0, 1]
    array([0.5, 1.5], dtype=float32)
    """

    def __init__(self, layers: Sequence[str] | None = None, seed: int = 0, name: str | None = None) -> None:
        super().__init__(layers=layers, name=name)
        self.seed = int(seed)

    def _build(self) -> None:
        self.step = _state(0, "step", tf.int64)

    def balance(self, gradients: tf.Tensor, losses: tf.Tensor) -> tf.Tensor:
        gradients = tf.convert_to_tensor(gradients, tf.float32)
        k = len(self.tasks)
        order = tf.argsort(counter_uniform(self.seed, self.step, k))
        self.step.assign_add(1)
        return project_conflicting(gradients, order)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "seed": self.seed}


def project_conflicting(gradients: tf.Tensor, order: Any = None) -> tf.Tensor:
    """PCGrad's update: each task's gradient projected off the others it conflicts with, summed.

    Args:
      gradients: ``[K, P]`` per-task gradients.
      order: The order ``[K]`` in which the other tasks are visited (default 0..K-1).

    Example:

    >>> import numpy as np
    >>> from tfmtl.balancing import project_conflicting
    >>> project_conflicting(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)).numpy()  # no conflict: plain sum
    array([1., 1.], dtype=float32)
    """
    gradients = tf.convert_to_tensor(gradients, tf.float32)
    k = gradients.shape[0]
    order = tf.range(k) if order is None else tf.convert_to_tensor(order, tf.int32)
    squared_norms = tf.reduce_sum(gradients * gradients, axis=1)  # [K]
    projected = []
    for i in range(k):
        g = gradients[i]
        for position in range(k):
            j = order[position]
            other = tf.gather(gradients, j)
            dot = tf.reduce_sum(g * other)
            conflict = tf.logical_and(tf.not_equal(j, i), dot < 0)
            coefficient = tf.where(conflict, tf.math.divide_no_nan(dot, tf.gather(squared_norms, j)), 0.0)
            g = g - coefficient * other
        projected.append(g)
    return tf.add_n(projected)


def check_balancer(balancer: Any) -> LossBalancer:
    """A balancer object (default :class:`FixedWeights`); strings are refused with the allowed classes.

    Example:

    >>> import tfmtl
    >>> tfmtl.balancing.check_balancer(None)
    FixedWeights()
    """
    if balancer is None:
        return FixedWeights()
    if not isinstance(balancer, LossBalancer):
        allowed = ", ".join(cls.__name__ for cls in STRATEGIES)
        raise TypeError(f"balancer must be a tfmtl.balancing strategy object ({allowed}), got {balancer!r}")
    return balancer


#: Every strategy, in the order the docs and benchmarks list them.
STRATEGIES = (FixedWeights, UncertaintyWeighting, DynamicWeightAverage, RandomLossWeighting, GradNorm, PCGrad)

__all__ = [
    "DynamicWeightAverage",
    "FixedWeights",
    "GradNorm",
    "LossBalancer",
    "PCGrad",
    "RandomLossWeighting",
    "STRATEGIES",
    "UncertaintyWeighting",
    "check_balancer",
    "project_conflicting",
]
