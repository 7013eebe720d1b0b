"""Multi-task architectures, all returning a :class:`MultiTaskModel`."""

from tfmtl.models.mmoe import mmoe
from tfmtl.models.model import MultiTaskModel
from tfmtl.models.shared_bottom import shared_bottom

__all__ = ["MultiTaskModel", "mmoe", "shared_bottom"]
