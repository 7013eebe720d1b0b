"""tfmtl: multi-task recommendation models on TensorFlow Recommenders and Keras 2.

Importing tfmtl sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow is imported (TFRS
needs Keras 2) and raises ImportError if TensorFlow already resolved Keras 3.

Example:

>>> import tfmtl
>>> tasks = [tfmtl.Task.binary("click"), tfmtl.Task.binary("conversion", loss_weight=2.0)]
>>> [task.name for task in tasks]
['click', 'conversion']
"""

from tfmtl import _compat  # noqa: F401  (Keras 2 guard; must run first)
from tfmtl import data, demo, features, layers, models, serving, tasks
from tfmtl.features import Categorical, Numeric, Schema
from tfmtl.tasks import Task, TaskKind

__version__ = "0.1.0"

__all__ = [
    "Categorical",
    "Numeric",
    "Schema",
    "Task",
    "TaskKind",
    "data",
    "demo",
    "layers",
    "features",
    "models",
    "serving",
    "tasks",
    "__version__",
]
