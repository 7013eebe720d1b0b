"""tfmtl: multi-task recommendation models on TensorFlow Recommenders and Keras 2.

Importing tfmtl sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow is imported (TFRS
needs Keras 2) and raises ImportError if TensorFlow already resolved Keras 3.
Subpackages load on first use, so ``import tfmtl.serving`` (e.g. in a serving
process) never loads the modelling code.

Example:

>>> import tfmtl
>>> tasks = [tfmtl.Task.binary("click"), tfmtl.Task.binary("conversion", loss_weight=2.0)]
>>> [task.name for task in tasks]
['click', 'conversion']
"""

import importlib
from typing import Any

from tfmtl import _compat  # noqa: F401  (Keras 2 guard; must run first)

__version__ = "0.1.0"

_SUBPACKAGES = (
    "balancing", "data", "demo", "diagnostics", "features", "layers", "models", "serving", "tasks", "training",
)
_SHORTCUTS = {
    "Categorical": "tfmtl.features",
    "Numeric": "tfmtl.features",
    "Schema": "tfmtl.features",
    "Task": "tfmtl.tasks",
    "TaskKind": "tfmtl.tasks",
}

__all__ = [*_SHORTCUTS, *_SUBPACKAGES, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"tfmtl.{name}")
    if name in _SHORTCUTS:
        return getattr(importlib.import_module(_SHORTCUTS[name]), name)
    raise AttributeError(f"module 'tfmtl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
