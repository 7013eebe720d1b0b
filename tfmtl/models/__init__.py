"""Multi-task architectures, all returning a :class:`MultiTaskModel`, and the one path they take (:func:`build_model`)."""

from tfmtl.models.aitm import aitm
from tfmtl.models.builder import Body, EncodedFeatures, build_model
from tfmtl.models.esmm import esmm
from tfmtl.models.mmoe import mmoe
from tfmtl.models.model import MultiTaskModel
from tfmtl.models.omoe import omoe
from tfmtl.models.pepnet import pepnet
from tfmtl.models.ple import cgc, ple
from tfmtl.models.shared_bottom import shared_bottom
from tfmtl.models.star import star

__all__ = [
    "Body",
    "EncodedFeatures",
    "MultiTaskModel",
    "aitm",
    "build_model",
    "cgc",
    "esmm",
    "mmoe",
    "omoe",
    "pepnet",
    "ple",
    "shared_bottom",
    "star",
]
