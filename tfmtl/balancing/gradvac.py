"""GradVac: gradient vaccine (Wang et al., 2021), as LibMTL re-implements it."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl._compat import keras, tf
from tfmtl.balancing.base import GradientBalancer, counter_uniform, state_variable


@keras.utils.register_keras_serializable(package="tfmtl")
class GradVac(GradientBalancer):
    """Gradient Vaccine (Wang, Tsvetkov, Firat and Cao, "Gradient Vaccine: Investigating and Improving
    Multi-task Optimization in Massively Multilingual Models", ICLR 2021).

    The authors released no code; this follows LibMTL's re-implementation
    (``LibMTL/weighting/GradVac.py``) with ``group_type=0``: the whole shared vector is
    one group. With ``g_i`` task ``i``'s gradient of its statically weighted loss on the
    shared parameters, ``g~ = G`` (a copy) and the state ``rho^`` ``[K, K]`` (init 0):
    for each task ``i``, and each other task ``j`` in a random order::

        rho = g~_i . g_j / (||g~_i|| ||g_j|| + 1e-8)         (modified g_i, original g_j)
        if rho < rho^_ij:
            w = ||g~_i|| (rho^_ij sqrt(1 - rho^2) - rho sqrt(1 - rho^_ij^2)) / (||g_j|| sqrt(1 - rho^_ij^2) + 1e-8)
            g~_i += w g_j
            rho^_ij <- (1 - beta) rho^_ij + beta rho

    and ``d = sum_i g~_i``. With ``rho^ = 0`` the correction is PCGrad's projection.

    As in LibMTL's code, ``rho^_ij`` moves only when the correction is applied, so it
    never rises above 0 (it follows the pair's cosines downwards only). The paper's
    Eq. 3 (and TorchJD, and the project's notes) describe ``rho^`` as the moving average
    of every step's cosine, positive ones included: ``always_update=True`` does that
    (the correction still uses ``rho^`` from before the update, and ``rho`` from before
    the correction).

    Differences from LibMTL, none of which changes its results otherwise: each task's
    order of the others is drawn from :func:`~tfmtl.balancing.counter_uniform`
    (``argsort`` of row ``i`` of a ``[K, K]`` draw for ``(seed, step)``, the step counting
    calls to :meth:`balance`), so replicas and XLA agree; everything runs on the
    ``K x K`` Gram matrix in float64 (``g~_i`` is tracked by its coefficients on the
    ``g_j``), never on ``P``-sized vectors; ``sqrt`` arguments are clipped at 0 (rounding
    could make ``1 - rho^2`` negative); a zero ``g_j`` is skipped (it adds nothing to ``d``,
    but its coefficient would be ``~1e8``).

    The strategy's weights, logged as ``<task>/weight``, are each original gradient's
    coefficient in ``d = sum_j alpha_j g_j`` (``alpha_j = 1 + sum_i`` of the corrections
    adding ``g_j`` to other tasks' gradients). They only report the shared update:
    task-specific parameters get their task's plain gradient (:meth:`combine` is the
    plain sum of the losses).

    Args:
      beta: Step of the moving average of the target cosines ``rho^`` (LibMTL's
        ``GradVac_beta``, default 0.5), in ``[0, 1]``.
      seed: Seed of the random order of the other tasks.
      always_update: Update ``rho^_ij`` every step for every pair (the paper's Eq. 3)
        instead of only when the correction is applied (LibMTL).
      layers: Names of the layers whose variables are "the shared parameters"
        (default: every non-embedding variable that two tasks share).

    Example: conflicting gradients (cosine -0.6), two steps.

    >>> import numpy as np, tfmtl
    >>> from tfmtl.balancing.gradvac import GradVac
    >>> gradvac = GradVac()
    >>> gradvac.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> gradients = np.array([[1.0, 0.0], [-3.0, 4.0]], np.float32)
    >>> np.round(gradvac.balance(gradients, np.zeros(2, np.float32)).numpy(), 5)  # PCGrad: [0.64, 0.48] + [0, 4]
    array([0.64, 4.48], dtype=float32)
    >>> np.round(gradvac.target.numpy(), 5)  # rho^ = 0.5 * -0.6
    array([[ 0. , -0.3],
           [-0.3,  0. ]], dtype=float32)
    >>> np.round(gradvac.balance(gradients, np.zeros(2, np.float32)).numpy(), 5)  # toward cosine -0.3
    array([-0.46699,  4.27873], dtype=float32)
    """

    def __init__(
        self, beta: float = 0.5, seed: int = 0, always_update: bool = False, layers: Sequence[str] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(layers=layers, name=name)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"GradVac: beta must be in [0, 1], got {beta}")
        self.beta = float(beta)
        self.seed = int(seed)
        self.always_update = bool(always_update)

    def _build(self) -> None:
        k = len(self.tasks)
        self.target = state_variable(tf.zeros([k, k]), "target")  # rho^
        self.step = state_variable(0, "step", tf.int64)

    def balance(self, gradients: tf.Tensor, losses: tf.Tensor) -> tf.Tensor:
        gradients = tf.convert_to_tensor(gradients, tf.float32)
        k = len(self.tasks)
        order = tf.argsort(tf.reshape(counter_uniform(self.seed, self.step, k * k), [k, k]), axis=1)
        self.step.assign_add(1)
        coefficients, target = vaccinate(gradients, tf.convert_to_tensor(self.target), order, self.beta,
                                         self.always_update)
        self.target.assign(target)
        alpha = tf.reduce_sum(coefficients, axis=0)  # d = sum_i g~_i = sum_j alpha_j g_j
        self.weights.assign(alpha)
        return tf.linalg.matvec(gradients, alpha, transpose_a=True)  # [P]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta": self.beta, "seed": self.seed, "always_update": self.always_update}


def vaccinate(
    gradients: tf.Tensor, target: tf.Tensor, order: Any, beta: float, always_update: bool = False,
) -> tuple[tf.Tensor, tf.Tensor]:
    """GradVac's step on the Gram matrix: ``(C [K, K], new rho^ [K, K])``, float32, with ``g~_i = sum_j C_ij g_j``.

    Args:
      gradients: ``[K, P]`` per-task gradients.
      target: ``[K, K]`` the target cosines ``rho^`` before the step.
      order: ``[K, K]``: row ``i`` is the order in which task ``i`` visits the tasks (itself skipped).
      beta: Step of the moving average.
      always_update: Move ``rho^_ij`` for every pair, not only the corrected ones.

    Example: no conflict, no change.

    >>> import numpy as np
    >>> from tfmtl.balancing.gradvac import vaccinate
    >>> c, rho = vaccinate(np.eye(2, dtype=np.float32), np.zeros([2, 2], np.float32), [[0, 1], [0, 1]], 0.5)
    >>> c.numpy()
    array([[1., 0.],
           [0., 1.]], dtype=float32)
    """
    g64 = tf.cast(tf.convert_to_tensor(gradients, tf.float32), tf.float64)
    k = g64.shape[0]
    target = tf.cast(tf.convert_to_tensor(target, tf.float32), tf.float64)
    order = tf.convert_to_tensor(order, tf.int32)
    gram = tf.matmul(g64, g64, transpose_b=True)  # [K, K]
    norms = tf.sqrt(tf.maximum(tf.linalg.diag_part(gram), 0.0))
    identity = tf.eye(k, dtype=tf.float64)
    rows, targets = [], []
    for i in range(k):
        c = identity[i]  # g~_i = sum_m c_m g_m
        row = target[i]
        for position in range(k):
            j = order[i, position]
            at_j = tf.one_hot(j, k, dtype=tf.float64)
            dot = tf.reduce_sum(c * tf.gather(gram, j))  # g~_i . g_j
            norm_i = tf.sqrt(tf.maximum(tf.reduce_sum(c * tf.linalg.matvec(gram, c)), 0.0))
            norm_j = tf.gather(norms, j)
            rho = dot / (norm_i * norm_j + 1e-8)
            rho_hat = tf.gather(row, j)
            other = tf.not_equal(j, i)
            correct = other & (rho < rho_hat) & (norm_j > 0)
            sine, target_sine = tf.sqrt(tf.maximum(1 - rho * rho, 0.0)), tf.sqrt(tf.maximum(1 - rho_hat * rho_hat, 0.0))
            w = norm_i * (rho_hat * sine - rho * target_sine) / (norm_j * target_sine + 1e-8)
            c = c + tf.where(correct, w, tf.zeros_like(w)) * at_j
            moved = other if always_update else correct
            step = beta * (rho - rho_hat)
            row = row + tf.where(moved, step, tf.zeros_like(step)) * at_j  # (1 - beta) rho^ + beta rho
        rows.append(c)
        targets.append(row)
    return tf.cast(tf.stack(rows), tf.float32), tf.cast(tf.stack(targets), tf.float32)
