"""The heads of a conversion funnel: ESMM's chained probabilities (and the pre-0.2 AITM head, kept for loading)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from tfmtl._compat import keras, tf
from tfmtl.tasks.kinds import TaskKind
from tfmtl.tasks.task import Task, TaskHead


def conditional_name(step: Task, previous: Task) -> str:
    """Output name of ``p(step | previous)``, e.g. ``conversion_given_click`` (ESMM's pCVR).

    Example:

    >>> import tfmtl
    >>> tfmtl.tasks.conditional_name(tfmtl.Task.binary("conversion"), tfmtl.Task.binary("click"))
    'conversion_given_click'
    """
    return f"{step.name}_given_{previous.name}"


class FunnelHeads:
    """Heads of a funnel of binary steps trained on the entire space (ESMM).

    The first step's head is its :class:`~tfmtl.tasks.TaskHead`. Step k > 1 gets a
    ``Dense(1, sigmoid)`` named :func:`conditional_name` that answers
    ``p(step_k | step_{k-1})``, and its task output is the :class:`FunnelProduct`
    of all conditionals so far, ``p(step_1 and ... and step_k)``, which the task's
    impression-level label trains. Pass it as ``heads=`` to
    :func:`tfmtl.models.build_model` (it is what :func:`tfmtl.models.esmm` does).

    Args:
      steps: The funnel's binary tasks, earliest first.

    Example:

    >>> import tfmtl
    >>> heads = tfmtl.tasks.FunnelHeads([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    >>> heads.extra_outputs
    ['buy_given_click']
    """

    def __init__(self, steps: Sequence[Task]) -> None:
        self.steps = tuple(steps)
        for step in self.steps:
            if step.kind is not TaskKind.BINARY:
                raise ValueError(f"ESMM funnel steps are binary; task {step.name!r} is {step.kind.value}")
            if step is not self.steps[0] and step.negative_sampling_rate < 1:
                raise ValueError(
                    f"ESMM: task {step.name!r} is a product of the funnel's probabilities; a negative_sampling_rate "
                    f"goes on the first step ({self.steps[0].name!r}), whose corrected probability the products then use"
                )

    @property
    def extra_outputs(self) -> list[str]:
        """The conditional outputs' names, served beside the tasks' (no loss)."""
        return [conditional_name(step, previous) for previous, step in zip(self.steps, self.steps[1:])]

    def __call__(self, hidden: Mapping[str, tf.Tensor], tasks: Sequence[Task]) -> dict[str, tf.Tensor]:
        """Each step's final ``[B, H]`` representation -> ``{output name: [B, 1]}``."""
        if [task.name for task in tasks] != [step.name for step in self.steps]:
            raise ValueError(f"FunnelHeads over {[s.name for s in self.steps]} given the tasks {[t.name for t in tasks]}: "
                             "every task of the model must be a step of the funnel, in order")
        outputs: dict[str, tf.Tensor] = {}
        factors: list[tf.Tensor] = []
        for index, step in enumerate(self.steps):
            if index == 0:
                probability = step.head()(hidden[step.name])  # [B, 1]: p(step_1)
                outputs[step.name] = probability
            else:
                name = conditional_name(step, self.steps[index - 1])
                probability = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name=name)(hidden[step.name])
                outputs[name] = probability  # [B, 1]: p(step_k | step_{k-1})
                outputs[step.name] = FunnelProduct(step)(factors + [probability])  # [B, 1]
            factors.append(probability)
        return outputs


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
    >>> product = tfmtl.tasks.FunnelProduct(tfmtl.Task.binary("purchase"))
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


@keras.utils.register_keras_serializable(package="tfmtl")
class FunnelHead(TaskHead):
    """The head AITM models built before tfmtl 0.2 used; kept only so their ``.keras`` files load.

    New models carry AITM's behavioural expectation calibrator on the task,
    ``Task.binary("buy", follows="click", transfer=True, order_weight=0.6)``, and
    the objective adds the penalty (one implementation for every architecture).
    This layer predicts ``p_t = sigmoid(w . hidden + b)`` and adds
    ``calibration * mean_b max(p_t - p_{t-1}, 0)`` to the loss, as it did.

    Call args:
      inputs: ``[hidden, previous_probability]``: ``[B, H]`` and ``[B, 1]``.

    Example:

    >>> import numpy as np, tfmtl
    >>> head = tfmtl.tasks.funnel.FunnelHead(tfmtl.Task.binary("conversion"), calibration=1.0,
    ...                                      kernel_initializer="zeros")
    >>> p = head([np.ones([2, 3], np.float32), np.array([[0.2], [0.9]], np.float32)])  # p = 0.5 for both
    >>> round(float(head.losses[0]), 4)  # mean of max(0.5 - 0.2, 0) and max(0.5 - 0.9, 0)
    0.15
    """

    def __init__(self, task: Task | dict[str, Any], calibration: float = 0.6, **kwargs: Any) -> None:
        super().__init__(task, **kwargs)
        if not calibration >= 0:
            raise ValueError(f"calibration weight must be >= 0, got {calibration}")
        self.calibration = float(calibration)
        self.input_spec = None  # two inputs; Dense's spec describes one

    def build(self, input_shape: Any) -> None:
        super().build(input_shape[0])
        self.input_spec = None

    def call(self, inputs: Sequence[tf.Tensor]) -> tf.Tensor:
        hidden, previous = inputs
        probability = super().call(hidden)  # [B, 1]
        if self.calibration:
            self.add_loss(self.calibration * tf.reduce_mean(tf.nn.relu(probability - tf.cast(previous, probability.dtype))))
        return probability

    def compute_output_shape(self, input_shape: Any) -> Any:
        return super().compute_output_shape(input_shape[0])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "calibration": self.calibration}
