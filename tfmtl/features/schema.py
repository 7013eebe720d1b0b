"""Declarative feature specs: the single source of truth for inputs and serving.

A :class:`Schema` lists the raw features a model reads. From it tfmtl derives the
``keras.Input``s, the preprocessing (lookups, hashing, bucketing, normalization),
the embeddings and the export's input signature, so training and serving always agree.

Feature kinds and the raw input each one takes (``B`` = batch):

* :class:`Categorical`: one id per example, ``[B]`` string or int64; looked up in a
  vocabulary, or hashed into ``num_hash_bins`` bins; embedded.
* :class:`Numeric`: one float per example, ``[B]``; optionally clipped and
  log-transformed, then standardized.
* :class:`Bucketized`: one float per example, ``[B]``; bucketized by given or
  learned (quantile) boundaries, then embedded.
* :class:`Sequence`: a behaviour sequence, ``[B, max_len]`` ids, **most recent
  first**, padded at the end with :data:`PAD_STRING` (``""``) or :data:`PAD_INT64`
  (``-1``); pooled (mean, sum, max or target attention). Longer lists are truncated
  to the ``max_len`` most recent ids (see :func:`pad_sequences`).
* :class:`MultiValued`: a bag of ids (e.g. an item's tags), same padded layout,
  mean- or sum-pooled, optionally weighted by a parallel ``<name>_weights`` input.
* :class:`DenseVector`: a pre-computed embedding, ``[B, dim]`` float32, optionally projected.
* :class:`PretrainedTable`: one id per example, ``[B]``, looked up in a frozen
  ``{id: vector}`` table stored in the model; unknown ids get a zero vector.

Categorical-like features (``Categorical``, ``Sequence``, ``MultiValued``) that name
the same ``table`` share one lookup and one embedding table; a feature's table
defaults to its own name, so ``Sequence("history", table="item_id")`` shares the
``item_id`` feature's table. Members of a table must agree on dimension and ids.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from typing import Any, Iterable, Iterator, Mapping, Sequence as SequenceType, Union

import numpy as np

from tfmtl._compat import keras, tf

_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Padding id of string sequence and multi-valued features.
PAD_STRING = ""
#: Padding id of int64 sequence and multi-valued features.
PAD_INT64 = -1


class FeatureKind(enum.Enum):
    """What a feature holds."""

    CATEGORICAL = "categorical"
    NUMERIC = "numeric"
    BUCKETIZED = "bucketized"
    SEQUENCE = "sequence"
    MULTI_VALUED = "multi_valued"
    DENSE_VECTOR = "dense_vector"
    PRETRAINED_TABLE = "pretrained_table"


class IdType(enum.Enum):
    """The raw type of a categorical feature's ids."""

    STRING = "string"
    INT64 = "int64"

    @property
    def tf_dtype(self) -> tf.DType:
        return tf.string if self is IdType.STRING else tf.int64

    @property
    def pad(self) -> Any:
        """The padding id of sequence and multi-valued features with these ids."""
        return PAD_STRING if self is IdType.STRING else PAD_INT64


class Pooling(enum.Enum):
    """How a :class:`Sequence` or :class:`MultiValued` feature is reduced to one vector.

    ``MEAN``, ``SUM`` and ``MAX`` run over the non-padded positions; ``ATTENTION`` is
    DIN-style target attention, the ``query`` feature's embedding attending over the ids.
    An all-padding row pools to zeros.
    """

    MEAN = "mean"
    SUM = "sum"
    MAX = "max"
    ATTENTION = "attention"


