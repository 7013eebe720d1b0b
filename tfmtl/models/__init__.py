"""Multi-task architectures, all returning a :class:`MultiTaskModel`, and the one path they take (:func:`build_model`)."""

from tfmtl.models.adatt import adatt
from tfmtl.models.aitm import aitm
from tfmtl.models.builder import Body, EncodedFeatures, build_model
from tfmtl.models.esmm import esmm
from tfmtl.models.home import home
from tfmtl.models.mmoe import mmoe
from tfmtl.models.model import MultiTaskModel
from tfmtl.models.omoe import omoe
from tfmtl.models.pepnet import pepnet
from tfmtl.models.ple import cgc, ple
from tfmtl.models.shared_bottom import shared_bottom
from tfmtl.models.star import star
from tfmtl.models.stem import stem

__all__ = [
    "Body",
    "EncodedFeatures",
    "MultiTaskModel",
    "adatt",
    "aitm",
    "build_model",
    "cgc",
    "esmm",
    "home",
    "mmoe",
    "omoe",
    "pepnet",
    "ple",
    "shared_bottom",
    "star",
    "stem",
]
