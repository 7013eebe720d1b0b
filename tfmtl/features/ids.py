"""Id features: categorical ids, behaviour sequences and multi-valued ids, with their embedding tables.

Features that name the same ``table`` share one lookup and one embedding; :func:`check_tables`
keeps the members of a table consistent, :func:`pad_sequences` builds the padded layout.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Sequence as SequenceType

import numpy as np

from tfmtl._compat import tf
from tfmtl.features.kinds import FeatureKind, IdType, Pooling, _OneValuePerExample, _positive, check_name


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


def check_tables(features: SequenceType[Any]) -> dict[str, list[Any]]:
    """Group features by embedding table; raise naming the table and features on a conflict."""
    tables: dict[str, list[Any]] = {}
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