def check_name(name: str, what: str) -> str:
    """Return ``name`` if it is a valid feature/task name, else raise ValueError."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ValueError(
            f"invalid {what} name {name!r}: use letters, digits and underscores, "
            "starting with a letter or underscore (it becomes a Keras layer name "
            "and a TF Serving input/output key)"
        )
    return name


def _positive(feature: str, what: str, value: Any) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"feature {feature!r}: {what} must be an int >= 1, got {value!r}")


def _clip_bounds(feature: str, clip: Any) -> tuple[float, float] | None:
    if clip is None:
        return None
    low, high = (float(v) for v in clip)
    if not low < high:
        raise ValueError(f"feature {feature!r}: clip must be (low, high) with low < high, got {clip!r}")
    return (low, high)


def transform_values(values: Any, clip: tuple[float, float] | None, log: bool) -> Any:
    """Clip to ``clip`` then, if ``log``, apply ``sign(x) * log1p(|x|)``: numpy or tf values.

    The same function runs on numpy arrays at adapt time and on tensors in the model.

    Example:

    >>> import numpy as np, tfmtl
    >>> tfmtl.features.schema.transform_values(np.array([-1.0, 0.0, 1e6]), (0.0, 99.0), True).round(3).tolist()
    [0.0, 0.0, 4.605]
    """
    xp = np if isinstance(values, np.ndarray) else tf.math
    if clip is not None:
        values = np.clip(values, *clip) if xp is np else tf.clip_by_value(values, *clip)
    if log:
        values = xp.sign(values) * xp.log1p(xp.abs(values))
    return values


class _OneValuePerExample:
    """Kinds whose raw input is one value per example: ``{name: [batch] dtype}``."""

    name: str
    dtype: Any

    def input_specs(self) -> dict[str, tf.TensorSpec]:
        """This feature's raw input: ``{name: [batch]}`` of its dtype."""
        return {self.name: tf.TensorSpec([None], self.dtype, name=self.name)}


class _FloatPerExample(_OneValuePerExample):
    """Kinds whose raw input is one float32 per example."""

    @property
    def dtype(self) -> tf.DType:
        return tf.float32


@dataclasses.dataclass(frozen=True)
class Categorical(_OneValuePerExample):
    """A categorical id feature, looked up in a vocabulary (or hashed) and embedded.

    Ids outside the vocabulary (for example new items at serving time) map to
    ``num_oov_buckets`` out-of-vocabulary buckets by hashing; they never raise.
    With ``num_hash_bins``, ids are hashed by Keras ``Hashing`` into that many
    bins instead (for unbounded id spaces; no vocabulary is learned).

    Args:
      name: Feature name: the input key in training data and at serving time.
      embedding_dim: Size of the learned embedding vector.
      vocabulary: Known ids. ``None`` means "learn it with :meth:`Schema.adapt`".
      id_type: ``IdType.STRING`` (default) or ``IdType.INT64``.
      num_oov_buckets: Buckets for ids not in the vocabulary (at least 1).
      max_vocabulary_size: When learning, keep only the most frequent ids.
      min_count: When learning, drop ids seen fewer times than this.
      num_hash_bins: Hash ids into this many bins instead of a vocabulary.
      salt: Salt of the hash (an int; Keras ``Hashing``'s keyed SipHash).
      table: Name of the embedding table; features naming the same table share
        it (one lookup, one embedding). Default: the feature's own name.

    Example:

    >>> import tfmtl
    >>> spec = tfmtl.features.Categorical("device", embedding_dim=4,
    ...                                   vocabulary=("ios", "android"))
    >>> spec.table_size  # 2 known ids + 1 out-of-vocabulary bucket
    3
    >>> tfmtl.features.Categorical("query", num_hash_bins=1000, salt=7).table_size
    1000
    """

    name: str
    embedding_dim: int = 16
    vocabulary: tuple[Any, ...] | None = None
    id_type: IdType = IdType.STRING
    num_oov_buckets: int = 1
    max_vocabulary_size: int | None = None
    min_count: int = 1
    num_hash_bins: int | None = None
    salt: int | None = None
    table: str | None = None

    kind = FeatureKind.CATEGORICAL

    def __post_init__(self) -> None:
        check_name(self.name, "feature")
        if self.table is not None:
            check_name(self.table, "table")
        if not isinstance(self.id_type, IdType):
            object.__setattr__(self, "id_type", IdType(self.id_type))
        if self.embedding_dim < 1:
            raise ValueError(f"feature {self.name!r}: embedding_dim must be >= 1, got {self.embedding_dim}")
        if self.num_oov_buckets < 1:
            raise ValueError(f"feature {self.name!r}: num_oov_buckets must be >= 1, got {self.num_oov_buckets}")
        if self.num_hash_bins is not None:
            _positive(self.name, "num_hash_bins", self.num_hash_bins)
            if self.vocabulary is not None:
                raise ValueError(f"feature {self.name!r}: give a vocabulary or num_hash_bins, not both")
        elif self.salt is not None:
            raise ValueError(f"feature {self.name!r}: salt needs num_hash_bins")
        if self.vocabulary is not None:
            vocab = tuple(_normalize_id(v, self.id_type, self.name) for v in self.vocabulary)
            if not vocab:
                raise ValueError(f"feature {self.name!r}: the vocabulary is empty")
            if len(set(vocab)) != len(vocab):
                raise ValueError(f"feature {self.name!r}: the vocabulary has duplicate ids")
            object.__setattr__(self, "vocabulary", vocab)

    @property
    def table_name(self) -> str:
        """The embedding table this feature reads: ``table``, or the feature's name."""
        return self.table or self.name

    @property
    def is_adapted(self) -> bool:
        return self.vocabulary is not None or self.num_hash_bins is not None

    @property
    def table_size(self) -> int:
        """Rows of the embedding table: hash bins, or OOV buckets plus vocabulary."""
        if self.num_hash_bins is not None:
            return self.num_hash_bins
        if self.vocabulary is None:
            raise ValueError(f"feature {self.name!r} has no vocabulary yet: call schema.adapt(data) first")
        return len(self.vocabulary) + self.num_oov_buckets

    @property
    def dtype(self) -> tf.DType:
        return self.id_type.tf_dtype

    def table_key(self) -> tuple[Any, ...]:
        """What every feature sharing this feature's table must agree on."""
        return (
            self.embedding_dim, self.id_type, self.vocabulary, self.num_oov_buckets, self.max_vocabulary_size,
            self.min_count, self.num_hash_bins, self.salt,
        )



