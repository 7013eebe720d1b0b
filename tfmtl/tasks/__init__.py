"""Tasks (targets with heads, losses and metrics) and their masked losses/metrics."""

from tfmtl.tasks.kinds import TaskKind
from tfmtl.tasks.losses import MaskedLoss
from tfmtl.tasks.metrics import (
    COPC,
    CalibrationRatio,
    ExpectedCalibrationError,
    GroupAUC,
    MaskedAccuracy,
    MaskedAUC,
    MaskedCrossEntropy,
    MaskedLogLoss,
    MaskedMAE,
    MaskedRMSE,
    MaskedTopKAccuracy,
)
from tfmtl.tasks.task import MISSING_LABEL, Task, TaskHead

__all__ = [
    "COPC",
    "CalibrationRatio",
    "ExpectedCalibrationError",
    "GroupAUC",
    "MISSING_LABEL",
    "MaskedAUC",
    "MaskedAccuracy",
    "MaskedCrossEntropy",
    "MaskedLogLoss",
    "MaskedLoss",
    "MaskedMAE",
    "MaskedRMSE",
    "MaskedTopKAccuracy",
    "Task",
    "TaskHead",
    "TaskKind",
]
