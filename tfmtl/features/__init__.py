"""Feature specs, the schema, and the layers that encode raw features."""

from tfmtl.features.encoder import FeatureEncoder
from tfmtl.features.preprocessing import FeaturePreprocessor
from tfmtl.features.bucketized import Bucketized
from tfmtl.features.categorical import Categorical
from tfmtl.features.dense_vector import DenseVector
from tfmtl.features.kinds import PAD_INT64, PAD_STRING, EmbeddingTable, FeatureKind, IdType, Pooling
from tfmtl.features.multi_valued import MultiValued
from tfmtl.features.numeric import Numeric, PeriodicEmbedding
from tfmtl.features.pretrained_table import PretrainedTable
from tfmtl.features.schema import Feature, Schema
from tfmtl.features.sequence import Sequence, SequencePooling, TargetAttention, pad_sequences

__all__ = [
    "PAD_INT64",
    "PAD_STRING",
    "Bucketized",
    "Categorical",
    "DenseVector",
    "EmbeddingTable",
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
