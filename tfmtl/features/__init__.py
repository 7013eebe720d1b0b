"""Feature specs, the schema, and the layers that encode raw features."""

from tfmtl.features.encoder import FeatureEncoder
from tfmtl.features.preprocessing import FeaturePreprocessor
from tfmtl.features.periodic import PeriodicEmbedding
from tfmtl.features.pooling import SequencePooling, TargetAttention
from tfmtl.features.ids import Categorical, MultiValued, Sequence, pad_sequences
from tfmtl.features.kinds import PAD_INT64, PAD_STRING, FeatureKind, IdType, Pooling
from tfmtl.features.schema import Feature, Schema
from tfmtl.features.values import Bucketized, DenseVector, Numeric, PretrainedTable

__all__ = [
    "PAD_INT64",
    "PAD_STRING",
    "Bucketized",
    "Categorical",
    "DenseVector",
    "Feature",
    "FeatureEncoder",
    "FeaturePreprocessor",
    "FeatureKind",
    "IdType",
    "MultiValued",
    "Numeric",
    "PeriodicEmbedding",
    "Pooling",
    "PretrainedTable",
    "Schema",
    "Sequence",
    "SequencePooling",
    "TargetAttention",
    "pad_sequences",
]
