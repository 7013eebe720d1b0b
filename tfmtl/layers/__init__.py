"""Building blocks shared by the multi-task architectures."""

from tfmtl.layers.experts import Experts
from tfmtl.layers.mixture import MixtureOfExperts

__all__ = ["Experts", "MixtureOfExperts"]