_TABLE_FIELDS = ("embedding_dim", "id_type", "vocabulary", "num_oov_buckets", "max_vocabulary_size", "min_count",
                 "num_hash_bins", "salt")


@dataclasses.dataclass(frozen=True)
class Sequence(Categorical):
    """A behaviour sequence: up to ``max_len`` ids per example, pooled into one vector.

    Serving contract: a dense ``[batch, max_len]`` id tensor, **most recent id
    first**, padded at the end with :data:`PAD_STRING` (``""``) for string ids or
    :data:`PAD_INT64` (``-1``) for int64 ids. Padding is masked out of the pooling;
    an all-padding row (empty history) pools to a zero vector. In training and
    ``evaluate``, rows shorter than ``max_len`` are padded and longer ones are
    truncated to their first (most recent) ``max_len`` ids; :func:`pad_sequences`
    builds the array from Python lists.

    Args:
      name: Feature name.
      max_len: Ids per example in the padded input.
      pooling: :class:`Pooling` (``MEAN`` default; ``ATTENTION`` needs ``query``).
      query: For ``ATTENTION``: the candidate feature (a :class:`Categorical` with the
        same ``embedding_dim``, typically sharing the table) whose embedding attends
        over the sequence.
      attention_units: Hidden units of the attention scoring MLP.
      weighted: Also read ``<name>_weights``, ``[batch, max_len]`` float32, and
        weight the mean/sum by it.
      (other args): as :class:`Categorical`; ``table`` shares an embedding table,
        e.g. ``table="item_id"`` for a click history of items.

    Example:

    >>> import tfmtl
    >>> history = tfmtl.features.Sequence("history", max_len=50, table="item_id",
    ...                                   pooling="attention", query="item_id")
    >>> history.input_specs()["history"].shape
    TensorShape([None, 50])
    """

    max_len: int = 50
    pooling: Pooling = Pooling.MEAN
    query: str | None = None
    attention_units: tuple[int, ...] = (32,)
    weighted: bool = False

    kind = FeatureKind.SEQUENCE

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self.name, "max_len", self.max_len)
        if not isinstance(self.pooling, Pooling):
            object.__setattr__(self, "pooling", Pooling(self.pooling))
        object.__setattr__(self, "attention_units", tuple(int(u) for u in self.attention_units))
        if (self.pooling is Pooling.ATTENTION) != (self.query is not None):
            raise ValueError(f"feature {self.name!r}: a query feature is needed exactly when pooling is 'attention'")
        if self.weighted and self.pooling not in (Pooling.MEAN, Pooling.SUM):
            raise ValueError(f"feature {self.name!r}: weights apply to 'mean' or 'sum' pooling, not {self.pooling.value!r}")
        if self.vocabulary is not None and self.id_type.pad in self.vocabulary:
            raise ValueError(f"feature {self.name!r}: the padding id {self.id_type.pad!r} cannot be in the vocabulary")

    @property
    def weights_name(self) -> str:
        """Input key of the weights (only read when ``weighted``)."""
        return f"{self.name}_weights"

    def input_specs(self) -> dict[str, tf.TensorSpec]:
        """``{name: [batch, max_len] ids}``, plus ``{name}_weights`` (float32) when weighted."""
        specs = {self.name: tf.TensorSpec([None, self.max_len], self.dtype, name=self.name)}
        if self.weighted:
            specs[self.weights_name] = tf.TensorSpec([None, self.max_len], tf.float32, name=self.weights_name)
        return specs


