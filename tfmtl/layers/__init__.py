"""Building blocks shared by the multi-task architectures."""

from tfmtl.layers.experts import Experts
from tfmtl.layers.extraction import ExtractionLayer
from tfmtl.layers.funnel import FunnelProduct
from tfmtl.layers.gate import ExpertGate, mix_experts
from tfmtl.layers.mixture import MixtureOfExperts
from tfmtl.layers.mlp import MLP

__all__ = ["ExpertGate", "Experts", "ExtractionLayer", "FunnelProduct", "MLP", "MixtureOfExperts", "mix_experts"]
