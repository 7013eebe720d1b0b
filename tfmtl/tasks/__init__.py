"""Tasks (targets with heads, losses and metrics) and their masked losses/metrics."""

from tfmtl.tasks.funnel import FunnelHeads, FunnelProduct, conditional_name
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
from tfmtl.tasks.threshold_metrics import F1, BestF1Threshold, MacroF1, Precision, Recall

__all__ = [
    "BestF1Threshold",
    "COPC",
    "CalibrationRatio",
    "ExpectedCalibrationError",
    "F1",
    "FunnelHeads",
    "FunnelProduct",
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
    "MacroF1",
    "Precision",
    "Recall",
    "Task",
    "TaskHead",
    "TaskKind",
    "conditional_name",
]
