"""The trainable stage's first layer: preprocessed ids and values in, one dense representation out."""

from __future__ import annotations

from typing import Any, Mapping

from tfmtl._compat import keras, tf
from tfmtl.features.preprocessing import FeaturePreprocessor, check_adapted
from tfmtl.features.schema import Schema


@keras.utils.register_keras_serializable(package="tfmtl")
class FeatureEncoder(keras.layers.Layer):
    """Turns a dict of preprocessed features into one ``[batch, width]`` tensor.

    The trainable stage's first layer: it reads what
    :class:`~tfmtl.features.FeaturePreprocessor` produced (int64 table rows,
    standardized floats), so it holds only numeric ops (it compiles with XLA and
    runs on an accelerator). It is a mapping of per-kind encoders (:attr:`encoders`,
    one per feature, each from its kind's module, see :mod:`tfmtl.features.kinds`)
    over shared embedding tables (:attr:`embeddings`), plus the concatenation:

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
      embedding_l2: While training, ``embedding_l2 * sum ||row||^2`` over the distinct embedding
        rows each lookup of the batch reads (padding and frozen tables excluded) is added to the loss.

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

    def __init__(self, schema: Schema, embedding_l2: float = 0.0, **kwargs: Any) -> None:
        # Standardized numbers stay float32 under a mixed policy; the concatenated
        # output is cast to the compute dtype.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        check_adapted(schema)
        self.schema = schema
        #: Embedding layers keyed by table (a feature's own name unless shared), built once.
        self.embeddings: dict[str, keras.layers.Layer] = {}
        for spec in schema:
            shared = spec.embedding_table()
            if shared is not None and shared[0] not in self.embeddings:
                self.embeddings[shared[0]] = shared[1]()
        if not embedding_l2 >= 0:
            raise ValueError(f"embedding_l2 must be >= 0, got {embedding_l2!r}")
        self.embedding_l2 = float(embedding_l2)
        for table in self.embeddings.values():
            table.l2 = self.embedding_l2
        #: The per-kind encoder of each feature, keyed by feature name.
        self.encoders: dict[str, keras.layers.Layer] = {spec.name: spec.encoder(self.embeddings) for spec in schema}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "schema": self.schema.get_config(), "embedding_l2": self.embedding_l2}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "FeatureEncoder":
        config = dict(config)
        return cls(Schema.from_config(config.pop("schema")), **config)

    # -- wiring ------------------------------------------------------------
    @property
    def scalar_features(self) -> list[str]:
        """The numeric features passed on as one standardized value: the output's last columns, in schema order."""
        return [spec.name for spec in self.schema if spec.is_scalar]

    def output_widths(self) -> list[tuple[str, int]]:
        """``(feature, width)`` of each slice of the output, in output order (:attr:`scalar_features` last)."""
        vectors = [(spec.name, spec.output_dim) for spec in self.schema if not spec.is_scalar]
        return vectors + [(name, 1) for name in self.scalar_features]

    @property
    def output_dim(self) -> int:
        return sum(width for _, width in self.output_widths())

    def embed(self, features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Per-feature ``[batch, width]`` representations of preprocessed features, keyed by feature name."""
        outputs: dict[str, tf.Tensor] = {}
        pending = list(self.schema)
        while pending:  # a feature after those it depends on (an attention sequence after its query)
            ready = [spec for spec in pending if all(name in outputs for name in spec.depends_on)]
            if not ready:
                raise ValueError(f"features {[spec.name for spec in pending]} depend on each other")
            for spec in ready:
                outputs[spec.name] = self.encoders[spec.name](features, {name: outputs[name] for name in spec.depends_on})
            pending = [spec for spec in pending if spec.name not in outputs]
        return outputs

    def call(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        embedded = self.embed(features)
        parts = [tf.cast(embedded[name], self.compute_dtype) for name, _ in self.output_widths()]
        return tf.concat(parts, axis=-1)  # [B, output_dim]


__all__ = ["FeatureEncoder", "FeaturePreprocessor"]
