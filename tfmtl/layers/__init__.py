"""Building blocks shared by the multi-task architectures."""

from tfmtl.layers.experts import Experts
from tfmtl.layers.extraction import ExtractionLayer
from tfmtl.layers.gate import ExpertGate, GateOptions, mix_experts
from tfmtl.layers.interaction import Cross, Dot, FeatureDotInteraction, Interaction
from tfmtl.layers.mixture import MixtureOfExperts
from tfmtl.layers.mlp import MLP
from tfmtl.layers.pepnet import EPNet, GateNU, PPNet
from tfmtl.layers.regularization import Regularization, clone_initializer
from tfmtl.layers.star import PartitionedNormalization, StarFCN, StarNetwork
from tfmtl.layers.transfer import AdaptiveInformationTransfer

__all__ = [
    "AdaptiveInformationTransfer",
    "Cross",
    "Dot",
    "EPNet",
    "ExpertGate",
    "Experts",
    "ExtractionLayer",
    "FeatureDotInteraction",
    "GateNU",
    "GateOptions",
    "Interaction",
    "MLP",
    "MixtureOfExperts",
    "PPNet",
    "PartitionedNormalization",
    "Regularization",
    "StarFCN",
    "StarNetwork",
    "clone_initializer",
    "mix_experts",
]
