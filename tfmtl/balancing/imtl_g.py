"""IMTL-G: impartial multi-task learning, the gradient part (Liu et al., 2021)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.balancing.base import GradientBalancer

#: float32's machine epsilon: the Gram matrix comes from float32 gradients.
_EPS32 = float(np.finfo(np.float32).eps)


@keras.utils.register_keras_serializable(package="tfmtl")
class IMTLG(GradientBalancer):
    """IMTL-G (Liu, Li, Kuang, Xue, Chen, Yang, Liao and Zhang, "Towards Impartial Multi-task Learning", ICLR 2021).

    The shared update ``d = sum_i alpha_i g_i`` (``g_i``: task ``i``'s gradient of its
    statically weighted loss on the shared parameters) has equal projections on every
    task's unit gradient ``u_i = g_i / ||g_i||``: ``d . u_i`` is the same for all ``i``,
    with ``sum_i alpha_i = 1``. The paper's form (``D`` with rows ``g_1 - g_i``, ``U`` with
    rows ``u_1 - u_i``, ``i >= 2``) is ``alpha_{2:K} = g_1 U^T (D U^T)^-1``,
    ``alpha_1 = 1 - sum_{i>=2} alpha_i``. This class uses the equivalent closed form on the
    ``K x K`` Gram matrix ``M = G G^T`` of TorchJD's ``IMTLGWeighting``::

        n_i = ||g_i|| = sqrt(M_ii),   v = pinv(M) n,   alpha = v / sum(v)   (alpha = 0 if |sum(v)| < 1e-12)

    which needs no ``P``-sized work beyond the Gram matrix, and which is defined for
    linearly dependent (or zero) gradients, where LibMTL's ``torch.inverse`` fails. The
    pseudo-inverse is taken from an eigendecomposition of ``M`` in float64 that drops the
    eigenvalues ``|lambda| <= K * eps_float32 * max|lambda|`` (the cut-off of
    ``torch.linalg.pinv``'s default, which TorchJD calls, on the float32 Gram matrix).

    ``alpha`` is stored as the strategy's weights, so it is logged as ``<task>/weight``;
    it only reports the shared update: task-specific parameters get their task's plain
    gradient (:meth:`combine` is the plain sum of the losses). There are no arguments
    beyond ``layers`` and no state; the loss-scaling part of IMTL (IMTL-L) is a separate
    strategy.

    Args:
      layers: Names of the layers whose variables are "the shared parameters"
        (default: every non-embedding variable that two tasks share).

    Example: conflicting gradients of norms 1 and 5.

    >>> import numpy as np, tfmtl
    >>> from tfmtl.balancing.imtl_g import IMTLG
    >>> imtl = IMTLG()
    >>> imtl.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> gradients = np.array([[1.0, 0.0], [-3.0, 4.0]], np.float32)
    >>> d = imtl.balance(gradients, np.zeros(2, np.float32))
    >>> np.round(d.numpy(), 4)  # equal projections on both unit gradients: d . u_1 = d . u_2 = 1/3
    array([0.3333, 0.6667], dtype=float32)
    >>> np.round(imtl.task_weights().numpy(), 4)  # alpha = [5/6, 1/6]
    array([0.8333, 0.1667], dtype=float32)
    """

    def __init__(self, layers: Sequence[str] | None = None, name: str | None = None) -> None:
        super().__init__(layers=layers, name=name)

    def balance(self, gradients: tf.Tensor, losses: tf.Tensor) -> tf.Tensor:
        gradients = tf.convert_to_tensor(gradients, tf.float32)
        alpha = imtl_g_weights(gradients)
        self.weights.assign(alpha)
        return tf.linalg.matvec(gradients, alpha, transpose_a=True)  # [P]


def imtl_g_weights(gradients: tf.Tensor) -> tf.Tensor:
    """IMTL-G's coefficients ``alpha`` ``[K]`` (float32) for the per-task gradients ``[K, P]``.

    Example: orthogonal gradients of equal norm get equal coefficients.

    >>> import numpy as np
    >>> from tfmtl.balancing.imtl_g import imtl_g_weights
    >>> imtl_g_weights(np.eye(2, dtype=np.float32)).numpy()
    array([0.5, 0.5], dtype=float32)
    """
    g64 = tf.cast(tf.convert_to_tensor(gradients, tf.float32), tf.float64)
    k = g64.shape[0]
    gram = tf.matmul(g64, g64, transpose_b=True)  # [K, K]
    gram = 0.5 * (gram + tf.transpose(gram))
    norms = tf.sqrt(tf.maximum(tf.linalg.diag_part(gram), 0.0))  # [K]
    eigenvalues, vectors = tf.linalg.eigh(gram)
    magnitude = tf.abs(eigenvalues)
    tolerance = tf.reduce_max(magnitude) * k * _EPS32
    keep = magnitude > tolerance
    zeros, ones = tf.zeros_like(eigenvalues), tf.ones_like(eigenvalues)
    inverse = tf.where(keep, 1.0 / tf.where(keep, eigenvalues, ones), zeros)  # pinv's eigenvalues
    v = tf.linalg.matvec(vectors, inverse * tf.linalg.matvec(vectors, norms, transpose_a=True))  # pinv(M) n
    total = tf.reduce_sum(v)
    degenerate = tf.abs(total) < 1e-12
    alpha = tf.where(degenerate, tf.zeros_like(v), v / tf.where(degenerate, tf.ones_like(total), total))
    return tf.cast(alpha, tf.float32)
