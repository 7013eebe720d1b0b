"""Chained probabilities of a conversion funnel (ESMM)."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl._compat import keras, tf
from tfmtl.tasks.task import Task


@keras.utils.register_keras_serializable(package="tfmtl")
class FunnelProduct(keras.layers.Layer):
    """``p(step_1 and ... and step_k) = prod_j p(step_j | step_{j-1})``, the output of funnel task k.

    It carries its :class:`~tfmtl.Task` (like :class:`~tfmtl.tasks.TaskHead`), so
    the task's impression-level label trains the product: ESMM's pCTCVR.

    Args:
      task: The funnel step whose probability this is.

    Call args:
      inputs: list of ``[B, 1]`` conditional probabilities, first step first.

    Returns:
      ``[B, 1]`` float32 product.

    Example:

    >>> import numpy as np, tfmtl
    >>> product = tfmtl.layers.FunnelProduct(tfmtl.Task.binary("purchase"))
    >>> product([np.array([[0.5]], np.float32), np.array([[0.2]], np.float32)]).numpy()
    array([[0.1]], dtype=float32)
    """

    def __init__(self, task: Task | dict[str, Any], **kwargs: Any) -> None:
        self.task = task if isinstance(task, Task) else Task.from_config(task)
        kwargs.update(name=kwargs.get("name") or self.task.name, dtype="float32")
        super().__init__(**kwargs)

    def call(self, inputs: Sequence[tf.Tensor]) -> tf.Tensor:
        product = inputs[0]
        for factor in inputs[1:]:
            product = product * factor
        return product

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("dtype", None)
        return {**config, "task": self.task.get_config()}
