"""Fixed weights: the tasks' static loss weights only."""

from __future__ import annotations

from tfmtl._compat import keras
from tfmtl.balancing.base import LossBalancer


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
