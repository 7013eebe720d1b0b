"""Nash-MTL: multi-task learning as a bargaining game (Navon et al., 2022)."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl._compat import keras, tf
from tfmtl.balancing.base import GradientBalancer, state_variable


@keras.utils.register_keras_serializable(package="tfmtl")
class NashMTL(GradientBalancer):
    """Nash-MTL (Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik and Fetaya, ICML 2022).

    With ``g_i`` the gradient of task ``i``'s (statically weighted) loss on the shared
    parameters and ``Gram = G G^T``, the Nash bargaining solution is the ``alpha > 0`` with::

        alpha_i (Gram alpha)_i = 1  for every task i,     d = sum_i alpha_i g_i

    (so ``d . g_i = 1 / alpha_i`` and ``||d||^2 = K``); ``d`` is then clipped to norm
    ``max_norm`` (``clip_grad_norm_`` of the shared parameters, ``coef = min(1, max_norm /
    (||d|| + 1e-6))``), which is always active at ``K >= 2`` with the default 1. ``alpha``
    is recomputed every ``update_every`` steps and reused in between. The logged weight
    of task ``i`` is its coefficient in the clipped ``d``, ``coef * alpha_i``; task-specific
    parameters get their task's plain gradient.

    **An in-graph approximation of the reference solver.** The official code
    (AvivNavon/nash-mtl, and its LibMTL and TorchJD ports) runs up to 20 cvxpy/ECOS convex
    programs per update. Here ``alpha`` minimises the strictly convex, self-concordant
    ``F(a) = a^T Gram a / 2 - sum_i log a_i``, whose stationarity condition is exactly
    ``a_i (Gram a)_i = 1``, by damped Newton steps: on the Gram scaled to unit Frobenius
    norm (as the reference; ``alpha`` is scaled back), each step solves the well-conditioned
    ``(D Gram D + I) y = a * (Gram a) - 1`` (``D = diag(a)``, eigenvalues >= 1) and sets
    ``a <- a (1 - y / (1 + lambda))``, ``lambda^2 = r . y`` the Newton decrement (the
    damping keeps ``a > 0``), for at most ``max_iterations`` steps (``tf.while_loop``; it
    stops early once ``max |a * (Gram a) - 1| < 1e-6``). It starts from the better (lower
    ``F``) of the previous ``alpha`` and ``1 / ||g_i||`` (the answer for orthogonal
    gradients), each rescaled to the best multiple along its ray; the second start makes
    gradient norms 1e4 apart converge within the 20 default steps. When the residual is
    still above 1e-3 at the end (no solution: a zero gradient, or linearly dependent
    gradients with no positive solution, such as two opposite ones), the previous
    ``alpha`` is kept, as the reference keeps it when ECOS fails (it starts at ones).
    Measured once while developing (a one-off script, not kept; the tests check five such
    problems) against a float64 solution (exact coordinate minimisation of ``F``, residual
    < 1e-10) on 400 random problems of 2 to 5 tasks (gradient norms up to 1e4 apart, some
    with two gradients at cosine 0.999): every ``alpha`` within 8e-7 (relative), residual
    at most 3e-6, no fallback; the same under XLA.

    Args:
      max_norm: Clip the combined shared gradient to this norm; 0 disables the clip
        (default 1.0, the reference's).
      update_every: Recompute ``alpha`` every this many steps (reference
        ``update_weights_every``, default 1).
      max_iterations: Most Newton steps per update.
      layers: Names of the layers whose variables are "the shared parameters"
        (default: every non-embedding variable that two tasks share).

    Example:

    >>> import numpy as np, tfmtl
    >>> from tfmtl.balancing.nash_mtl import NashMTL
    >>> nash = NashMTL(max_norm=0.0)
    >>> nash.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> conflicting = np.array([[1.0, 0.0], [-3.0, 4.0]], np.float32)
    >>> np.round(nash.balance(conflicting, np.ones(2, np.float32)).numpy(), 5)
    array([0.63246, 1.26491], dtype=float32)
    >>> np.round(nash.task_weights().numpy(), 5)  # [5, 1] / sqrt(10)
    array([1.58114, 0.31623], dtype=float32)
    """

    #: Residual ``max |alpha (Gram alpha) - 1|`` below which a solution is accepted.
    TOLERANCE = 1e-3

    def __init__(
        self, max_norm: float = 1.0, update_every: int = 1, max_iterations: int = 20,
        layers: Sequence[str] | None = None, name: str | None = None,
    ) -> None:
        super().__init__(layers=layers, name=name)
        if not float(max_norm) >= 0:
            raise ValueError(f"NashMTL: max_norm must be >= 0 (0 disables the clip), got {max_norm}")
        for arg, value in (("update_every", update_every), ("max_iterations", max_iterations)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"NashMTL: {arg} must be an integer >= 1, got {value!r}")
        self.max_norm = float(max_norm)
        self.update_every = int(update_every)
        self.max_iterations = int(max_iterations)

    def _build(self) -> None:
        self.alpha = state_variable(tf.ones([len(self.tasks)]), "alpha")
        self.step = state_variable(0, "step", tf.int64)

    def balance(self, gradients: tf.Tensor, losses: tf.Tensor) -> tf.Tensor:
        gradients = tf.convert_to_tensor(gradients, tf.float32)
        previous = tf.convert_to_tensor(self.alpha)
        update = tf.equal(self.step % self.update_every, 0)
        alpha = tf.cond(
            update,
            lambda: nash_weights(tf.matmul(gradients, gradients, transpose_b=True), previous, self.max_iterations,
                                 self.TOLERANCE),
            lambda: previous,
        )
        self.alpha.assign(alpha)
        self.step.assign_add(1)
        combined = tf.linalg.matvec(gradients, alpha, transpose_a=True)  # [P]
        if self.max_norm > 0:
            coefficient = tf.minimum(1.0, self.max_norm / (tf.norm(combined) + 1e-6))
            combined = combined * coefficient
            alpha = alpha * coefficient
        self.weights.assign(alpha)
        return combined

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(), "max_norm": self.max_norm, "update_every": self.update_every,
            "max_iterations": self.max_iterations,
        }


def nash_weights(gram: Any, previous: Any, max_iterations: int = 20, tolerance: float = 1e-3) -> tf.Tensor:
    """``alpha > 0`` with ``alpha * (gram @ alpha) = 1`` by damped Newton steps (see :class:`NashMTL`), or ``previous``.

    Args:
      gram: ``[K, K]`` Gram matrix of the task gradients (``K`` static).
      previous: ``[K]`` the previous ``alpha``: a starting point (the better of it and
        ``1 / ||g_i||``, each rescaled along its ray), and the answer when the residual
        stays above ``tolerance``.
      max_iterations: Most Newton steps.
      tolerance: Largest accepted ``max |alpha * (gram @ alpha) - 1|``.

    Example:

    >>> import numpy as np
    >>> from tfmtl.balancing.nash_mtl import nash_weights
    >>> np.round(nash_weights(np.array([[1.0, -3.0], [-3.0, 25.0]], np.float32), np.ones(2, np.float32)).numpy(), 5)
    array([1.58114, 0.31623], dtype=float32)
    >>> nash_weights(np.array([[0.0, 0.0], [0.0, 1.0]], np.float32), np.ones(2, np.float32)).numpy()  # no solution
    array([1., 1.], dtype=float32)
    """
    gram = tf.convert_to_tensor(gram, tf.float32)
    previous = tf.convert_to_tensor(previous, tf.float32)
    k = gram.shape[0]
    scale = tf.norm(gram)  # Frobenius, as the reference
    scale = tf.where(scale > 0, scale, 1.0)
    gram = gram / scale
    root = tf.sqrt(scale)  # alpha for the scaled Gram = root * alpha
    def best_multiple(a):  # argmin_t F(t a) = sqrt(K / a^T Gram a): F along the ray is t^2 q / 2 - K log t
        curvature = tf.reduce_sum(a * tf.linalg.matvec(gram, a))
        return a * tf.where(curvature > 0, tf.sqrt(k / tf.maximum(curvature, 1e-30)), 1.0)

    def log_barrier(a):  # F(a) = a^T Gram a / 2 - sum log a
        return 0.5 * tf.reduce_sum(a * tf.linalg.matvec(gram, a)) - tf.reduce_sum(tf.math.log(a))

    # Start from the better of the previous alpha and 1 / ||g_i|| (the answer for orthogonal gradients).
    warm = best_multiple(tf.where(tf.reduce_all(previous > 0), previous * root, tf.ones([k])))
    diagonal = best_multiple(tf.math.rsqrt(tf.maximum(tf.linalg.diag_part(gram), 1e-12)))
    start = tf.where(log_barrier(diagonal) < log_barrier(warm), diagonal, warm)

    def residual(a):
        return a * tf.linalg.matvec(gram, a) - 1.0

    def step(i, a, r):
        system = a[:, None] * gram * a[None, :] + tf.eye(k)  # D Gram D + I
        y = tf.linalg.cholesky_solve(tf.linalg.cholesky(system), r[:, None])[:, 0]
        decrement = tf.sqrt(tf.maximum(tf.reduce_sum(r * y), 0.0))
        new = a * (1.0 - y / (1.0 + decrement))
        good = tf.reduce_all(tf.math.is_finite(new)) & tf.reduce_all(new > 0)
        new = tf.where(good, new, a)
        return i + 1, new, residual(new)

    _, solution, r = tf.while_loop(
        lambda i, a, r: tf.reduce_max(tf.abs(r)) >= 1e-6, step, (tf.constant(0), start, residual(start)),
        maximum_iterations=max_iterations,
    )
    converged = tf.reduce_max(tf.abs(r)) < tolerance  # False for NaN
    return tf.where(converged, solution / root, previous)
