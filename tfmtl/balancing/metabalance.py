"""MetaBalance: auxiliary gradients scaled to the target task's (He et al., 2022)."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl._compat import keras, tf
from tfmtl.balancing.base import GradientBalancer, state_variable
from tfmtl.tasks.task import Task

STRATEGIES = ("A", "B", "C")


@keras.utils.register_keras_serializable(package="tfmtl")
class MetaBalance(GradientBalancer):
    """MetaBalance (He, Feng, Cheng, Ji, Guo and Caverlee, "MetaBalance: Improving Multi-Task Recommendations
    via Adapting Gradient Magnitudes of Auxiliary Tasks", WWW 2022; Algorithm 2).

    One task is the *target* (the first of the model's tasks unless ``target`` names
    another); the others are *auxiliary*. With ``g_i`` task ``i``'s gradient of its
    statically weighted loss on the shared parameters, each step updates moving averages
    of the gradient norms (init 0)::

        m_i <- beta m_i + (1 - beta) ||g_i||                      (every task, target included)
        g_i <- r (m_tar / m_i) g_i + (1 - r) g_i                  (auxiliary i, when the strategy allows)
        d = g_tar + sum_aux g_i

    i.e. auxiliary weight ``w_i = r (m_tar / m_i - 1) + 1`` (``r`` = ``relax``), target weight 1.
    Strategy ``"A"`` scales an auxiliary gradient only when ``m_i > m_tar`` (shrinks the
    large ones), ``"B"`` only when ``m_i < m_tar`` (enlarges the small ones), ``"C"`` always
    (the paper finds it best; torch-rechub implements only C).

    Differences from the reference code (torch-rechub ``torch_rechub/basic/metaoptimizer.py``):
    it applies the rule to every shared parameter tensor separately (one ``m_i`` per
    tensor); this class treats the whole shared vector as one block (one ``m_i`` per task),
    so a tensor whose gradients are small relative to the rest is not rescaled on its own;
    torch-rechub divides by ``m_i + 1e-5`` (here no epsilon, as the paper; a task whose
    averaged norm is still 0 gets the weight ``1 - r`` under strategies B and C, its gradient being
    zero anyway) and also passes the target through the rule (its weight is then
    ``m_tar / (m_tar + 1e-5) ~ 1``, here exactly 1).

    The weights ``w`` are stored as the strategy's weights, so they are logged as
    ``<task>/weight``; they only act on the shared parameters: task-specific parameters
    get their task's plain gradient (:meth:`combine` is the plain sum of the losses), as
    torch-rechub, whose task layers have their own optimizer on the plain sum.

    Args:
      target: Name of the target task (default: the model's first task); checked when
        the model compiles.
      relax: The relax factor ``r`` in ``[0, 1]`` (paper and torch-rechub: 0.7); 0 keeps
        the plain sum, 1 gives every auxiliary gradient the target's averaged norm.
      beta: Moving-average factor of the norms, in ``[0, 1)`` (paper and torch-rechub: 0.9).
      strategy: ``"A"``, ``"B"`` or ``"C"`` (default).
      layers: Names of the layers whose variables are "the shared parameters"
        (default: every non-embedding variable that two tasks share).

    Example: the auxiliary gradient has 5 times the target's norm.

    >>> import numpy as np, tfmtl
    >>> from tfmtl.balancing.metabalance import MetaBalance
    >>> metabalance = MetaBalance()
    >>> metabalance.build([tfmtl.Task.binary("buy"), tfmtl.Task.binary("click")])  # "buy" is the target
    >>> gradients = np.array([[1.0, 0.0], [-3.0, 4.0]], np.float32)
    >>> np.round(metabalance.balance(gradients, np.zeros(2, np.float32)).numpy(), 5)
    array([-0.32,  1.76], dtype=float32)
    >>> np.round(metabalance.task_weights().numpy(), 5)  # 0.7 * (0.1 / 0.5) + 0.3
    array([1.  , 0.44], dtype=float32)
    """

    def __init__(
        self, target: str | None = None, relax: float = 0.7, beta: float = 0.9, strategy: str = "C",
        layers: Sequence[str] | None = None, name: str | None = None,
    ) -> None:
        super().__init__(layers=layers, name=name)
        if target is not None and not isinstance(target, str):
            raise TypeError(f"MetaBalance: target must be a task name or None, got {target!r}")
        if not 0.0 <= relax <= 1.0:
            raise ValueError(f"MetaBalance: relax must be in [0, 1], got {relax}")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"MetaBalance: beta must be in [0, 1), got {beta}")
        if strategy not in STRATEGIES:
            raise ValueError(f"MetaBalance: strategy must be one of 'A', 'B', 'C', got {strategy!r}")
        self.target = target
        self.relax = float(relax)
        self.beta = float(beta)
        self.strategy = strategy

    def build(self, tasks: Sequence[Task]) -> None:
        names = [task.name for task in tasks]
        if self.target is not None and self.target not in names:
            raise ValueError(f"MetaBalance: target {self.target!r} is not one of the model's tasks {names}")
        super().build(tasks)

    def _build(self) -> None:
        names = [task.name for task in self.tasks]
        self.target_index = 0 if self.target is None else names.index(self.target)
        self.norms = state_variable(tf.zeros([len(self.tasks)]), "norms")  # m_i

    def balance(self, gradients: tf.Tensor, losses: tf.Tensor) -> tf.Tensor:
        gradients = tf.convert_to_tensor(gradients, tf.float32)
        k = len(self.tasks)
        norms = self.beta * self.norms + (1.0 - self.beta) * tf.norm(gradients, axis=1)  # [K]
        self.norms.assign(norms)
        target_norm = norms[self.target_index]
        if self.strategy == "A":
            scaled = norms > target_norm
        elif self.strategy == "B":
            scaled = norms < target_norm
        else:
            scaled = tf.ones([k], tf.bool)
        auxiliary = tf.not_equal(tf.range(k), self.target_index)
        ratio = tf.math.divide_no_nan(target_norm, norms)
        weights = tf.where(scaled & auxiliary, self.relax * ratio + (1.0 - self.relax), tf.ones_like(ratio))
        self.weights.assign(weights)
        return tf.linalg.matvec(gradients, weights, transpose_a=True)  # [P]

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(), "target": self.target, "relax": self.relax, "beta": self.beta,
            "strategy": self.strategy,
        }
