"""CAGrad: conflict-averse gradient descent (Liu et al., 2021)."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl._compat import keras, tf
from tfmtl.balancing.base import GradientBalancer
from tfmtl.balancing.simplex import project_to_simplex


@keras.utils.register_keras_serializable(package="tfmtl")
class CAGrad(GradientBalancer):
    """Conflict-Averse Gradient descent (Liu, Liu, Jin, Stone and Liu, NeurIPS 2021).

    With ``g_i`` the gradient of task ``i``'s (statically weighted) loss on the shared
    parameters, ``Gram = G G^T``, ``g0 = mean_i g_i`` (``||g0|| = sqrt(mean(Gram) + 1e-8)``)
    and ``c' = c ||g0|| + 1e-8``, CAGrad maximises the worst task's improvement within
    a ball of radius ``c ||g0||`` around ``g0``. Its dual gives the weights::

        w* = argmin_{w in simplex} w^T Gram (1/K) + c' sqrt(w^T Gram w + 1e-8)
        g_w = sum_i w_i g_i,   lambda = c' / (||g_w|| + 1e-8),   d = (g0 + lambda g_w) / r

    with ``r = 1`` (``rescale=0``), ``1 + c^2`` (``rescale=1``, the default) or ``1 + c``
    (``rescale=2``). The logged weight of task ``i`` is its coefficient in ``d``,
    ``(1/K + lambda w_i) / r``; task-specific parameters get their task's plain gradient.
    ``c = 0`` is plain gradient averaging (``d = g0``).

    The inner problem is solved **in-graph by an iterative solver**, from the Gram matrix
    only, in float64 (the ``K x K`` problem; the Gram itself is float32): accelerated
    projected gradient descent on the simplex (FISTA with the exact sort-based projection,
    restarted whenever a step does not lower the objective) from ``w = 1/K``, with a
    backtracking step size (of 24 candidates, halving from twice the last accepted one, the
    largest passing the sufficient-decrease test), for at most ``max_iterations`` steps or
    until a plain step moves no weight by 1e-8. The reference implementations (the
    official Cranial-XIX/CAGrad and LibMTL ``CAGrad.py``) call SciPy's SLSQP (tolerance
    1e-6, at most 100 iterations) from the same start. Measured once while developing (a
    one-off script, not kept; the tests check ten such problems at 1e-3) against a float64
    brute-force search on the same (float32) Gram, on 150 random problems of 2 to 4 tasks
    (conflicting, near-parallel and rank-deficient ones included), with the default 100
    steps: within 3e-8 relative in objective on 145 of the 146 with an optimum away from
    0, and 1.8e-4 on a nearly degenerate one (a gradient almost the mean of two others: a
    nearly flat direction); on the 4 near-Pareto-stationary ones (optimum near
    ``g_w = 0``), where the float32 Gram's rounding dominates, the excess was at most
    1.3e-4 of ``||g0||^2``.
    The defaults are LibMTL's (``calpha=0.5``, ``rescale=1``); the official
    NYUv2 and Cityscapes scripts use ``c=0.4``. TorchJD's ``CAGrad`` has no rescaling
    (``rescale=0``).

    Args:
      c: Radius of the ball around the average gradient, relative to its norm (>= 0).
      rescale: 0, 1 or 2: divide ``d`` by 1, ``1 + c^2`` or ``1 + c``.
      max_iterations: Most steps of the inner solver.
      layers: Names of the layers whose variables are "the shared parameters"
        (default: every non-embedding variable that two tasks share).

    Example:

    >>> import numpy as np, tfmtl
    >>> from tfmtl.balancing.cagrad import CAGrad
    >>> cagrad = CAGrad(c=0.5)
    >>> cagrad.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> conflicting = np.array([[1.0, 0.0], [-3.0, 4.0]], np.float32)
    >>> np.round(cagrad.balance(conflicting, np.ones(2, np.float32)).numpy(), 5)  # w* = [1, 0]
    array([0.09443, 1.6    ], dtype=float32)
    >>> np.round(cagrad.task_weights().numpy(), 5)  # (1/2 + lambda w) / (1 + c^2)
    array([1.29443, 0.4    ], dtype=float32)
    """

    def __init__(
        self, c: float = 0.5, rescale: int = 1, max_iterations: int = 100, layers: Sequence[str] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(layers=layers, name=name)
        if not float(c) >= 0:
            raise ValueError(f"CAGrad: c must be >= 0, got {c}")
        if rescale not in (0, 1, 2) or isinstance(rescale, bool):
            raise ValueError(f"CAGrad: rescale must be 0, 1 or 2, got {rescale!r}")
        if isinstance(max_iterations, bool) or int(max_iterations) != max_iterations or max_iterations < 1:
            raise ValueError(f"CAGrad: max_iterations must be an integer >= 1, got {max_iterations!r}")
        self.c = float(c)
        self.rescale = int(rescale)
        self.max_iterations = int(max_iterations)

    def balance(self, gradients: tf.Tensor, losses: tf.Tensor) -> tf.Tensor:
        gradients = tf.convert_to_tensor(gradients, tf.float32)
        k = len(self.tasks)
        gram = tf.matmul(gradients, gradients, transpose_b=True)  # [K, K]
        radius = self.c * tf.sqrt(tf.maximum(tf.reduce_mean(gram), 0.0) + 1e-8) + 1e-8  # c' = c ||g0|| + 1e-8
        w = cagrad_weights(gram, radius, self.max_iterations)
        g_w = tf.linalg.matvec(gradients, w, transpose_a=True)
        lam = radius / (tf.norm(g_w) + 1e-8)
        divisor = (1.0, 1.0 + self.c**2, 1.0 + self.c)[self.rescale]
        coefficients = (1.0 / k + lam * w) / divisor
        self.weights.assign(coefficients)
        return (tf.reduce_mean(gradients, axis=0) + lam * g_w) / divisor  # [P]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "c": self.c, "rescale": self.rescale, "max_iterations": self.max_iterations}


#: Candidate step sizes per projected-gradient step (halving from twice the last accepted one).
STEP_CANDIDATES = 24
#: The inner solver stops once a plain projected-gradient step moves no weight by this much.
STOP_MOVE = 1e-8


def cagrad_weights(gram: Any, radius: Any, max_iterations: int = 100) -> tf.Tensor:
    """CAGrad's ``w*`` from the Gram matrix and ``radius = c'``, by accelerated projected gradient descent.

    See :class:`CAGrad`. The problem is solved in float64 on the Gram matrix scaled to a
    largest diagonal of 1 (the objective divided by that scale; the same minimiser). Graph
    code; XLA-compatible.

    Args:
      gram: ``[K, K]`` Gram matrix of the task gradients (``K`` static).
      radius: ``c' = c ||g0|| + 1e-8``.
      max_iterations: Most solver steps.

    Example:

    >>> import numpy as np
    >>> from tfmtl.balancing.cagrad import cagrad_weights
    >>> g = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    >>> cagrad_weights(g @ g.T, 0.5 * np.sqrt(0.5)).numpy()
    array([0.5, 0.5], dtype=float32)
    """
    gram = tf.convert_to_tensor(gram)
    gram = tf.cast(gram if gram.dtype == tf.float64 else tf.cast(gram, tf.float32), tf.float64)  # solved in float64
    radius = tf.cast(radius, tf.float64)
    k = gram.shape[0]
    scale = tf.reduce_max(tf.linalg.diag_part(gram))
    scale = tf.where(scale > 0, scale, tf.constant(1.0, tf.float64))
    gram = gram / scale
    radius = radius / tf.sqrt(scale)
    epsilon = 1e-8 / scale
    target = tf.reduce_mean(gram, axis=1)  # Gram (1/K)
    zero = tf.constant(0.0, tf.float64)

    def objective(w):  # [..., K] -> [...]
        quadratic = tf.maximum(tf.reduce_sum(w * tf.linalg.matvec(gram, w), -1), zero)
        return tf.reduce_sum(w * target, -1) + radius * tf.sqrt(quadratic + epsilon)

    candidates = tf.constant([2.0 ** (1 - j) for j in range(STEP_CANDIDATES)], tf.float64)  # 2, 1, 1/2, ...
    infinity = tf.constant(float("inf"), tf.float64)

    def step(i, w, value, y, momentum, size, moved):
        # A projected-gradient step from the extrapolated point y, with a backtracking step size.
        gram_y = tf.linalg.matvec(gram, y)
        root = tf.sqrt(tf.maximum(tf.reduce_sum(y * gram_y), zero) + epsilon)
        value_y = tf.reduce_sum(y * target) + radius * root
        grad = target + radius * gram_y / root
        sizes = size * candidates  # [S]
        trial = project_to_simplex(y[None, :] - sizes[:, None] * grad[None, :])  # [S, K]
        change = trial - y[None, :]
        bound = value_y + tf.reduce_sum(change * grad, -1) + tf.reduce_sum(change * change, -1) / (2.0 * sizes)
        trial_values = objective(trial)
        accepted = trial_values <= bound  # sufficient decrease
        first = tf.argmax(tf.cast(accepted, tf.int32), output_type=tf.int32)  # the largest accepted step
        ok = tf.reduce_any(accepted)
        z = tf.where(ok, tf.gather(trial, first), y)
        value_z = tf.where(ok, tf.gather(trial_values, first), value_y)
        size = tf.clip_by_value(tf.where(ok, tf.gather(sizes, first), size * candidates[-1]), 1e-15, 1e6)
        # FISTA momentum, restarted (from w, without momentum) when the step made the objective worse (beyond
        # rounding), or did not move from w while momentum was on. It stops when a plain step (from w) does
        # not move: a fixed point of projected gradient steps, the optimum.
        delta = tf.reduce_max(tf.abs(z - w))
        plain = tf.reduce_all(tf.equal(y, w))
        worse = value_z > value + 1e-13 * (1.0 + tf.abs(value))
        converged = plain & (delta < STOP_MOVE)
        restart = ~converged & (worse | ((delta < STOP_MOVE) & ~plain))
        next_momentum = (1.0 + tf.sqrt(1.0 + 4.0 * momentum * momentum)) / 2.0
        y = tf.where(restart, w, z + ((momentum - 1.0) / next_momentum) * (z - w))
        retry = ~ok & (size > 1e-15)  # no step size passed: go on with smaller ones
        moved = tf.where(converged & ~retry, tf.zeros_like(delta), tf.where(restart | retry, infinity, delta))
        w = tf.where(restart, w, z)
        value = tf.where(restart, value, value_z)
        momentum = tf.where(restart, tf.constant(1.0, tf.float64), next_momentum)
        return i + 1, w, value, y, momentum, size, moved

    start = tf.fill([k], tf.constant(1.0 / k, tf.float64))
    one = tf.constant(1.0, tf.float64)
    _, weights, _, _, _, _, _ = tf.while_loop(
        lambda i, w, value, y, momentum, size, moved: moved >= STOP_MOVE, step,
        (tf.constant(0), start, objective(start), start, one, one, infinity),
        maximum_iterations=max_iterations,
    )
    return tf.cast(weights, tf.float32)