@dataclasses.dataclass(frozen=True)
class MultiValued(Sequence):
    """A bag of ids per example (e.g. an item's tags), mean- or sum-pooled.

    The same padded ``[batch, max_len]`` input as :class:`Sequence` (order does not
    matter); with ``weighted=True`` a parallel ``<name>_weights`` ``[batch, max_len]``
    float32 input weights each id (weighted mean: ``sum(w e) / sum(w)``).

    Example:

    >>> import tfmtl
    >>> tags = tfmtl.features.MultiValued("tags", max_len=5, pooling="sum", weighted=True)
    >>> sorted(tags.input_specs())
    ['tags', 'tags_weights']
    """

    kind = FeatureKind.MULTI_VALUED

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pooling not in (Pooling.MEAN, Pooling.SUM):
            raise ValueError(f"feature {self.name!r}: multi-valued features pool by 'mean' or 'sum'")


@dataclasses.dataclass(frozen=True)
class Numeric(_FloatPerExample):
    """A numeric feature, standardized as ``(t(x) - mean) / sqrt(variance)``.

    ``t`` clips to ``clip`` and then, with ``log=True``, applies
    ``sign(x) * log1p(|x|)`` (for heavy-tailed values); ``mean`` and ``variance``
    are those of ``t(x)``. NaN or infinite values are rejected with an error naming
    the feature, in training and at serving time.

    Args:
      name: Feature name.
      mean: Mean of the transformed values. ``None`` means "learn it with :meth:`Schema.adapt`".
      variance: Variance of the transformed values (learned together with ``mean``).
      log: Log-transform (after clipping).
      clip: ``(low, high)`` bounds applied first, or None.

    Example:

    >>> import tfmtl
    >>> tfmtl.features.Numeric("price", mean=10.0, variance=4.0).is_adapted
    True
    """

    name: str
    mean: float | None = None
    variance: float | None = None
    log: bool = False
    clip: tuple[float, float] | None = None

    kind = FeatureKind.NUMERIC

    def __post_init__(self) -> None:
        check_name(self.name, "feature")
        object.__setattr__(self, "clip", _clip_bounds(self.name, self.clip))
        if (self.mean is None) != (self.variance is None):
            raise ValueError(f"feature {self.name!r}: give both mean and variance, or neither")
        if self.variance is not None and not self.variance >= 0:
            raise ValueError(f"feature {self.name!r}: variance must be >= 0, got {self.variance}")

    @property
    def is_adapted(self) -> bool:
        return self.mean is not None


