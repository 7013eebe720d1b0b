"""Task kinds."""

import enum


class TaskKind(enum.Enum):
    """What a task predicts: a probability (binary) or a real value (regression)."""

    BINARY = "binary"
    REGRESSION = "regression"
