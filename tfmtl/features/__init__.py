"""Feature specs, the schema, and the layer that encodes raw features."""

from tfmtl.features.encoder import FeatureEncoder
from tfmtl.features.schema import Categorical, Feature, FeatureKind, IdType, Numeric, Schema

__all__ = ["Categorical", "Feature", "FeatureEncoder", "FeatureKind", "IdType", "Numeric", "Schema"]