@dataclasses.dataclass(frozen=True)
class Bucketized(_FloatPerExample):
    """A numeric feature cut into buckets (Keras ``Discretization``), then embedded.

    Boundaries are given, or learned by :meth:`Schema.adapt` as the
    ``num_buckets``-quantiles of the (clipped, log-transformed) values, computed on a
    uniform sample of at most 100,000 values. A value ``v`` falls in bucket ``i``
    when ``boundaries[i-1] <= t(v) < boundaries[i]``, ``t`` as in :class:`Numeric`.

    Serving contract: ``[batch]`` float32, like :class:`Numeric`.

    Args:
      name: Feature name.
      embedding_dim: Size of each bucket's embedding.
      boundaries: Increasing bucket boundaries, or None to learn them.
      num_buckets: Buckets to learn (ignored when ``boundaries`` are given).
      log: Log-transform (``sign(x) log1p(|x|)``) before bucketing.
      clip: ``(low, high)`` bounds applied first, or None.

    Example:

    >>> import numpy as np, tfmtl
    >>> spec = tfmtl.features.Bucketized("price", num_buckets=4, log=True)
    >>> schema = tfmtl.Schema([spec]).adapt({"price": np.arange(1.0, 101.0)})
    >>> len(schema["price"].boundaries), schema["price"].table_size
    (3, 4)
    """

    name: str
    embedding_dim: int = 8
    boundaries: tuple[float, ...] | None = None
    num_buckets: int = 10
    log: bool = False
    clip: tuple[float, float] | None = None

    kind = FeatureKind.BUCKETIZED

    def __post_init__(self) -> None:
        check_name(self.name, "feature")
        object.__setattr__(self, "clip", _clip_bounds(self.name, self.clip))
        _positive(self.name, "embedding_dim", self.embedding_dim)
        _positive(self.name, "num_buckets", self.num_buckets)
        if self.boundaries is not None:
            bounds = tuple(float(b) for b in self.boundaries)
            if not bounds or any(not b < c for b, c in zip(bounds, bounds[1:])) or not np.all(np.isfinite(bounds)):
                raise ValueError(f"feature {self.name!r}: boundaries must be finite and strictly increasing, got {bounds}")
            object.__setattr__(self, "boundaries", bounds)

    @property
    def is_adapted(self) -> bool:
        return self.boundaries is not None

    @property
    def table_size(self) -> int:
        """Buckets: one more than the boundaries."""
        if self.boundaries is None:
            raise ValueError(f"feature {self.name!r} has no boundaries yet: call schema.adapt(data) first")
        return len(self.boundaries) + 1


@dataclasses.dataclass(frozen=True)
class DenseVector:
    """A pre-computed embedding (e.g. a 384-dim sentence embedding), optionally projected.

    Serving contract: ``[batch, dim]`` float32; NaN/Inf are rejected naming the feature.

    Args:
      name: Feature name.
      dim: Length of the vector.
      projection_dim: Learn a linear projection to this size (None = use as is).

    Example:

    >>> import tfmtl
    >>> tfmtl.features.DenseVector("title_embedding", dim=384, projection_dim=16).output_dim
    16
    """

    name: str
    dim: int
    projection_dim: int | None = None

    kind = FeatureKind.DENSE_VECTOR
    is_adapted = True

    def __post_init__(self) -> None:
        check_name(self.name, "feature")
        _positive(self.name, "dim", self.dim)
        if self.projection_dim is not None:
            _positive(self.name, "projection_dim", self.projection_dim)

    @property
    def dtype(self) -> tf.DType:
        return tf.float32

    @property
    def output_dim(self) -> int:
        return self.projection_dim or self.dim

    def input_specs(self) -> dict[str, tf.TensorSpec]:
        """``{name: [batch, dim] float32}``."""
        return {self.name: tf.TensorSpec([None, self.dim], tf.float32, name=self.name)}


class VectorTable:
    """An immutable ``{id: vector}`` table: ids (a tuple) and a read-only ``[n, dim]`` float32 matrix.

    Example:

    >>> import tfmtl
    >>> table = tfmtl.features.schema.VectorTable({"a": [1.0, 0.0], "b": [0.0, 1.0]})
    >>> table.ids, table.dim
    (('a', 'b'), 2)
    """

    def __init__(self, vectors: Mapping[Any, Any]) -> None:
        if not isinstance(vectors, Mapping) or not vectors:
            raise ValueError("a pretrained table needs a non-empty {id: vector} mapping")
        self.ids = tuple(vectors)
        rows = [np.asarray(vectors[i], dtype=np.float32) for i in self.ids]
        lengths = sorted({row.shape for row in rows})
        if len(lengths) != 1 or len(lengths[0]) != 1 or not all(np.all(np.isfinite(row)) for row in rows):
            raise ValueError(f"pretrained vectors must be finite 1-D vectors of equal length, got shapes {lengths}")
        matrix = np.stack(rows)
        matrix.setflags(write=False)
        self.matrix = matrix

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VectorTable) and self.ids == other.ids and np.array_equal(self.matrix, other.matrix)

    def __hash__(self) -> int:
        return hash((self.ids, self.matrix.shape))

    def __repr__(self) -> str:
        return f"VectorTable({len(self)} ids x {self.dim})"

    def __deepcopy__(self, memo: Any) -> "VectorTable":
        return self  # immutable


