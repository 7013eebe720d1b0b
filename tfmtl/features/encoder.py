"""The trainable stage's first layer: preprocessed ids and values in, one dense representation out."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.features.periodic import PeriodicEmbedding
from tfmtl.features.pooling import SequencePooling, TargetAttention
from tfmtl.features.ids import Sequence
from tfmtl.features.kinds import FeatureKind, Pooling
from tfmtl.features.preprocessing import FeaturePreprocessor, check_adapted
from tfmtl.features.schema import Schema


_POOLED = (FeatureKind.SEQUENCE, FeatureKind.MULTI_VALUED)


@keras.utils.register_keras_serializable(package="tfmtl")
class FeatureEncoder(keras.layers.Layer):
    """Turns a dict of preprocessed features into one ``[batch, width]`` tensor.

    The trainable stage's first layer: it reads what
    :class:`~tfmtl.features.FeaturePreprocessor` produced (int64 table rows,
    standardized floats), so it holds only numeric ops (it compiles with XLA and
    runs on an accelerator). Per feature kind (see :mod:`tfmtl.features.ids` and
    :mod:`tfmtl.features.values`):

    * categorical rows go through an ``Embedding``; features naming the same table
      share it, built once;
    * sequence and multi-valued rows (``-1`` at padding) go through their table's
      embedding, then a masked :class:`~tfmtl.features.SequencePooling` (mean, sum,
      max) or a :class:`~tfmtl.features.TargetAttention` with the query feature's
      embedding;
    * standardized numeric values pass as one number or, with ``embedding_dim``,
      through a :class:`~tfmtl.features.PeriodicEmbedding`;
    * buckets go through an ``Embedding``;
    * dense vectors get an optional ``Dense`` projection;
    * pretrained-table rows go through a frozen (non-trainable) ``Embedding``
      holding the vectors, row 0 (unknown ids) all zeros, and an optional projection.

    The outputs are concatenated in schema order, except that the numeric features
    passed on as one standardized value come last (:attr:`scalar_features`; see
    :meth:`output_widths`). A model holds both stages, so an exported model takes raw
    ids, raw floats and raw vectors.

    Args:
      schema: A fully adapted :class:`~tfmtl.features.Schema`.

    Call args:
      features: dict of input name to preprocessed tensor, as a
        :class:`~tfmtl.features.FeaturePreprocessor` of the same schema returns.

    Returns:
      ``[batch, output_dim]`` tensor of the layer's compute dtype.

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.features.Schema([
    ...     tfmtl.features.Categorical("item", embedding_dim=2, vocabulary=("a", "b")),
    ...     tfmtl.features.Sequence("history", max_len=3, embedding_dim=2, vocabulary=("a", "b"), table="item"),
    ...     tfmtl.features.Numeric("price", mean=1.0, variance=4.0)])
    >>> preprocess, encoder = tfmtl.features.FeaturePreprocessor(schema), tfmtl.features.FeatureEncoder(schema)
    >>> encoder(preprocess({"item": np.array(["a", "zzz"]), "history": np.array([["b", "a", ""], ["", "", ""]]),
    ...                     "price": np.array([3.0, 1.0])})).shape
    TensorShape([2, 5])
    """

    def __init__(self, schema: Schema, **kwargs: Any) -> None:
        # Standardized numbers stay float32 under a mixed policy; the concatenated
        # output is cast to the compute dtype.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        check_adapted(schema)
        self.schema = schema
        # -- sub-layers: embeddings keyed by table (a feature's own name unless shared)
        self.embeddings: dict[str, keras.layers.Layer] = {}
        self.poolings: dict[str, keras.layers.Layer] = {}
        self.projections: dict[str, keras.layers.Layer] = {}
        self.periodic: dict[str, keras.layers.Layer] = {}
        for table, members in schema.tables.items():
            spec = members[0]  # the schema checked that all members agree
            self.embeddings[table] = keras.layers.Embedding(spec.table_size, spec.embedding_dim, name=f"{table}_embedding")
        for spec in schema:
            if spec.kind in _POOLED:
                self.poolings[spec.name] = (
                    TargetAttention(spec.attention_units, name=f"{spec.name}_attention")
                    if spec.pooling is Pooling.ATTENTION
                    else SequencePooling(spec.pooling, name=f"{spec.name}_pooling")
                )
            elif spec.kind is FeatureKind.NUMERIC:
                if spec.embedding_dim:
                    self.periodic[spec.name] = PeriodicEmbedding(
                        spec.frequencies, spec.embedding_dim, spec.frequency_scale, name=f"{spec.name}_periodic"
                    )
            elif spec.kind is FeatureKind.BUCKETIZED:
                self.embeddings[spec.name] = keras.layers.Embedding(
                    spec.table_size, spec.embedding_dim, name=f"{spec.name}_embedding"
                )
            elif spec.kind is FeatureKind.PRETRAINED_TABLE:
                frozen = keras.layers.Embedding(
                    len(spec.vectors) + 1, spec.vectors.dim, trainable=False, name=f"{spec.name}_embedding"
                )
                frozen.build((None,))
                frozen.set_weights([np.concatenate([np.zeros([1, spec.vectors.dim], np.float32), spec.vectors.matrix])])
                self.embeddings[spec.name] = frozen
            if getattr(spec, "projection_dim", None):
                self.projections[spec.name] = keras.layers.Dense(spec.projection_dim, name=f"{spec.name}_projection")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "schema": self.schema.get_config()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "FeatureEncoder":
        config = dict(config)
        return cls(Schema.from_config(config.pop("schema")), **config)

    # -- wiring ------------------------------------------------------------
    @property
    def scalar_features(self) -> list[str]:
        """The numeric features passed on as one standardized value: the output's last columns, in schema order."""
        return [spec.name for spec in self.schema if spec.kind is FeatureKind.NUMERIC and not spec.embedding_dim]

    def output_widths(self) -> list[tuple[str, int]]:
        """``(feature, width)`` of each slice of the output, in output order (:attr:`scalar_features` last)."""
        scalars = self.scalar_features
        widths = []
        for spec in self.schema:
            if spec.kind in (FeatureKind.DENSE_VECTOR, FeatureKind.PRETRAINED_TABLE, FeatureKind.NUMERIC):
                if spec.name not in scalars:
                    widths.append((spec.name, spec.output_dim))
            else:
                widths.append((spec.name, spec.embedding_dim))
        return widths + [(name, 1) for name in scalars]

    @property
    def output_dim(self) -> int:
        return sum(width for _, width in self.output_widths())

    def embed(self, features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Per-feature ``[batch, width]`` representations of preprocessed features, keyed by feature name."""
        outputs = {}
        for spec in self.schema:
            value = features[spec.name]
            if spec.kind is FeatureKind.CATEGORICAL:
                outputs[spec.name] = self.embeddings[spec.table_name](value)  # [B, D]
            elif spec.kind is FeatureKind.NUMERIC:
                value = tf.reshape(tf.cast(value, tf.float32), [-1, 1])  # [B, 1]
                outputs[spec.name] = self.periodic[spec.name](value) if spec.name in self.periodic else value  # [B, D]
            elif spec.kind in (FeatureKind.BUCKETIZED, FeatureKind.PRETRAINED_TABLE):
                outputs[spec.name] = self.embeddings[spec.name](value)  # [B, D]
            elif spec.kind is FeatureKind.DENSE_VECTOR:
                outputs[spec.name] = tf.cast(value, tf.float32)  # [B, dim]
            if spec.name in self.projections:
                outputs[spec.name] = self.projections[spec.name](outputs[spec.name])
        for spec in self.schema:  # pooled last: attention needs its query's embedding
            if spec.kind in _POOLED:
                outputs[spec.name] = self._pool(spec, features, outputs)
        return outputs

    def _pool(self, spec: Sequence, features: Mapping[str, tf.Tensor], outputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        rows = features[spec.name]  # [B, L], -1 at padding
        mask = rows >= 0  # [B, L]
        keys = self.embeddings[spec.table_name](tf.maximum(rows, 0))  # [B, L, D]
        pooling = self.poolings[spec.name]
        if spec.pooling is Pooling.ATTENTION:
            return pooling(outputs[spec.query], keys, mask)  # [B, D]
        weights = features[spec.weights_name] if spec.weighted else None
        return pooling(keys, mask, weights)  # [B, D]

    def call(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        embedded = self.embed(features)
        parts = [tf.cast(embedded[name], self.compute_dtype) for name, _ in self.output_widths()]
        return tf.concat(parts, axis=-1)  # [B, output_dim]


__all__ = ["FeatureEncoder", "FeaturePreprocessor"]
