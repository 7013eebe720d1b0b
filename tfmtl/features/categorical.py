"""Categorical ids: the spec, its vocabulary (learned by counting), its lookup and its embedding table.

Also the rules every id kind shares (:class:`~tfmtl.features.Sequence`,
:class:`~tfmtl.features.MultiValued` and :class:`~tfmtl.features.PretrainedTable`
build on them): features that name the same ``table`` share one lookup and one
embedding (:func:`check_tables` keeps the members consistent), ids outside the
vocabulary are hashed into OOV buckets, and :func:`vocabulary_lookup` builds the lookup.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
from typing import Any, Mapping, Sequence as SequenceType

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.features.kinds import (
    EmbeddingTable,
    FeatureKind,
    IdType,
    SharedLayer,
    TableEncoding,
    _OneValuePerExample,
    _positive,
    check_name,
)


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
      expire_after: With :meth:`Schema.update`, an id unseen in this many
        consecutive updates loses its row: the id is answered as out of
        vocabulary again and a new id takes the row. ``None``: ids never expire.
      last_seen: Kept by :meth:`Schema.update`, not set by hand: per vocabulary
        row, the update that last saw its id (``None``: every id at update 0).
      updates: Kept by :meth:`Schema.update`: how many updates the vocabulary had.

    After :meth:`Schema.update` a vocabulary may hold ``None`` at a row whose id
    expired and that no new id has taken yet; no id maps to that row.

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
    expire_after: int | None = None
    last_seen: tuple[int, ...] | None = None
    updates: int = 0

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
        if self.expire_after is not None:
            _positive(self.name, "expire_after", self.expire_after)
            if self.num_hash_bins is not None:
                raise ValueError(f"feature {self.name!r}: expire_after is for vocabularies, not hashed ids")
        if isinstance(self.updates, bool) or not isinstance(self.updates, int) or self.updates < 0:
            raise ValueError(f"feature {self.name!r}: updates must be an int >= 0, got {self.updates!r}")
        if self.vocabulary is not None:
            vocab = tuple(None if v is None else normalize_id(v, self.id_type, self.name) for v in self.vocabulary)
            ids = [v for v in vocab if v is not None]
            if not ids:
                raise ValueError(f"feature {self.name!r}: the vocabulary is empty")
            if len(set(ids)) != len(ids):
                raise ValueError(f"feature {self.name!r}: the vocabulary has duplicate ids")
            object.__setattr__(self, "vocabulary", vocab)
        if self.last_seen is not None:
            seen = tuple(self.last_seen)
            if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0 for v in seen):
                raise ValueError(f"feature {self.name!r}: last_seen must hold update numbers (ints >= 0)")
            seen = tuple(int(v) for v in seen)
            if self.vocabulary is None or len(seen) != len(self.vocabulary):
                raise ValueError(f"feature {self.name!r}: last_seen needs one entry per vocabulary row")
            object.__setattr__(self, "last_seen", seen)

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
            self.min_count, self.num_hash_bins, self.salt, self.expire_after, self.last_seen, self.updates,
        )

    # -- adapt: the members of a table learn one vocabulary ---------------------------
    @property
    def adapt_group(self) -> str:
        return f"table:{self.table_name}"

    @classmethod
    def accumulator(cls, members: list[Any]) -> "VocabularyCounter":
        return VocabularyCounter(members)

    # -- preprocessing: one lookup per table --------------------------------------------
    def lookup(self) -> SharedLayer:
        if self.num_hash_bins is not None:
            return self.table_name, lambda: keras.layers.Hashing(
                self.num_hash_bins, salt=self.salt, name=f"{self.table_name}_lookup"
            )
        return self.table_name, lambda: vocabulary_lookup(
            self.id_type, self.vocabulary, self.num_oov_buckets, f"{self.table_name}_lookup"
        )

    def preprocess(self, features: Mapping[str, tf.Tensor], lookups: Mapping[str, Any]) -> dict[str, tf.Tensor]:
        """``{name: [B] int64}``: the id's row of the table."""
        return {self.name: tf.cast(lookups[self.table_name](features[self.name]), tf.int64)}

    # -- encoding: one Embedding per table ------------------------------------------------
    @property
    def output_dim(self) -> int:
        return self.embedding_dim

    def embedding_table(self) -> SharedLayer:
        return self.table_name, lambda: EmbeddingTable(
            self.table_size, self.embedding_dim, name=f"{self.table_name}_embedding"
        )

    def encoder(self, tables: Mapping[str, Any]) -> "CategoricalEncoder":
        return CategoricalEncoder(self, tables[self.table_name])


class CategoricalEncoder(TableEncoding):
    """``[B]`` table rows -> ``[B, embedding_dim]``: the (shared) table's rows."""