@dataclasses.dataclass(frozen=True)
class PretrainedTable(_OneValuePerExample):
    """Ids looked up in a frozen table of pre-computed vectors (e.g. item id -> LLM title embedding).

    The table is a non-trainable variable of the model, so an export holds it and a
    server only needs the id. Ids missing from the table get a zero vector.

    Serving contract: ``[batch]`` ids (string or int64), like :class:`Categorical`.

    Args:
      name: Feature name (the id input).
      vectors: ``{id: vector}``; every vector has the same length.
      id_type: ``IdType.STRING`` (default) or ``IdType.INT64``.
      projection_dim: Learn a linear projection to this size (None = use the vectors as is).

    Example:

    >>> import tfmtl
    >>> spec = tfmtl.features.PretrainedTable("item_text", vectors={"i1": [0.5, 1.0], "i2": [0.0, 2.0]})
    >>> spec.output_dim, spec.vectors.ids
    (2, ('i1', 'i2'))
    """

    name: str
    vectors: VectorTable
    id_type: IdType = IdType.STRING
    projection_dim: int | None = None

    kind = FeatureKind.PRETRAINED_TABLE
    is_adapted = True

    def __post_init__(self) -> None:
        check_name(self.name, "feature")
        if not isinstance(self.id_type, IdType):
            object.__setattr__(self, "id_type", IdType(self.id_type))
        if self.projection_dim is not None:
            _positive(self.name, "projection_dim", self.projection_dim)
        vectors = self.vectors
        if not isinstance(vectors, VectorTable):
            if isinstance(vectors, Mapping) and set(vectors) == {"ids", "matrix"}:  # from get_config
                vectors = dict(zip(vectors["ids"], vectors["matrix"]))
            try:
                vectors = VectorTable(vectors)
            except ValueError as error:
                raise ValueError(f"feature {self.name!r}: {error}") from None
        ids = tuple(_normalize_id(v, self.id_type, self.name) for v in vectors.ids)
        if ids != vectors.ids:
            vectors = VectorTable(dict(zip(ids, vectors.matrix)))
        object.__setattr__(self, "vectors", vectors)

    @property
    def dtype(self) -> tf.DType:
        return self.id_type.tf_dtype

    @property
    def output_dim(self) -> int:
        return self.projection_dim or self.vectors.dim



Feature = Union[Categorical, Sequence, MultiValued, Numeric, Bucketized, DenseVector, PretrainedTable]
_SPECS: dict[FeatureKind, type] = {
    FeatureKind.CATEGORICAL: Categorical,
    FeatureKind.SEQUENCE: Sequence,
    FeatureKind.MULTI_VALUED: MultiValued,
    FeatureKind.NUMERIC: Numeric,
    FeatureKind.BUCKETIZED: Bucketized,
    FeatureKind.DENSE_VECTOR: DenseVector,
    FeatureKind.PRETRAINED_TABLE: PretrainedTable,
}


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


def pad_sequences(rows: Iterable[Any], max_len: int, id_type: IdType | str = IdType.STRING) -> np.ndarray:
    """Pad (or truncate) per-example id lists into the ``[rows, max_len]`` array a :class:`Sequence` takes.

    Each row lists ids **most recent first**. Rows longer than ``max_len`` keep
    their first ``max_len`` (most recent) ids; shorter rows are padded at the end
    with :data:`PAD_STRING` or :data:`PAD_INT64`. An empty row is all padding.

    Example:

    >>> import tfmtl
    >>> tfmtl.features.pad_sequences([["i3", "i1", "i7"], []], max_len=2).tolist()
    [['i3', 'i1'], ['', '']]
    >>> tfmtl.features.pad_sequences([[5]], max_len=3, id_type="int64").tolist()
    [[5, -1, -1]]
    """
    id_type = IdType(id_type)
    rows = list(rows)
    out = np.full((len(rows), max_len), id_type.pad, dtype=object if id_type is IdType.STRING else np.int64)
    for index, row in enumerate(rows):
        values = list(row)[:max_len]
        out[index, : len(values)] = values
    return out


