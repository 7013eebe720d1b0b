"""Raw features in, one dense representation out: lookups, embeddings, normalization."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.features.periodic import PeriodicEmbedding
from tfmtl.features.pooling import SequencePooling, TargetAttention
from tfmtl.features.ids import Categorical, Sequence
from tfmtl.features.kinds import FeatureKind, IdType, Pooling, transform_values
from tfmtl.features.schema import Schema
from tfmtl.features.values import PretrainedTable


class _SchemaVocabulary:
    """Lookup layers whose vocabulary the FeatureEncoder's config (the schema) carries.

    Keras's own asset files for lookup layers are then redundant, and its
    ``save_assets`` cannot handle the numpy vocabularies used here.
    """

    def save_assets(self, dir_path: str) -> None:
        pass

    def load_assets(self, dir_path: str) -> None:
        pass


class _StringLookup(_SchemaVocabulary, keras.layers.StringLookup):
    pass


class _IntegerLookup(_SchemaVocabulary, keras.layers.IntegerLookup):
    pass


def _unused_oov_token(spec: Categorical | PretrainedTable) -> object:
    # Keras drops a leading vocabulary entry equal to its OOV token (-1 or "[UNK]"),
    # which would silently send a real id to the OOV bucket: pick a token not in use.
    vocabulary = set(spec.vectors.ids if isinstance(spec, PretrainedTable) else spec.vocabulary or ())
    if spec.id_type is IdType.STRING:
        token = "[UNK]"
        while token in vocabulary:
            token = f"[{token}]"
        return token
    return -1 if -1 not in vocabulary else min(vocabulary) - 1


def _vocabulary_lookup(spec: Categorical | PretrainedTable, vocabulary: Any, num_oov: int, name: str) -> Any:
    lookup_cls = _StringLookup if spec.id_type is IdType.STRING else _IntegerLookup
    return lookup_cls(
        # A numpy array, not a list: tf_keras tracks list attributes and walks
        # them on every layer call (seconds per call for a 1M-id vocabulary).
        vocabulary=np.asarray(vocabulary, dtype=np.int64 if spec.id_type is IdType.INT64 else str),
        num_oov_indices=num_oov,
        mask_token=None,
        oov_token=_unused_oov_token(spec),
        name=name,
    )


def _checked(value: tf.Tensor, name: str) -> tf.Tensor:
    return tf.debugging.check_numerics(tf.cast(value, tf.float32), f"numeric feature '{name}' contains NaN or Inf")


_POOLED = (FeatureKind.SEQUENCE, FeatureKind.MULTI_VALUED)


@keras.utils.register_keras_serializable(package="tfmtl")
class FeatureEncoder(keras.layers.Layer):
    """Turns a dict of raw features into one ``[batch, width]`` tensor.

    Per feature kind (see :mod:`tfmtl.features.ids` and :mod:`tfmtl.features.values`):

    * categorical ids go through a Keras ``StringLookup``/``IntegerLookup`` (unknown
      ids land in the out-of-vocabulary buckets, index 0..num_oov_buckets-1) or a
      Keras ``Hashing`` (``num_hash_bins``), then an ``Embedding``; features naming
      the same table share both, built once;
    * sequence and multi-valued ids go through their table's lookup and embedding,
      then a masked :class:`~tfmtl.features.SequencePooling` (mean, sum, max) or a
      :class:`~tfmtl.features.TargetAttention` with the query feature's embedding;
    * numeric values get a NaN/Inf check that names the feature, the optional
      clip/log transform and a Keras ``Normalization`` (the schema's mean and variance),
      then, with ``embedding_dim``, a :class:`~tfmtl.features.PeriodicEmbedding`;
    * bucketized values get the same check and transform, a Keras
      ``Discretization`` and an ``Embedding``;
    * dense vectors get the NaN/Inf check and an optional ``Dense`` projection;
    * pretrained-table ids get a lookup into a frozen (non-trainable) ``Embedding``
      holding the vectors, row 0 (unknown ids) all zeros, and an optional projection.

    The outputs are concatenated in schema order, except that the numeric features
    passed on as one standardized value come last (:attr:`scalar_features`; see
    :meth:`output_widths`). Everything lives inside the model, so an exported model
    takes raw ids, raw floats and raw vectors.

    Args:
      schema: A fully adapted :class:`~tfmtl.features.Schema`.

    Call args:
      features: dict of input name to tensor, shaped as ``schema.input_specs()``.

    Returns:
      ``[batch, output_dim]`` float32 tensor.

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.features.Schema([
    ...     tfmtl.features.Categorical("item", embedding_dim=2, vocabulary=("a", "b")),
    ...     tfmtl.features.Sequence("history", max_len=3, embedding_dim=2, vocabulary=("a", "b"), table="item"),
    ...     tfmtl.features.Numeric("price", mean=1.0, variance=4.0)])
    >>> encoder = tfmtl.features.FeatureEncoder(schema)
    >>> encoder({"item": np.array(["a", "zzz"]), "history": np.array([["b", "a", ""], ["", "", ""]]),
    ...          "price": np.array([3.0, 1.0])}).shape
    TensorShape([2, 5])
    """

    def __init__(self, schema: Schema, **kwargs: Any) -> None:
        # Raw numbers stay float32 under a mixed policy (no float16 overflow before the
        # log/standardization); the concatenated output is cast to the compute dtype.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if not schema.is_adapted:
            missing = [spec.name for spec in schema if not spec.is_adapted]
            raise ValueError(
                f"features {missing} have no vocabulary or statistics yet: call schema = schema.adapt(data) "
                "before building a model"
            )
        self.schema = schema
        # -- sub-layers: lookups and embeddings keyed by table (a feature's own name unless shared)
        self.lookups: dict[str, keras.layers.Layer] = {}
        self.embeddings: dict[str, keras.layers.Layer] = {}
        self.normalizers: dict[str, keras.layers.Layer] = {}
        self.discretizers: dict[str, keras.layers.Layer] = {}
        self.poolings: dict[str, keras.layers.Layer] = {}
        self.projections: dict[str, keras.layers.Layer] = {}
        self.periodic: dict[str, keras.layers.Layer] = {}
        for table, members in schema.tables.items():
            spec = members[0]  # the schema checked that all members agree
            if spec.num_hash_bins is not None:
                self.lookups[table] = keras.layers.Hashing(spec.num_hash_bins, salt=spec.salt, name=f"{table}_lookup")
            else:
                self.lookups[table] = _vocabulary_lookup(spec, spec.vocabulary, spec.num_oov_buckets, f"{table}_lookup")
            self.embeddings[table] = keras.layers.Embedding(spec.table_size, spec.embedding_dim, name=f"{table}_embedding")
        for spec in schema:
            if spec.kind in _POOLED:
                self.poolings[spec.name] = (
                    TargetAttention(spec.attention_units, name=f"{spec.name}_attention")
                    if spec.pooling is Pooling.ATTENTION
                    else SequencePooling(spec.pooling, name=f"{spec.name}_pooling")
                )
            elif spec.kind is FeatureKind.NUMERIC:
                self.normalizers[spec.name] = keras.layers.Normalization(
                    axis=None, mean=spec.mean, variance=spec.variance, name=f"{spec.name}_normalization"
                )
                if spec.embedding_dim:
                    self.periodic[spec.name] = PeriodicEmbedding(
                        spec.frequencies, spec.embedding_dim, spec.frequency_scale, name=f"{spec.name}_periodic"
                    )
            elif spec.kind is FeatureKind.BUCKETIZED:
                self.discretizers[spec.name] = keras.layers.Discretization(
                    bin_boundaries=list(spec.boundaries), name=f"{spec.name}_discretization"
                )
                self.embeddings[spec.name] = keras.layers.Embedding(
                    spec.table_size, spec.embedding_dim, name=f"{spec.name}_embedding"
                )
            elif spec.kind is FeatureKind.PRETRAINED_TABLE:
                self.lookups[spec.name] = _vocabulary_lookup(spec, spec.vectors.ids, 1, f"{spec.name}_lookup")
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

    def _table(self, table: str, ids: tf.Tensor) -> tf.Tensor:
        return self.embeddings[table](self.lookups[table](ids))  # [B, D] or [B, L, D]

    def embed(self, features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Per-feature ``[batch, width]`` representations, keyed by feature name."""
        outputs = {}
        for spec in self.schema:
            value = features[spec.name]
            if spec.kind is FeatureKind.CATEGORICAL:
                outputs[spec.name] = self._table(spec.table_name, tf.reshape(value, [-1]))  # [B, D]
            elif spec.kind is FeatureKind.NUMERIC:
                value = transform_values(_checked(tf.reshape(value, [-1]), spec.name), spec.clip, spec.log)
                value = tf.reshape(self.normalizers[spec.name](value), [-1, 1])  # [B, 1]
                outputs[spec.name] = self.periodic[spec.name](value) if spec.name in self.periodic else value  # [B, D]
            elif spec.kind is FeatureKind.BUCKETIZED:
                value = transform_values(_checked(tf.reshape(value, [-1]), spec.name), spec.clip, spec.log)
                outputs[spec.name] = self.embeddings[spec.name](self.discretizers[spec.name](value))  # [B, D]
            elif spec.kind is FeatureKind.DENSE_VECTOR:
                outputs[spec.name] = _checked(value, spec.name)  # [B, dim]
            elif spec.kind is FeatureKind.PRETRAINED_TABLE:
                outputs[spec.name] = self._table(spec.name, tf.reshape(value, [-1]))  # [B, dim]
            if spec.name in self.projections:
                outputs[spec.name] = self.projections[spec.name](outputs[spec.name])
        for spec in self.schema:  # pooled last: attention needs its query's embedding
            if spec.kind in _POOLED:
                outputs[spec.name] = self._pool(spec, features, outputs)
        return outputs

    def _pool(self, spec: Sequence, features: Mapping[str, tf.Tensor], outputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        ids = features[spec.name]  # [B, L]
        mask = tf.not_equal(ids, tf.constant(spec.id_type.pad, ids.dtype))  # [B, L]
        keys = self._table(spec.table_name, ids)  # [B, L, D]
        pooling = self.poolings[spec.name]
        if spec.pooling is Pooling.ATTENTION:
            return pooling(outputs[spec.query], keys, mask)  # [B, D]
        weights = features[spec.weights_name] if spec.weighted else None
        return pooling(keys, mask, weights)  # [B, D]

    def call(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        embedded = self.embed(features)
        parts = [tf.cast(embedded[name], self.compute_dtype) for name, _ in self.output_widths()]
        return tf.concat(parts, axis=-1)  # [B, output_dim]