_TABLE_FIELDS = ("embedding_dim", "id_type", "vocabulary", "num_oov_buckets", "max_vocabulary_size", "min_count",
                 "num_hash_bins", "salt", "expire_after", "last_seen", "updates")


class VocabularyCounter:
    """Counts the ids of every feature that reads one embedding table (padding of sequences excluded)."""

    def __init__(self, members: list[Categorical]) -> None:
        self.members = members
        self.spec = members[0]
        self.counts: collections.Counter = collections.Counter()

    @property
    def names(self) -> list[str]:
        return [member.name for member in self.members]

    def update(self, values: np.ndarray, name: str) -> None:
        values = values.reshape(-1)
        if self.spec.id_type is IdType.STRING:
            if values.dtype.kind not in "OSU" or (
                values.dtype == object and not all(isinstance(v, (str, bytes)) for v in values)
            ):
                raise TypeError(
                    f"feature {name!r} expects string ids, got {values.dtype} values (convert the ids to str)"
                )
            if values.dtype.kind == "S" or (values.dtype == object and values.size and isinstance(values[0], bytes)):
                values = np.char.decode(values.astype("S"), "utf-8") if values.size else values
            values = values.astype(str)
        else:
            if values.dtype.kind not in "iu":
                raise TypeError(f"feature {name!r} expects int64 ids, got {values.dtype} values")
            values = values.astype(np.int64)
        if any(member.padded for member in self.members):
            values = values[values != self.spec.id_type.pad]
        uniques, counts = np.unique(values, return_counts=True)
        self.counts.update(dict(zip(uniques.tolist(), counts.tolist())))

    def result(self) -> dict[str, Any]:
        items = [(value, count) for value, count in self.counts.items() if count >= self.spec.min_count]
        # Most frequent first; ties broken by the id itself so the order is deterministic.
        items.sort(key=lambda item: (-item[1], item[0]))
        if self.spec.max_vocabulary_size is not None:
            items = items[: self.spec.max_vocabulary_size]
        if not items:
            raise ValueError(
                f"feature(s) {self.names}: no id was seen at least min_count={self.spec.min_count} times"
            )
        vocabulary = tuple(value for value, _ in items)
        return {member.name: dataclasses.replace(member, vocabulary=vocabulary) for member in self.members}

    def grown(self) -> dict[str, Any]:
        """The members with the vocabulary grown by the counted ids (see :meth:`Schema.update`).

        Every known id keeps its row. With ``expire_after``, ids unseen for that many
        updates free their rows. New ids seen at least ``min_count`` times, most frequent
        first, take the free rows (lowest first), then new rows at the end, up to
        ``max_vocabulary_size`` rows; the others stay out of vocabulary.
        """
        spec = self.spec
        update = spec.updates + 1
        vocabulary = list(spec.vocabulary)
        last_seen = list(spec.last_seen) if spec.last_seen is not None else [0] * len(vocabulary)
        index = {value: row for row, value in enumerate(vocabulary) if value is not None}
        for value in self.counts:
            if value in index:
                last_seen[index[value]] = update
        if spec.expire_after is not None:
            for row, value in enumerate(vocabulary):
                if value is not None and update - last_seen[row] >= spec.expire_after:
                    vocabulary[row] = None
        new = [(value, count) for value, count in self.counts.items()
               if value not in index and count >= spec.min_count]
        new.sort(key=lambda item: (-item[1], item[0]))
        free = [row for row, value in enumerate(vocabulary) if value is None]
        free.reverse()  # pop() takes the lowest
        limit = spec.max_vocabulary_size
        for value, _ in new:
            if free:
                row = free.pop()
                vocabulary[row], last_seen[row] = value, update
            elif limit is None or len(vocabulary) < limit:
                vocabulary.append(value)
                last_seen.append(update)
            else:
                break
        if all(value is None for value in vocabulary):
            raise ValueError(
                f"feature(s) {self.names}: every id expired (expire_after={spec.expire_after}) and no new id was "
                f"seen at least min_count={spec.min_count} times: the update data holds none of this table's ids"
            )
        grown = {"vocabulary": tuple(vocabulary), "last_seen": tuple(last_seen), "updates": update}
        return {member.name: dataclasses.replace(member, **grown) for member in self.members}


def normalize_id(value: Any, id_type: IdType, feature: str) -> Any:
    if id_type is IdType.STRING:
        if isinstance(value, bytes):
            return value.decode("utf-8")
        if isinstance(value, (str, np.str_)):
            return str(value)
        raise TypeError(f"feature {feature!r}: string vocabulary holds a non-string id {value!r}")
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"feature {feature!r}: int64 vocabulary holds a non-integer id {value!r}")