def check_tables(features: SequenceType[Feature]) -> dict[str, list[Feature]]:
    """Group features by embedding table; raise naming the table and features on a conflict."""
    tables: dict[str, list[Feature]] = {}
    for spec in features:
        if isinstance(spec, Categorical):
            tables.setdefault(spec.table_name, []).append(spec)
    by_name = {spec.name: spec for spec in features}
    for table, members in tables.items():
        if table in by_name and by_name[table] not in members:
            raise ValueError(
                f"feature {members[0].name!r} names the table {table!r}, which is the name of a "
                f"{by_name[table].kind.value} feature; name another table"
            )
        first = members[0]
        for other in members[1:]:
            for field, a, b in zip(_TABLE_FIELDS, first.table_key(), other.table_key()):
                if a != b:
                    shown = (f"{len(a)} ids", f"{len(b)} ids") if field == "vocabulary" and a and b else (a, b)
                    raise ValueError(
                        f"features {first.name!r} and {other.name!r} share the embedding table {table!r} but "
                        f"differ in {field}: {shown[0]!r} vs {shown[1]!r}; give them the same {field}"
                    )
    return tables


class Schema:
    """An ordered, immutable collection of feature specs.

    Checked when built: unique feature and input names, consistent shared
    embedding tables (same dimension and ids), attention queries that exist and
    match the sequence's embedding size.

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

    def __init__(self, features: SequenceType[Feature]) -> None:
        features = tuple(features)
        if not features:
            raise ValueError("a Schema needs at least one feature")
        seen: set[str] = set()
        for spec in features:
            if type(spec) not in _SPECS.values():
                kinds = ", ".join(cls.__name__ for cls in _SPECS.values())
                raise TypeError(f"Schema takes feature specs ({kinds}), got {spec!r}")
            for name in spec.input_specs():
                if name in seen:
                    raise ValueError(f"duplicate feature name {name!r} in the schema")
                seen.add(name)
        self._features = features
        self._by_name = {spec.name: spec for spec in features}
        self.tables = check_tables(features)
        for spec in features:
            if isinstance(spec, Sequence) and spec.query is not None:
                query = self._by_name.get(spec.query)
                if not isinstance(query, Categorical) or isinstance(query, Sequence):
                    raise ValueError(
                        f"feature {spec.name!r}: its attention query {spec.query!r} must be a Categorical feature "
                        "of the schema"
                    )
                if query.embedding_dim != spec.embedding_dim:
                    raise ValueError(
                        f"feature {spec.name!r}: its attention query {spec.query!r} has embedding_dim "
                        f"{query.embedding_dim}, expected {spec.embedding_dim}"
                    )

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
            entry: dict[str, Any] = {"kind": spec.kind.value}
            for field in dataclasses.fields(spec):
                value = getattr(spec, field.name)
                if isinstance(value, enum.Enum):
                    value = value.value
                elif isinstance(value, tuple):
                    value = list(value)
                elif isinstance(value, VectorTable):
                    value = {"ids": list(value.ids), "matrix": value.matrix.tolist()}
                entry[field.name] = value
            features.append(entry)
        return {"features": features}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Schema":
        specs: list[Feature] = []
        for entry in config["features"]:
            entry = dict(entry)
            spec_cls = _SPECS[FeatureKind(entry.pop("kind"))]
            for key in ("vocabulary", "boundaries", "clip", "attention_units"):
                if entry.get(key) is not None:
                    entry[key] = tuple(entry[key])
            specs.append(spec_cls(**entry))
        return cls(specs)

    # -- learning vocabularies and statistics -----------------------------
    def adapt(self, data: Any, *, batch_size: int = 65536) -> "Schema":
        """Learn missing vocabularies, statistics and bucket boundaries in one pass over ``data``.

        Features sharing an embedding table learn one vocabulary from all their ids
        (padding excluded).

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
        """The serving signature, keyed by input name (see the module docstring for each kind's shape)."""
        return {name: spec for feature in self._features for name, spec in feature.input_specs().items()}

    def inputs(self) -> dict[str, Any]:
        """One ``keras.Input`` per input of :meth:`input_specs`, keyed by name."""
        return {
            name: keras.Input(shape=tuple(spec.shape[1:]), dtype=spec.dtype, name=name)
            for name, spec in self.input_specs().items()
        }

    def conform(self, features: Mapping[str, Any]) -> dict[str, Any]:
        """Check a batch of features against the schema and return tensors shaped as :meth:`input_specs`.

        Raises a ValueError/TypeError naming the feature for unknown or missing
        features, wrong dtypes and wrong shapes. Integer numerics are cast to
        float32 and int32 ids to int64; everything else must match. Sequence and
        multi-valued features are padded or truncated (most recent first) to
        ``max_len``; a 1-D object array of lists is padded with :func:`pad_sequences`.
        """
        specs = self.input_specs()
        if not isinstance(features, Mapping):
            raise TypeError(
                f"expected a dict of features keyed by name ({', '.join(specs)}), got {type(features).__name__}"
            )
        unknown = sorted(set(features) - set(specs))
        if unknown:
            raise ValueError(f"unknown feature(s) {unknown}; the schema has: {', '.join(specs)}")
        missing = [name for name in specs if name not in features]
        if missing:
            raise ValueError(f"missing feature(s) {missing}: every schema feature must be given")
        return {
            name: _conform_one(name, spec, features[name], padded=isinstance(feature, Sequence))
            for feature in self._features
            for name, spec in feature.input_specs().items()
        }


