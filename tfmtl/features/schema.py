"""Declarative feature specs: the single source of truth for inputs and serving.

A :class:`Schema` lists the raw features a model reads. From it tfmtl derives the
``keras.Input``s, the preprocessing (lookups, normalization), the embeddings and
the export's input signature, so training and serving always agree.

Every feature arrives as one value per example: a tensor of shape ``[batch]``
(``[batch, 1]`` is accepted too). Categorical ids are strings or int64; numeric
values are floats.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from typing import Any, Iterator, Mapping, Sequence, Union

import numpy as np

from tfmtl._compat import keras, tf

_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class FeatureKind(enum.Enum):
    """What a feature holds."""

    CATEGORICAL = "categorical"
    NUMERIC = "numeric"


class IdType(enum.Enum):
    """The raw type of a categorical feature's ids."""

    STRING = "string"
    INT64 = "int64"

    @property
    def tf_dtype(self) -> tf.DType:
        return tf.string if self is IdType.STRING else tf.int64


def check_name(name: str, what: str) -> str:
    """Return ``name`` if it is a valid feature/task name, else raise ValueError."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ValueError(
            f"invalid {what} name {name!r}: use letters, digits and underscores, "
            "starting with a letter or underscore (it becomes a Keras layer name "
            "and a TF Serving input/output key)"
        )
    return name


@dataclasses.dataclass(frozen=True)
class Categorical:
    """A categorical id feature, looked up in a vocabulary and embedded.

    Ids outside the vocabulary (for example new items at serving time) map to
    ``num_oov_buckets`` out-of-vocabulary buckets by hashing; they never raise.

    Args:
      name: Feature name: the input key in training data and at serving time.
      embedding_dim: Size of the learned embedding vector.
      vocabulary: Known ids. ``None`` means "learn it with :meth:`Schema.adapt`".
      id_type: ``IdType.STRING`` (default) or ``IdType.INT64``.
      num_oov_buckets: Buckets for ids not in the vocabulary (at least 1).
      max_vocabulary_size: When learning, keep only the most frequent ids.
      min_count: When learning, drop ids seen fewer times than this.

    Example:

    >>> import tfmtl
    >>> spec = tfmtl.features.Categorical("device", embedding_dim=4,
    ...                                   vocabulary=("ios", "android"))
    >>> spec.table_size  # 2 known ids + 1 out-of-vocabulary bucket
    3
    """

    name: str
    embedding_dim: int = 16
    vocabulary: tuple[Any, ...] | None = None
    id_type: IdType = IdType.STRING
    num_oov_buckets: int = 1
    max_vocabulary_size: int | None = None
    min_count: int = 1

    kind = FeatureKind.CATEGORICAL

    def __post_init__(self) -> None:
        check_name(self.name, "feature")
        if not isinstance(self.id_type, IdType):
            object.__setattr__(self, "id_type", IdType(self.id_type))
        if self.embedding_dim < 1:
            raise ValueError(f"feature {self.name!r}: embedding_dim must be >= 1, got {self.embedding_dim}")
        if self.num_oov_buckets < 1:
            raise ValueError(f"feature {self.name!r}: num_oov_buckets must be >= 1, got {self.num_oov_buckets}")
        if self.vocabulary is not None:
            vocab = tuple(_normalize_id(v, self.id_type, self.name) for v in self.vocabulary)
            if not vocab:
                raise ValueError(f"feature {self.name!r}: the vocabulary is empty")
            if len(set(vocab)) != len(vocab):
                raise ValueError(f"feature {self.name!r}: the vocabulary has duplicate ids")
            object.__setattr__(self, "vocabulary", vocab)

    @property
    def is_adapted(self) -> bool:
        return self.vocabulary is not None

    @property
    def table_size(self) -> int:
        """Rows of the embedding table: OOV buckets plus vocabulary."""
        if self.vocabulary is None:
            raise ValueError(f"feature {self.name!r} has no vocabulary yet: call schema.adapt(data) first")
        return len(self.vocabulary) + self.num_oov_buckets

    @property
    def dtype(self) -> tf.DType:
        return self.id_type.tf_dtype


@dataclasses.dataclass(frozen=True)
class Numeric:
    """A numeric feature, standardized as ``(x - mean) / sqrt(variance)``.

    NaN or infinite values are rejected with an error naming the feature, in
    training and at serving time.

    Args:
      name: Feature name.
      mean: Mean of the raw values. ``None`` means "learn it with :meth:`Schema.adapt`".
      variance: Variance of the raw values (learned together with ``mean``).

    Example:

    >>> import tfmtl
    >>> tfmtl.features.Numeric("price", mean=10.0, variance=4.0).is_adapted
    True
    """

    name: str
    mean: float | None = None
    variance: float | None = None

    kind = FeatureKind.NUMERIC

    def __post_init__(self) -> None:
        check_name(self.name, "feature")
        if (self.mean is None) != (self.variance is None):
            raise ValueError(f"feature {self.name!r}: give both mean and variance, or neither")
        if self.variance is not None and not self.variance >= 0:
            raise ValueError(f"feature {self.name!r}: variance must be >= 0, got {self.variance}")

    @property
    def is_adapted(self) -> bool:
        return self.mean is not None

    @property
    def dtype(self) -> tf.DType:
        return tf.float32


Feature = Union[Categorical, Numeric]


def _normalize_id(value: Any, id_type: IdType, feature: str) -> Any:
    if id_type is IdType.STRING:
        if isinstance(value, bytes):
            return value.decode("utf-8")
        if isinstance(value, (str, np.str_)):
            return str(value)
        raise TypeError(f"feature {feature!r}: string vocabulary holds a non-string id {value!r}")
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"feature {feature!r}: int64 vocabulary holds a non-integer id {value!r}")


class Schema:
    """An ordered, immutable collection of feature specs.

    Args:
      features: The feature specs. Names must be unique.

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.features.Schema([
    ...     tfmtl.features.Categorical("item", embedding_dim=4),
    ...     tfmtl.features.Numeric("price"),
    ... ])
    >>> schema = schema.adapt({"item": np.array(["a", "b", "a"]),
    ...                        "price": np.array([1.0, 2.0, 3.0])})
    >>> schema["item"].vocabulary, schema["price"].mean
    (('a', 'b'), 2.0)
    """

    def __init__(self, features: Sequence[Feature]) -> None:
        features = tuple(features)
        if not features:
            raise ValueError("a Schema needs at least one feature")
        seen: set[str] = set()
        for spec in features:
            if not isinstance(spec, (Categorical, Numeric)):
                raise TypeError(f"Schema takes Categorical or Numeric specs, got {spec!r}")
            if spec.name in seen:
                raise ValueError(f"duplicate feature name {spec.name!r} in the schema")
            seen.add(spec.name)
        self._features = features
        self._by_name = {spec.name: spec for spec in features}

    # -- container protocol -------------------------------------------------
    def __iter__(self) -> Iterator[Feature]:
        return iter(self._features)

    def __len__(self) -> int:
        return len(self._features)

    def __getitem__(self, name: str) -> Feature:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"unknown feature {name!r}; the schema has: {', '.join(self.names)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and self._features == other._features

    def __repr__(self) -> str:
        return f"Schema({list(self._features)!r})"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    @property
    def is_adapted(self) -> bool:
        """True when every feature has its vocabulary or statistics."""
        return all(spec.is_adapted for spec in self._features)

    def replace(self, **specs: Feature) -> "Schema":
        """Return a copy with the named specs replaced."""
        for name in specs:
            self[name]  # raises a clear KeyError for unknown names
        return Schema([specs.get(spec.name, spec) for spec in self._features])

    # -- serialization -------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """A JSON-able description (Keras saves it with the model).

        Example:

        >>> import tfmtl
        >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=1.0, variance=2.0)])
        >>> tfmtl.Schema.from_config(schema.get_config()) == schema
        True
        """
        features = []
        for spec in self._features:
            entry = {"kind": spec.kind.value, **dataclasses.asdict(spec)}
            if isinstance(spec, Categorical):
                entry["id_type"] = spec.id_type.value
                entry["vocabulary"] = None if spec.vocabulary is None else list(spec.vocabulary)
            features.append(entry)
        return {"features": features}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Schema":
        specs: list[Feature] = []
        for entry in config["features"]:
            entry = dict(entry)
            kind = FeatureKind(entry.pop("kind"))
            if kind is FeatureKind.CATEGORICAL:
                if entry.get("vocabulary") is not None:
                    entry["vocabulary"] = tuple(entry["vocabulary"])
                specs.append(Categorical(**entry))
            else:
                specs.append(Numeric(**entry))
        return cls(specs)

    # -- learning vocabularies and statistics -----------------------------
    def adapt(self, data: Any, *, batch_size: int = 65536) -> "Schema":
        """Learn missing vocabularies and statistics in one pass over ``data``.

        Args:
          data: A mapping of feature name to array, or a ``tf.data.Dataset`` of
            feature dicts (or of ``(features, labels)`` pairs).
          batch_size: Rows per chunk when ``data`` is a mapping of arrays.

        Returns:
          A new, fully adapted Schema. Specs that already had their vocabulary
          or statistics are kept as they are.
        """
        from tfmtl.features.adapt import adapt_schema

        return adapt_schema(self, data, batch_size=batch_size)

    # -- inputs and signatures ---------------------------------------------
    def input_specs(self) -> dict[str, tf.TensorSpec]:
        """The serving signature: one ``[batch]`` tensor per feature."""
        return {spec.name: tf.TensorSpec([None], spec.dtype, name=spec.name) for spec in self._features}

    def inputs(self) -> dict[str, Any]:
        """One ``keras.Input`` of shape ``[batch]`` per feature, keyed by name."""
        return {spec.name: keras.Input(shape=(), dtype=spec.dtype, name=spec.name) for spec in self._features}

    def conform(self, features: Mapping[str, Any]) -> dict[str, Any]:
        """Check a batch of features against the schema and return ``[batch]`` tensors.

        Raises a ValueError/TypeError naming the feature for unknown or missing
        features, wrong dtypes and wrong shapes. Integer numerics are cast to
        float32 and int32 ids to int64; everything else must match.
        """
        if not isinstance(features, Mapping):
            raise TypeError(
                f"expected a dict of features keyed by name ({', '.join(self.names)}), "
                f"got {type(features).__name__}"
            )
        unknown = sorted(set(features) - set(self._by_name))
        if unknown:
            raise ValueError(f"unknown feature(s) {unknown}; the schema has: {', '.join(self.names)}")
        missing = [name for name in self.names if name not in features]
        if missing:
            raise ValueError(f"missing feature(s) {missing}: every schema feature must be given")
        return {spec.name: _conform_one(spec, features[spec.name]) for spec in self._features}


def _conform_one(spec: Feature, value: Any) -> Any:
    if isinstance(value, (tf.RaggedTensor, tf.SparseTensor)):
        raise TypeError(f"feature {spec.name!r}: expected a dense tensor, got {type(value).__name__}")
    tensor = value if tf.is_tensor(value) else None  # tf.Tensor, Variable or Keras symbolic tensor
    if tensor is None:
        array = np.asarray(value)
        if spec.kind is FeatureKind.NUMERIC and array.dtype.kind in "biuf":
            array = array.astype(np.float32)
        if array.dtype.kind in "OUS" and spec.dtype == tf.string:
            array = array.astype(object)
        try:
            tensor = tf.convert_to_tensor(array)
        except (TypeError, ValueError) as error:
            raise TypeError(f"feature {spec.name!r}: cannot convert {array.dtype} values: {error}") from None
    dtype = tensor.dtype
    if spec.kind is FeatureKind.NUMERIC:
        if not (dtype.is_floating or dtype.is_integer):
            raise TypeError(f"feature {spec.name!r} is numeric and expects float values, got {dtype.name}")
        if dtype != tf.float32:
            tensor = tf.cast(tensor, tf.float32)
    elif spec.dtype == tf.string:
        if dtype != tf.string:
            raise TypeError(f"feature {spec.name!r} expects string ids, got {dtype.name} (convert the ids to str)")
    else:
        if not dtype.is_integer:
            raise TypeError(f"feature {spec.name!r} expects int64 ids, got {dtype.name}")
        if dtype != tf.int64:
            tensor = tf.cast(tensor, tf.int64)
    shape = tensor.shape
    if shape.rank == 2 and shape[1] == 1:
        tensor = tf.reshape(tensor, [-1])
    elif shape.rank != 1:
        raise ValueError(
            f"feature {spec.name!r} expects one value per example, shape [batch] or [batch, 1]; got shape {shape.as_list()}"
        )
    return tensor
