"""Raw features in, one dense representation out: lookups, embeddings, normalization."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.features.schema import Categorical, IdType, Numeric, Schema


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


def _unused_oov_token(spec: Categorical) -> object:
    # Keras drops a leading vocabulary entry equal to its OOV token (-1 or "[UNK]"),
    # which would silently send a real id to the OOV bucket: pick a token not in use.
    vocabulary = set(spec.vocabulary or ())
    if spec.id_type is IdType.STRING:
        token = "[UNK]"
        while token in vocabulary:
            token = f"[{token}]"
        return token
    return -1 if -1 not in vocabulary else min(vocabulary) - 1


@keras.utils.register_keras_serializable(package="tfmtl")
class FeatureEncoder(keras.layers.Layer):
    """Turns a dict of raw features into one ``[batch, width]`` tensor.

    Categorical ids go through a Keras ``StringLookup``/``IntegerLookup`` (unknown
    ids land in the out-of-vocabulary buckets, index 0..num_oov_buckets-1) and an
    ``Embedding``; numeric values go through a Keras ``Normalization`` with the
    schema's mean and variance, after a NaN/Inf check that names the feature. The
    outputs are concatenated in schema order: all embeddings, then all numerics.

    Because the lookups live inside the model, an exported model takes raw ids and
    raw floats.

    Args:
      schema: A fully adapted :class:`~tfmtl.features.Schema`.

    Call args:
      features: dict of feature name to ``[batch]`` (or ``[batch, 1]``) tensor.

    Returns:
      ``[batch, output_dim]`` float32 tensor.

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.features.Schema([
    ...     tfmtl.features.Categorical("item", embedding_dim=2, vocabulary=("a", "b")),
    ...     tfmtl.features.Numeric("price", mean=1.0, variance=4.0)])
    >>> encoder = tfmtl.features.FeatureEncoder(schema)
    >>> encoder({"item": np.array(["a", "zzz"]), "price": np.array([3.0, 1.0])}).shape
    TensorShape([2, 3])
    """

    def __init__(self, schema: Schema, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not schema.is_adapted:
            missing = [spec.name for spec in schema if not spec.is_adapted]
            raise ValueError(
                f"features {missing} have no vocabulary or statistics yet: call schema = schema.adapt(data) "
                "before building a model"
            )
        self.schema = schema
        self.lookups: dict[str, keras.layers.Layer] = {}
        self.embeddings: dict[str, keras.layers.Layer] = {}
        self.normalizers: dict[str, keras.layers.Layer] = {}
        for spec in schema:
            if isinstance(spec, Categorical):
                lookup_cls = _StringLookup if spec.id_type is IdType.STRING else _IntegerLookup
                self.lookups[spec.name] = lookup_cls(
                    # A numpy array, not a list: tf_keras tracks list attributes and walks
                    # them on every layer call (seconds per call for a 1M-id vocabulary).
                    vocabulary=np.asarray(spec.vocabulary, dtype=np.int64 if spec.id_type is IdType.INT64 else str),
                    num_oov_indices=spec.num_oov_buckets,
                    mask_token=None,
                    oov_token=_unused_oov_token(spec),
                    name=f"{spec.name}_lookup",
                )
                self.embeddings[spec.name] = keras.layers.Embedding(
                    spec.table_size, spec.embedding_dim, name=f"{spec.name}_embedding"
                )
            else:
                self.normalizers[spec.name] = keras.layers.Normalization(
                    axis=None, mean=spec.mean, variance=spec.variance, name=f"{spec.name}_normalization"
                )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "schema": self.schema.get_config()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "FeatureEncoder":
        config = dict(config)
        return cls(Schema.from_config(config.pop("schema")), **config)

    @property
    def output_dim(self) -> int:
        return sum(spec.embedding_dim for spec in self.schema if isinstance(spec, Categorical)) + sum(
            1 for spec in self.schema if isinstance(spec, Numeric)
        )

    def embed(self, features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Per-feature ``[batch, dim]`` representations, keyed by feature name."""
        outputs = {}
        for spec in self.schema:
            value = tf.reshape(features[spec.name], [-1])  # [B]
            if isinstance(spec, Categorical):
                outputs[spec.name] = self.embeddings[spec.name](self.lookups[spec.name](value))  # [B, dim]
            else:
                value = tf.debugging.check_numerics(
                    tf.cast(value, tf.float32), f"numeric feature '{spec.name}' contains NaN or Inf"
                )
                outputs[spec.name] = tf.reshape(self.normalizers[spec.name](value), [-1, 1])  # [B, 1]
        return outputs

    def call(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        embedded = self.embed(features)
        ordered = [embedded[spec.name] for spec in self.schema if isinstance(spec, Categorical)]
        ordered += [embedded[spec.name] for spec in self.schema if isinstance(spec, Numeric)]
        return tf.concat(ordered, axis=-1)  # [B, output_dim]
