"""The training lifecycle: checkpointed, resumable ``fit`` (one process or a parameter-server cluster); metric combinations; staged training; TensorBoard scalars; warm starts from the previous version; distillation into a smaller model."""

from tfmtl.training.config import ARCHITECTURES, BALANCERS, ConfigError, RunConfig, load_config, parse_config
from tfmtl.training.checkpoint import CheckpointCallback, Checkpoints, Position
from tfmtl.training.distill import distill
from tfmtl.training.fit import EpochData, fit
from tfmtl.training.parameter_server import (
    full_weights, is_parameter_server_strategy, parameter_server_strategy, per_worker_dataset,
    sharded_dataset_fn, start_server,
)
from tfmtl.training.optimizers import LazyAdam, RowWiseAdagrad, is_embedding_table
from tfmtl.training.priors import set_label_priors
from tfmtl.training.selection import CombinedMetric
from tfmtl.training.staging import layer_roles, set_trainable
from tfmtl.training.run import evaluate_from_config, export_from_config, train_from_config
from tfmtl.training.tensorboard import TensorBoardLogs
from tfmtl.training.warm_start import warm_start

__all__ = [
    "ARCHITECTURES",
    "BALANCERS",
    "ConfigError",
    "RunConfig",
    "evaluate_from_config",
    "export_from_config",
    "load_config",
    "parse_config",
    "train_from_config",
    "CheckpointCallback",
    "Checkpoints",
    "CombinedMetric",
    "EpochData",
    "LazyAdam",
    "Position",
    "RowWiseAdagrad",
    "TensorBoardLogs",
    "distill",
    "fit",
    "full_weights",
    "is_parameter_server_strategy",
    "parameter_server_strategy",
    "per_worker_dataset",
    "sharded_dataset_fn",
    "start_server",
    "is_embedding_table",
    "layer_roles",
    "set_label_priors",
    "set_trainable",
    "warm_start",
]
