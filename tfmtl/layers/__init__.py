"""Building blocks shared by the multi-task architectures."""

from tfmtl.layers.adatt import AdaptiveTaskFusion
from tfmtl.layers.dselect import DSelectKGate
from tfmtl.layers.experts import Experts
from tfmtl.layers.extraction import ExtractionLayer
from tfmtl.layers.gate import ExpertGate, GateOptions, make_gate, mix_experts
from tfmtl.layers.home import HierarchyOfExperts
from tfmtl.layers.normalized_experts import NormalizedExperts
from tfmtl.layers.interaction import Cross, Dot, FeatureDotInteraction, Interaction
from tfmtl.layers.mixture import MixtureOfExperts
from tfmtl.layers.mlp import MLP
from tfmtl.layers.pepnet import EPNet, GateNU, PPNet
from tfmtl.layers.regularization import Regularization, clone_initializer
from tfmtl.layers.star import PartitionedNormalization, StarFCN, StarNetwork
from tfmtl.layers.stem import StemLayer
from tfmtl.layers.transfer import AdaptiveInformationTransfer

__all__ = [
    "AdaptiveInformationTransfer",
    "AdaptiveTaskFusion",
    "Cross",
    "DSelectKGate",
    "Dot",
    "EPNet",
    "ExpertGate",
    "Experts",
    "ExtractionLayer",
    "FeatureDotInteraction",
    "GateNU",
    "GateOptions",
    "HierarchyOfExperts",
    "Interaction",
    "MLP",
    "MixtureOfExperts",
    "NormalizedExperts",
    "PPNet",
    "PartitionedNormalization",
    "Regularization",
    "StarFCN",
    "StarNetwork",
    "StemLayer",
    "clone_initializer",
    "make_gate",
    "mix_experts",
]
