"""Multi-task architectures, all returning a :class:`MultiTaskModel`."""

from tfmtl.models.aitm import aitm
from tfmtl.models.esmm import esmm
from tfmtl.models.home import home
from tfmtl.models.mmoe import mmoe
from tfmtl.models.model import MultiTaskModel
from tfmtl.models.omoe import omoe
from tfmtl.models.ple import cgc, ple
from tfmtl.models.shared_bottom import shared_bottom

__all__ = ["MultiTaskModel", "aitm", "cgc", "esmm", "home", "mmoe", "omoe", "ple", "shared_bottom"]