def _conform_one(name: str, spec: tf.TensorSpec, value: Any, *, padded: bool) -> Any:
    if isinstance(value, (tf.RaggedTensor, tf.SparseTensor)):
        raise TypeError(f"feature {name!r}: expected a dense tensor, got {type(value).__name__}")
    width = spec.shape[1] if spec.shape.rank == 2 else None
    pad = PAD_STRING if spec.dtype == tf.string else PAD_INT64
    tensor = value if tf.is_tensor(value) else None  # tf.Tensor, Variable or Keras symbolic tensor
    if tensor is None:
        rows = isinstance(value, list) or (isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype == object)
        if padded and rows and not spec.dtype.is_floating:  # per-example id lists
            array = pad_sequences(value, width, IdType.STRING if spec.dtype == tf.string else IdType.INT64)
        else:
            array = np.asarray(value)
        if spec.dtype.is_floating and array.dtype.kind in "biuf":
            array = array.astype(np.float32)
        if array.dtype.kind in "OUS" and spec.dtype == tf.string:
            array = array.astype(object)
        try:
            tensor = tf.convert_to_tensor(array)
        except (TypeError, ValueError) as error:
            raise TypeError(f"feature {name!r}: cannot convert {array.dtype} values: {error}") from None
    dtype = tensor.dtype
    if spec.dtype.is_floating:
        if not (dtype.is_floating or dtype.is_integer):
            raise TypeError(f"feature {name!r} is numeric and expects float values, got {dtype.name}")
        if dtype != tf.float32:
            tensor = tf.cast(tensor, tf.float32)
    elif spec.dtype == tf.string:
        if dtype != tf.string:
            raise TypeError(f"feature {name!r} expects string ids, got {dtype.name} (convert the ids to str)")
    else:
        if not dtype.is_integer:
            raise TypeError(f"feature {name!r} expects int64 ids, got {dtype.name}")
        if dtype != tf.int64:
            tensor = tf.cast(tensor, tf.int64)
    shape = tensor.shape
    if width is None:
        if shape.rank == 2 and shape[1] == 1:
            tensor = tf.reshape(tensor, [-1])
        elif shape.rank != 1:
            raise ValueError(
                f"feature {name!r} expects one value per example, shape [batch] or [batch, 1]; got shape {shape.as_list()}"
            )
        return tensor
    if shape.rank != 2:
        raise ValueError(f"feature {name!r} expects shape [batch, {width}]; got shape {shape.as_list()}")
    if not padded:
        if shape[1] is not None and shape[1] != width:  # a dense vector has exactly `width` values
            raise ValueError(f"feature {name!r} expects shape [batch, {width}]; got shape {shape.as_list()}")
        return tensor
    # Ids (and their weights): keep the first (most recent) `width` positions, pad the rest.
    if shape[1] != width:
        tensor = tensor[:, :width]
        fill = 0.0 if spec.dtype.is_floating else pad
        tensor = tf.pad(tensor, [[0, 0], [0, width - tf.shape(tensor)[1]]], constant_values=fill)
        tensor = tf.ensure_shape(tensor, [None, width])
    return tensor
