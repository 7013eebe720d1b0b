"""The Euclidean projection onto a (scaled) probability simplex, in graph code (CAGrad's solver, PE-LTR)."""

from __future__ import annotations

from typing import Any

from tfmtl._compat import tf


def project_to_simplex(values: Any, total: Any = 1.0) -> tf.Tensor:
    """The point of ``{x >= 0, sum(x) = total}`` nearest to ``values`` (each row of a batch), exactly.

    The sort-based rule (Held, Wolfe and Crowder 1974; Duchi et al. 2008): with
    ``u`` the values sorted in decreasing order, ``rho`` the largest ``j`` with
    ``u_j - (u_1 + ... + u_j - total) / j > 0`` and
    ``theta = (u_1 + ... + u_rho - total) / rho``, the projection is
    ``max(values - theta, 0)``. Pure TensorFlow (sort and cumulative sum), so it runs
    under XLA; ``total`` must be positive.

    Args:
      values: ``[..., n]`` points (float32, or float64 kept as float64).
      total: The simplex's sum (a positive scalar, Python or tensor).

    Example:

    >>> import numpy as np
    >>> from tfmtl.balancing.simplex import project_to_simplex
    >>> project_to_simplex(np.array([0.675, -0.075], np.float32), 0.6).numpy()
    array([0.6, 0. ], dtype=float32)
    >>> np.round(project_to_simplex(np.array([[0.2, 0.2, 0.2], [2.0, 1.5, 0.0]], np.float32)).numpy(), 4)
    array([[0.3333, 0.3333, 0.3333],
           [0.75  , 0.25  , 0.    ]], dtype=float32)
    """
    values = tf.convert_to_tensor(values)
    if values.dtype != tf.float64:
        values = tf.cast(values, tf.float32)
    total = tf.cast(total, values.dtype)
    n = values.shape[-1]
    ordered = tf.sort(values, axis=-1, direction="DESCENDING")
    excess = tf.cumsum(ordered, axis=-1) - total  # sum of the j largest, minus the total
    count = tf.range(1, n + 1, dtype=values.dtype)
    positive = ordered - excess / count > 0  # true for j = 1..rho
    rho = tf.reduce_sum(tf.cast(positive, tf.int32), axis=-1, keepdims=True)
    at_rho = tf.equal(tf.range(1, n + 1), rho)
    theta = tf.reduce_sum(tf.where(at_rho, excess / count, tf.zeros_like(excess)), axis=-1, keepdims=True)
    return tf.maximum(values - theta, tf.zeros_like(values))
