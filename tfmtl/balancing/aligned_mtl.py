"""Aligned-MTL: independent component alignment (Senushkin et al., 2023)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.balancing.base import GradientBalancer

#: float32's machine epsilon: the Gram matrix comes from float32 gradients.
_EPS32 = float(np.finfo(np.float32).eps)

SCALES = ("min", "median", "rmse")


@keras.utils.register_keras_serializable(package="tfmtl")
class AlignedMTL(GradientBalancer):
    """Aligned-MTL (Senushkin, Patakin, Kuznetsov and Konushin, "Independent Component Alignment for
    Multi-Task Learning", CVPR 2023).

    The per-task gradients ``G = [g_1; ...; g_K]`` (of the statically weighted losses on the
    shared parameters) are replaced by a matrix with orthogonal rows of equal norm that
    stays as close as possible to ``G``: with the Gram matrix ``M = G G^T = V Lambda V^T``,
    the eigenpairs ``lambda > tol = lambda_max * K * eps_float32`` kept (``r`` of them),
    and ``lambda_s`` the scale::

        B = sqrt(lambda_s) V_r Lambda_r^{-1/2} V_r^T,   alpha = B w,   d = sum_i alpha_i g_i

    (``d = sqrt(lambda_s) V_G U_G^T w`` for the SVD ``G = U_G Sigma V_G^T``: every aligned
    task component has the norm ``sqrt(lambda_s)``; the condition number of the aligned
    system is 1). ``lambda_s`` is the smallest kept eigenvalue (``scale="min"``, the
    paper's and LibMTL's), the median one (``"median"``; the lower middle one for an
    even count, as ``torch.median``) or their mean (``"rmse"``, which TorchJD says the
    original implementation used). When no eigenvalue passes the tolerance (all
    gradients zero) ``B`` is the identity, as in TorchJD.

    The task preferences are LibMTL's ``w = 1`` (``alpha = B.sum(0)``); TorchJD's default is
    the mean, ``w = 1/K``, so its update is ``1/K`` of this one (half of it for 2 tasks).
    The eigendecomposition runs in float64 on the ``K x K`` Gram matrix (the references
    run it in float32, with the same float32 tolerance).

    ``alpha`` is stored as the strategy's weights, so it is logged as ``<task>/weight``;
    it only reports the shared update: task-specific parameters get their task's plain
    gradient (:meth:`combine` is the plain sum of the losses). No state.

    Args:
      scale: Which kept eigenvalue sets the common norm: ``"min"``, ``"median"`` or ``"rmse"``.
      layers: Names of the layers whose variables are "the shared parameters"
        (default: every non-embedding variable that two tasks share).

    Example: conflicting gradients ``[1, 0]`` and ``[-3, 4]`` (eigenvalues ``13 +- sqrt(153)``).

    >>> import numpy as np, tfmtl
    >>> from tfmtl.balancing.aligned_mtl import AlignedMTL
    >>> aligned = AlignedMTL()
    >>> aligned.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> d = aligned.balance(np.array([[1.0, 0.0], [-3.0, 4.0]], np.float32), np.zeros(2, np.float32))
    >>> np.round(d.numpy(), 5)
    array([0.27239, 1.08957], dtype=float32)
    >>> np.round(aligned.task_weights().numpy(), 5)
    array([1.08957, 0.27239], dtype=float32)
    """

    def __init__(self, scale: str = "min", layers: Sequence[str] | None = None, name: str | None = None) -> None:
        super().__init__(layers=layers, name=name)
        if scale not in SCALES:
            raise ValueError(f"AlignedMTL: scale must be one of {', '.join(map(repr, SCALES))}, got {scale!r}")
        self.scale = scale

    def balance(self, gradients: tf.Tensor, losses: tf.Tensor) -> tf.Tensor:
        gradients = tf.convert_to_tensor(gradients, tf.float32)
        alpha = aligned_weights(gradients, self.scale)
        self.weights.assign(alpha)
        return tf.linalg.matvec(gradients, alpha, transpose_a=True)  # [P]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale}


def aligned_weights(gradients: tf.Tensor, scale: str = "min") -> tf.Tensor:
    """Aligned-MTL's coefficients ``alpha = B 1`` ``[K]`` (float32) for the per-task gradients ``[K, P]``.

    Example: orthogonal gradients of norms 1 and 2 are rescaled to the smaller norm.

    >>> import numpy as np
    >>> from tfmtl.balancing.aligned_mtl import aligned_weights
    >>> aligned_weights(np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)).numpy()
    array([1. , 0.5], dtype=float32)
    """
    if scale not in SCALES:
        raise ValueError(f"AlignedMTL: scale must be one of {', '.join(map(repr, SCALES))}, got {scale!r}")
    g64 = tf.cast(tf.convert_to_tensor(gradients, tf.float32), tf.float64)
    k = g64.shape[0]
    gram = tf.matmul(g64, g64, transpose_b=True)  # [K, K]
    gram = 0.5 * (gram + tf.transpose(gram))
    eigenvalues, vectors = tf.linalg.eigh(gram)  # ascending
    tolerance = tf.reduce_max(eigenvalues) * k * _EPS32
    keep = eigenvalues > tolerance  # the top r eigenvalues
    rank = tf.reduce_sum(tf.cast(keep, tf.int32))
    zeros, ones = tf.zeros_like(eigenvalues), tf.ones_like(eigenvalues)
    kept = tf.where(keep, eigenvalues, zeros)
    if scale == "min":
        chosen = tf.reduce_min(tf.where(keep, eigenvalues, tf.reduce_max(eigenvalues) * ones))
    elif scale == "median":  # the lower median of the kept (ascending: eigenvalues[K - r:]), as torch.median
        chosen = tf.gather(eigenvalues, tf.clip_by_value(k - rank + (rank - 1) // 2, 0, k - 1))
    else:  # "rmse": the mean kept eigenvalue
        chosen = tf.reduce_sum(kept) / tf.cast(tf.maximum(rank, 1), tf.float64)
    inverse_sqrt = tf.where(keep, 1.0 / tf.sqrt(tf.where(keep, eigenvalues, ones)), zeros)  # Lambda_r^{-1/2}
    balance = tf.sqrt(tf.maximum(chosen, 0.0)) * tf.matmul(vectors * inverse_sqrt, vectors, transpose_b=True)
    balance = tf.where(rank > 0, balance, tf.eye(k, dtype=tf.float64))  # B
    return tf.cast(tf.reduce_sum(balance, axis=1), tf.float32)  # B w with w = 1