class _ContentNamedInitializer(tf.lookup.KeyValueTensorInitializer):
    """Keys and values whose table is named by what it holds: the same name means the same table.

    TensorFlow names an eagerly built table by a counter of the process that builds it. On a
    parameter-server cluster the workers keep every named table until they stop, so a coordinator
    restarted against them counts again from the start and could give a new table the name of an
    old one holding another vocabulary ("Table was already initialized with different data"). A
    name from a hash of the keys and values never does, and a restarted coordinator finds its own
    tables again instead of adding copies.
    """

    def __init__(self, keys: tf.Tensor, values: tf.Tensor, key_dtype: Any, value_dtype: Any) -> None:
        super().__init__(keys, values, key_dtype, value_dtype)
        digest = hashlib.sha256(f"{self._keys.dtype.name}:{self._values.dtype.name}:".encode())
        for array in (np.asarray(self._keys), np.asarray(self._values)):  # eager tensors (built in init_scope)
            digest.update(b"\0".join(array.tolist()) if array.dtype == object else array.tobytes())
            digest.update(b"|")
        self._content_name = f"tfmtl_vocabulary_{digest.hexdigest()[:32]}"

    @property
    def _shared_name(self) -> str:
        return self._content_name


class _SchemaVocabulary:
    """Lookup layers whose vocabulary the schema carries (Keras's asset files are redundant).

    ``rows``: the table row of each vocabulary id, when they are not consecutive (a
    vocabulary with free rows after :meth:`Schema.update` expired ids).
    """

    def __init__(self, *args: Any, rows: Any = None, **kwargs: Any) -> None:
        object.__setattr__(self, "_tfmtl_rows", rows)  # read while Keras's __init__ builds the table
        super().__init__(*args, **kwargs)

    def save_assets(self, dir_path: str) -> None:
        pass

    def load_assets(self, dir_path: str) -> None:
        pass

    def _lookup_table_from_tokens(self, tokens: Any) -> Any:
        if self.invert:  # not used by tfmtl: Keras's own
            return super()._lookup_table_from_tokens(tokens)
        # Keras's own, with a table named by its content (see _ContentNamedInitializer).
        with tf.init_scope():
            rows = self.__dict__.get("_tfmtl_rows")
            if rows is None:
                start = self._token_start_index()
                indices = tf.range(start, start + tf.size(tokens), dtype=self._value_dtype)
            else:
                indices = tf.constant(rows, dtype=self._value_dtype)
            initializer = _ContentNamedInitializer(tokens, indices, self._key_dtype, self._value_dtype)
            return tf.lookup.StaticHashTable(initializer, self._default_value)


class _StringLookup(_SchemaVocabulary, keras.layers.StringLookup):
    pass


class _IntegerLookup(_SchemaVocabulary, keras.layers.IntegerLookup):
    pass


def _unused_oov_token(id_type: IdType, vocabulary: Any) -> object:
    # Keras drops a leading vocabulary entry equal to its OOV token (-1 or "[UNK]"),
    # which would silently send a real id to the OOV bucket: pick a token not in use.
    vocabulary = set(vocabulary)
    if id_type is IdType.STRING:
        token = "[UNK]"
        while token in vocabulary:
            token = f"[{token}]"
        return token
    return -1 if -1 not in vocabulary else min(vocabulary) - 1


def vocabulary_lookup(id_type: IdType, vocabulary: Any, num_oov: int, name: str) -> Any:
    """A Keras lookup layer: known ids to rows ``num_oov..``, other ids hashed into rows ``0..num_oov-1``.

    A ``None`` in ``vocabulary`` is a free row (an expired id's): no id maps to it.
    """
    ids = [value for value in vocabulary if value is not None]
    rows = None
    if len(ids) != len(vocabulary):
        rows = np.asarray([num_oov + index for index, value in enumerate(vocabulary) if value is not None], np.int64)
    lookup_cls = _StringLookup if id_type is IdType.STRING else _IntegerLookup
    return lookup_cls(
        # A numpy array, not a list: tf_keras tracks list attributes and walks
        # them on every layer call (seconds per call for a 1M-id vocabulary).
        vocabulary=np.asarray(ids, dtype=np.int64 if id_type is IdType.INT64 else str),
        num_oov_indices=num_oov,
        mask_token=None,
        oov_token=_unused_oov_token(id_type, ids),
        name=name,
        rows=rows,
    )


def check_tables(features: SequenceType[Any]) -> None:
    """Raise naming the table and features when features sharing an embedding table disagree."""
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
                    long = field in ("vocabulary", "last_seen") and a and b
                    shown = (f"{len(a)} entries", f"{len(b)} entries") if long else (a, b)
                    raise ValueError(
                        f"features {first.name!r} and {other.name!r} share the embedding table {table!r} but "
                        f"differ in {field}: {shown[0]!r} vs {shown[1]!r}; give them the same {field}"
                    )


__all__ = ["Categorical", "CategoricalEncoder", "VocabularyCounter", "check_tables", "normalize_id", "vocabulary_lookup"]
