"""The preprocessing stage: raw feature values in, what the trainable stage reads out.

Every raw input passes through :class:`FeaturePreprocessor`, whatever the entry point
(``fit``, ``evaluate``, ``predict``, ``model(x)``, the readers' ``tf.data`` pipelines,
the export's signatures): :meth:`~tfmtl.features.Schema.conform` checks names, dtypes
and shapes (padding or truncating sequences), and the stage rejects NaN/Inf naming the
feature. (The file readers also check each column as they parse it, naming the file,
row and column; the entry points check labels before Keras.) It then maps
each input to what the trainable stage (:class:`~tfmtl.features.FeatureEncoder`) needs:

=====================  ==========================================================
kind                   preprocessed value (same key as the raw input)
=====================  ==========================================================
``Categorical``        ``[B]`` int64 row of its embedding table (vocabulary lookup
                       with OOV buckets, or hash bin)
``Sequence``,          ``[B, max_len]`` int64 rows, ``-1`` at padding positions;
``MultiValued``        ``<name>_weights`` ``[B, max_len]`` float32 (checked)
``Numeric``            ``[B]`` float32, clipped/log-transformed and standardized
``Bucketized``         ``[B]`` int64 bucket
``DenseVector``        ``[B, dim]`` float32 (checked)
``PretrainedTable``    ``[B]`` int64 row of the frozen table (0: unknown id)
=====================  ==========================================================

The lookups and hashing are hash-table and string ops: they stay here, on the host or
in ``tf.data``, so the trainable stage holds only numeric ops and compiles with XLA.

A batch preprocessed in ``tf.data`` (:meth:`FeaturePreprocessor.for_dataset`) also
carries :data:`SCHEMA_KEY`, the schema's fingerprint; a model given such a batch checks
that the fingerprint is its own, so ids looked up with another vocabulary are an error,
never a silent wrong answer.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from tfmtl._compat import keras, tf
from tfmtl.features.schema import Schema

#: Key of the schema fingerprint in a batch preprocessed in ``tf.data``.
#: (``:`` cannot occur in a feature name, so it never collides with one.)
SCHEMA_KEY = "tfmtl:schema"

def schema_fingerprint(schema: Schema) -> int:
    """A 62-bit fingerprint of everything in ``schema`` that preprocessing depends on.

    Embedding widths are left out: they shape only the trainable stage (STEM widens them
    and reads batches preprocessed with the schema it was given).

    Example:

    >>> import tfmtl
    >>> a = tfmtl.Schema([tfmtl.Numeric("x", mean=0.0, variance=1.0)])
    >>> b = tfmtl.Schema([tfmtl.Numeric("x", mean=1.0, variance=1.0)])
    >>> schema_fingerprint(a) == schema_fingerprint(a), schema_fingerprint(a) == schema_fingerprint(b)
    (True, False)
    """
    config = schema.get_config()
    features = [{key: value for key, value in feature.items() if key != "embedding_dim"}
                for feature in config.get("features", [])]
    text = json.dumps({**config, "features": features}, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 2


def check_adapted(schema: Schema) -> None:
    """Raise a ValueError naming the features that still need :meth:`Schema.adapt`."""
    if not schema.is_adapted:
        missing = [spec.name for spec in schema if not spec.is_adapted]
        raise ValueError(
            f"features {missing} have no vocabulary or statistics yet: call schema = schema.adapt(data) "
            "before building a model"
        )


def is_preprocessed(features: Any) -> bool:
    """True for a batch that :meth:`FeaturePreprocessor.for_dataset` produced."""
    return isinstance(features, Mapping) and SCHEMA_KEY in features


def _checked_shapes(schema: Schema, features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Shapes checked when the graph runs, too: a signature's input may be fed a tensor of another shape.

    (TensorFlow's C++ session and ``tf.saved_model.load`` do not check a fed tensor
    against the signature's shape; ``EnsureShape`` does, naming the input.)
    """
    checked, first = {}, None
    for name, spec in schema.input_specs().items():
        tensor = tf.ensure_shape(features[name], spec.shape)
        rows = tf.shape(tensor)[0]
        if first is None:
            first = (name, rows)
        else:
            with tf.control_dependencies([tf.debugging.assert_equal(
                rows, first[1], message=f"feature {name!r} and feature {first[0]!r} have different numbers of rows",
            )]):
                tensor = tf.identity(tensor)
        checked[name] = tensor
    return checked


