"""The multi-task objective: labels, per-task losses, weights, extra losses, metrics and gradient combination.

:class:`MultiTaskObjective` is the one object that owns them (``model.objective`` after
``compile``); the balancing strategies it combines losses and gradients with are in
:mod:`tfmtl.balancing`.
"""

from tfmtl.objective.objective import MultiTaskObjective

__all__ = ["MultiTaskObjective"]
