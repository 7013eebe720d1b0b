"""Feature specs, the schema, and the layers that encode raw features."""

from tfmtl.features.encoder import FeatureEncoder
from tfmtl.features.pooling import SequencePooling, TargetAttention
from tfmtl.features.schema import (
    PAD_INT64,
    PAD_STRING,
    Bucketized,
    Categorical,
    DenseVector,
    Feature,
    FeatureKind,
    IdType,
    MultiValued,
    Numeric,
    Pooling,
    PretrainedTable,
    Schema,
    Sequence,
    pad_sequences,
)

__all__ = [
    "PAD_INT64",
    "PAD_STRING",
    "Bucketized",
    "Categorical",
    "DenseVector",
    "Feature",
    "FeatureEncoder",
    "FeatureKind",
    "IdType",
    "MultiValued",
    "Numeric",
    "Pooling",
    "PretrainedTable",
    "Schema",
    "Sequence",
    "SequencePooling",
    "TargetAttention",
    "pad_sequences",
]
