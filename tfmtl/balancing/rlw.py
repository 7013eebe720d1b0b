"""Random Loss Weighting (Lin et al., 2021)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.balancing.base import LossBalancer, counter_uniform, state_variable


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
        self.step = state_variable(0, "step", tf.int64)

    def observe(self, losses: tf.Tensor) -> None:
        k = len(self.tasks)
        u = counter_uniform(self.seed, self.step, 2 * k)  # Box-Muller: two uniforms per normal
        z = tf.sqrt(-2.0 * tf.math.log(u[:k])) * tf.cos(2.0 * np.pi * u[k:])  # [K] ~ N(0, 1)
        self.weights.assign(len(self.tasks) * tf.nn.softmax(z))
        self.step.assign_add(1)

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}
