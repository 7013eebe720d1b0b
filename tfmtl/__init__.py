"""tfmtl: multi-task recommendation models on TensorFlow Recommenders and Keras 2.

Importing tfmtl sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow is imported (TFRS
needs Keras 2) and raises ImportError if TensorFlow already resolved Keras 3. It
also sets ``TF_CPP_MIN_LOG_LEVEL=2`` unless you set it (see :mod:`tfmtl._compat` for
the console). TensorFlow itself, and every subpackage, loads on first use: ``import
tfmtl`` is instant, and ``import tfmtl.serving`` (e.g. in a serving process) never
loads the modelling code. ``tfmtl.keras`` is the Keras module tfmtl uses (``tf_keras``).

Example:

>>> import tfmtl
>>> tasks = [tfmtl.Task.binary("click"), tfmtl.Task.binary("conversion", loss_weight=2.0)]
>>> [task.name for task in tasks]
['click', 'conversion']
"""

import importlib
import os
import sys
from typing import Any

# Before TensorFlow loads (on first use, through tfmtl._compat): Keras 2 as tf.keras, a quiet C++ log.
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "tensorflow" in sys.modules:  # already loaded: check its Keras now, not at first use
    from tfmtl import _compat  # noqa: F401
else:  # the user's own `import tensorflow` is quieted too
    from tfmtl._quiet import install_import_hook

    install_import_hook()

__version__ = "0.1.0"

_SUBPACKAGES = (
    "balancing", "data", "demo", "diagnostics", "features", "layers", "models", "objective", "serving", "tasks",
    "training",
)
_SHORTCUTS = {
    "Categorical": "tfmtl.features",
    "Numeric": "tfmtl.features",
    "Schema": "tfmtl.features",
    "Task": "tfmtl.tasks",
    "TaskKind": "tfmtl.tasks",
}

__all__ = [*_SHORTCUTS, *_SUBPACKAGES, "__version__", "keras"]


def __getattr__(name: str) -> Any:
    if name == "keras":
        from tfmtl._compat import keras

        return keras
    if name in _SUBPACKAGES:
        return importlib.import_module(f"tfmtl.{name}")
    if name in _SHORTCUTS:
        return getattr(importlib.import_module(_SHORTCUTS[name]), name)
    raise AttributeError(f"module 'tfmtl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