@keras.utils.register_keras_serializable(package="tfmtl")
class FeaturePreprocessor(keras.layers.Layer):
    """Raw features in, the trainable stage's ids and standardized values out (see the module docstring).

    It has no trainable weights. Numeric statistics and bucket boundaries are
    constants and vocabularies are static hash tables, so every replica, worker or
    ``tf.data`` pipeline holds its own copy and reads nothing remotely.

    Args:
      schema: A fully adapted :class:`~tfmtl.features.Schema`.

    Call args:
      features: dict of raw input name to values, as ``schema.input_specs()``
        (checked and conformed by :meth:`~tfmtl.features.Schema.conform` first).

    Returns:
      dict of input name to preprocessed tensor (the table in the module docstring).

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.Schema([
    ...     tfmtl.Categorical("item", embedding_dim=2, vocabulary=("a", "b")),
    ...     tfmtl.features.Sequence("history", max_len=3, embedding_dim=2, vocabulary=("a", "b"), table="item"),
    ...     tfmtl.Numeric("price", mean=1.0, variance=4.0)])
    >>> out = tfmtl.features.FeaturePreprocessor(schema)(
    ...     {"item": ["b", "zzz"], "history": [["a", "b"], []], "price": [3.0, 1.0]})
    >>> out["item"].numpy().tolist(), out["history"].numpy().tolist(), out["price"].numpy().tolist()
    ([2, 0], [[1, 2, -1], [-1, -1, -1]], [1.0, 0.0])
    """

    #: While set (by an export that keeps fewer ids of some tables), lookups used in place of
    #: :attr:`lookups`' entries of the same tables. A class attribute: setting it adds nothing to
    #: what Keras tracks and saves.
    stored_lookups: Mapping[str, Any] | None = None

    def __init__(self, schema: Schema, **kwargs: Any) -> None:
        kwargs.setdefault("autocast", False)
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        check_adapted(schema)
        self.schema = schema
        self.fingerprint = schema_fingerprint(schema)
        # Lookup layers (vocabulary tables, hashing), built once per key: features
        # sharing an embedding table share its lookup.
        self.lookups: dict[str, keras.layers.Layer] = {}
        for spec in schema:
            shared = spec.lookup()
            if shared is not None and shared[0] not in self.lookups:
                self.lookups[shared[0]] = shared[1]()

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "schema": self.schema.get_config()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "FeaturePreprocessor":
        config = dict(config)
        return cls(Schema.from_config(config.pop("schema")), **config)

    def call(self, features: Mapping[str, Any]) -> dict[str, tf.Tensor]:
        features = _checked_shapes(self.schema, self.schema.conform(features))
        out: dict[str, tf.Tensor] = {}
        lookups = self.lookups if self.stored_lookups is None else {**self.lookups, **self.stored_lookups}
        for spec in self.schema:
            out.update(spec.preprocess(features, lookups))
        return out

    def for_dataset(self, features: Mapping[str, Any]) -> dict[str, tf.Tensor]:
        """:meth:`call`, plus the schema fingerprint (:data:`SCHEMA_KEY`, ``[B]`` int64): for ``tf.data`` maps."""
        out = self(features)
        rows = tf.shape(next(iter(out.values())))[0]
        out[SCHEMA_KEY] = tf.fill([rows], tf.constant(self.fingerprint, tf.int64))
        return out

    def strip(self, features: Mapping[str, Any]) -> dict[str, Any]:
        """A batch from :meth:`for_dataset` without its fingerprint, after checking that it is this schema's."""
        features = dict(features)
        fingerprint = features.pop(SCHEMA_KEY)
        tf.debugging.assert_equal(
            tf.cast(fingerprint, tf.int64), tf.constant(self.fingerprint, tf.int64),
            message="these batches were preprocessed with another schema (vocabularies or statistics differ "
            "from the model's): read them with the model's own schema",
        )
        expected = sorted(self.schema.input_specs())
        if sorted(features) != expected:
            raise ValueError(f"a preprocessed batch has inputs {sorted(features)}; the schema's are {expected}")
        return features


def dataset_preprocessor(schema: Schema) -> FeaturePreprocessor:
    """A :class:`FeaturePreprocessor` for ``tf.data`` maps, one per schema (its tables are built once)."""
    key = schema_fingerprint(schema)
    if key not in _DATASET_PREPROCESSORS:
        _DATASET_PREPROCESSORS[key] = FeaturePreprocessor(schema, name="dataset_preprocessing")
    return _DATASET_PREPROCESSORS[key]


_DATASET_PREPROCESSORS: dict[int, FeaturePreprocessor] = {}


__all__ = ["FeaturePreprocessor", "SCHEMA_KEY", "dataset_preprocessor", "is_preprocessed", "schema_fingerprint"]
