"""The training lifecycle: checkpointed, resumable ``fit``; metric combinations; staged training; TensorBoard scalars."""

from tfmtl.training.checkpoint import CheckpointCallback, Checkpoints, Position
from tfmtl.training.fit import EpochData, fit
from tfmtl.training.selection import CombinedMetric
from tfmtl.training.staging import layer_roles, set_trainable
from tfmtl.training.tensorboard import TensorBoardLogs

__all__ = [
    "CheckpointCallback",
    "Checkpoints",
    "CombinedMetric",
    "EpochData",
    "Position",
    "TensorBoardLogs",
    "fit",
    "layer_roles",
    "set_trainable",
]
