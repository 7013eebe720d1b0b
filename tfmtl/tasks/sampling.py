"""Negative downsampling of a binary task, and the correction back to the true rates.

Production training sets keep every positive of a task and only a share ``r`` of its
negatives (``Task.binary("click", negative_sampling_rate=0.1)``), often a different
share per task. A model trained on such labels predicts the *sampled* probability
``p``, which over-states the true one. Every prediction tfmtl returns (``predict``,
``evaluate``, each exported signature) is the corrected probability::

    q = p / (p + (1 - p) / r)        i.e.  logit(q) = logit(p) + log(r)

(He et al., "Practical Lessons from Predicting Clicks on Ads at Facebook", 2014). The
task's loss is still taken on ``p`` against the sampled labels (:func:`to_sampled`); what
reads the task's prediction inside the model (an ESMM product, a task that ``follows``
it) reads ``q``. Inside a :class:`~tfmtl.models.MultiTaskModel`, the task's metrics (AUC, logloss, COPC, ECE, GAUC) are taken on
``q`` with each negative counted ``1 / r`` times (:func:`population_weights`), which
estimates them on the data before sampling, when the data given to ``fit`` or
``evaluate`` was sampled at that rate (evaluate unsampled data with ``predict``).

The correction assumes that the task's own negatives were sampled: its dropped labels
made missing, as :meth:`tfmtl.data.MultiTaskData.downsample_negatives` does, the row still
training the other tasks. Where a pipeline drops whole rows instead, the other tasks'
labels on those rows are sampled too (unevenly: only on the first task's negatives), and
no rate declared on one task corrects them.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from tfmtl._compat import tf


def check_rate(rate: Any, where: str) -> float:
    """``rate`` as a float in (0, 1], else a ValueError naming ``where``.

    Example:

    >>> check_rate(0.25, "task 'click'")
    0.25
    """
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not math.isfinite(rate) or not 0 < rate <= 1:
        raise ValueError(f"{where}: negative_sampling_rate must be a number in (0, 1], got {rate!r}")
    return float(rate)


def corrected(probability: Any, rate: float) -> tf.Tensor:
    """The true probability ``q`` from the sampled one ``p``: ``p / (p + (1 - p) / rate)``.

    Example:

    >>> import numpy as np
    >>> np.round(corrected(np.array([0.5, 0.1], np.float32), 0.1).numpy(), 5)  # 0.5 / (0.5 + 5)
    array([0.09091, 0.01099], dtype=float32)
    """
    p = tf.convert_to_tensor(probability)
    return p / (p + (1.0 - p) / rate)


def to_sampled(probability: Any, rate: float) -> tf.Tensor:
    """The inverse of :func:`corrected`: the sampled probability ``p = q / (q + r (1 - q))`` the loss is taken on.

    Example:

    >>> import numpy as np
    >>> q = corrected(np.array([0.5, 0.1], np.float32), 0.1)
    >>> np.round(to_sampled(q, 0.1).numpy(), 5)
    array([0.5, 0.1], dtype=float32)
    """
    q = tf.convert_to_tensor(probability)
    return q / (q + rate * (1.0 - q))


def population_weights(labels: Any, rate: float) -> tf.Tensor:
    """Each row's weight in the data before sampling: 1 for a positive, ``1 / rate`` for a negative.

    Example:

    >>> import numpy as np
    >>> population_weights(np.array([1.0, 0.0, 0.0], np.float32), 0.25).numpy()
    array([1., 4., 4.], dtype=float32)
    """
    y = tf.reshape(tf.cast(labels, tf.float32), [-1])
    return tf.where(y > 0.5, 1.0, 1.0 / rate)


__all__ = ["check_rate", "corrected", "population_weights", "to_sampled"]
