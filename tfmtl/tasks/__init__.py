"""Tasks (targets with heads, losses and metrics) and their masked losses/metrics."""

from tfmtl.tasks.kinds import TaskKind
from tfmtl.tasks.losses import MaskedLoss
from tfmtl.tasks.metrics import MaskedAUC, MaskedLogLoss, MaskedMAE, MaskedRMSE
from tfmtl.tasks.task import MISSING_LABEL, Task, TaskHead

__all__ = [
    "MISSING_LABEL",
    "MaskedAUC",
    "MaskedLogLoss",
    "MaskedLoss",
    "MaskedMAE",
    "MaskedRMSE",
    "Task",
    "TaskHead",
    "TaskKind",
]
