"""Building blocks shared by the multi-task architectures."""

from tfmtl.layers.experts import Experts
from tfmtl.layers.extraction import ExtractionLayer
from tfmtl.layers.funnel import FunnelProduct
from tfmtl.layers.gate import ExpertGate, GateOptions, mix_experts
from tfmtl.layers.home import HierarchyOfExperts, NormalizedExperts
from tfmtl.layers.interaction import Cross, Dot, FeatureDotInteraction, Interaction
from tfmtl.layers.mixture import MixtureOfExperts
from tfmtl.layers.mlp import MLP
from tfmtl.layers.transfer import AdaptiveInformationTransfer, FunnelHead

__all__ = [
    "AdaptiveInformationTransfer",
    "Cross",
    "Dot",
    "ExpertGate",
    "Experts",
    "ExtractionLayer",
    "FeatureDotInteraction",
    "FunnelHead",
    "FunnelProduct",
    "GateOptions",
    "HierarchyOfExperts",
    "Interaction",
    "MLP",
    "MixtureOfExperts",
    "NormalizedExperts",
    "mix_experts",
]
