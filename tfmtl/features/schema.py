"""The schema: the feature specs a model reads, the single source of truth for inputs and serving.

Each feature kind lives in its own module (the table in :mod:`tfmtl.features.kinds`);
this module assembles them.

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
from typing import Any, Iterator, Mapping, Sequence as SequenceType, Union

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.features.bucketized import Bucketized
from tfmtl.features.categorical import Categorical, check_tables
from tfmtl.features.dense_vector import DenseVector
from tfmtl.features.kinds import PAD_INT64, PAD_STRING, FeatureKind, IdType
from tfmtl.features.multi_valued import MultiValued
from tfmtl.features.numeric import Numeric
from tfmtl.features.pretrained_table import PretrainedTable, VectorTable
from tfmtl.features.sequence import Sequence, pad_rows, pad_sequences

Feature = Union[Categorical, Sequence, MultiValued, Numeric, Bucketized, DenseVector, PretrainedTable]
_SPECS: dict[FeatureKind, type] = {
    cls.kind: cls for cls in (Categorical, Sequence, MultiValued, Numeric, Bucketized, DenseVector, PretrainedTable)
}



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
        check_tables(features)
        for spec in features:
            spec.check_in(self._by_name)

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
            for key in ("vocabulary", "boundaries", "clip", "attention_units", "last_seen"):
                if entry.get(key) is not None:
                    entry[key] = tuple(entry[key])
            specs.append(spec_cls(**entry))
        return cls(specs)

    # -- learning vocabularies and statistics -----------------------------
    def adapt(self, data: Any, *, batch_size: int = 65536, verbose: Any = "auto") -> "Schema":
        """Learn missing vocabularies, statistics and bucket boundaries in one pass over ``data``.

        Features sharing an embedding table learn one vocabulary from all their ids
        (padding excluded).

        Args:
          data: A mapping of feature name to array, or a ``tf.data.Dataset`` of
            feature dicts (or of ``(features, labels)`` pairs).
          batch_size: Rows per chunk when ``data`` is a mapping of arrays.
          verbose: 1 shows a progress bar of the rows read, 2 one line at the
            end, 0 nothing; ``"auto"`` (default) is 1 on a terminal, else 0.

        Returns:
          A new, fully adapted Schema. Specs that already had their vocabulary
          or statistics are kept as they are.
        """
        from tfmtl.features.adapt import adapt_schema

        return adapt_schema(self, data, batch_size=batch_size, verbose=verbose)

    def update(self, data: Any, *, batch_size: int = 65536, verbose: Any = "auto") -> "Schema":
        """Grow the id vocabularies with a new period's data, keeping every known id's row (append-only).

        For daily (or hourly) training: the returned schema builds a model that
        :func:`tfmtl.training.warm_start` fills with the previous model's weights.
        Per embedding table (the members of a shared table grow together):

        * every known id keeps its row, so a known id's embedding carries over;
        * with ``expire_after=N`` on the feature, an id unseen in the last ``N``
          updates is dropped (answered as out of vocabulary) and frees its row;
        * new ids seen at least ``min_count`` times, most frequent first, take the
          free rows, then rows appended at the end, up to ``max_vocabulary_size``
          rows; the others stay out of vocabulary until a later update.

        Hashed features (``num_hash_bins``), statistics (means, variances) and
        bucket boundaries stay as they are, so the inputs keep their meaning. The
        update count and each row's last update are in the specs (and so saved with
        the model). After updates, a vocabulary is no longer ordered most frequent
        first (see ``keep_ids`` in :func:`tfmtl.serving.export`).

        Args:
          data: The new data, as for :meth:`adapt`; it must hold every input of
            the schema.
          batch_size: Rows per chunk when ``data`` is a mapping of arrays.
          verbose: As for :meth:`adapt`.

        Returns:
          A new Schema; raises a ValueError naming the feature if the data lacks
          one, or if the schema was never adapted.

        Example:

        >>> import numpy as np, tfmtl
        >>> schema = tfmtl.Schema([tfmtl.Categorical("item", embedding_dim=4, expire_after=2)])
        >>> day0 = schema.adapt({"item": np.array(["a", "b", "a"])})
        >>> day1 = day0.update({"item": np.array(["c", "a"])})
        >>> day1["item"].vocabulary  # "a" and "b" keep their rows, "c" is appended
        ('a', 'b', 'c')
        >>> day1.update({"item": np.array(["a", "d"])})["item"].vocabulary  # "b" unseen twice: "d" takes its row
        ('a', 'd', 'c')
        """
        from tfmtl.features.adapt import update_schema

        return update_schema(self, data, batch_size=batch_size, verbose=verbose)

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
        conformed = {
            name: conform_input(name, spec, features[name], padded=feature.padded)
            for feature in self._features
            for name, spec in feature.input_specs().items()
        }
        rows = {name: tensor.shape[0] for name, tensor in conformed.items() if tensor.shape.rank}
        known = {name: count for name, count in rows.items() if count is not None}
        if len(set(known.values())) > 1:
            first = next(iter(known))
            other = next(name for name, count in known.items() if count != known[first])
            raise ValueError(
                f"feature {other!r} has {known[other]} rows but feature {first!r} has {known[first]}: "
                "every feature needs one row per example"
            )
        return conformed


def _expected(spec: tf.TensorSpec) -> str:
    kind = "string ids" if spec.dtype == tf.string else ("int64 ids" if spec.dtype == tf.int64 else "float values")
    shape = "[batch]" if spec.shape.rank == 1 else f"[batch, {spec.shape[1]}]"
    return f"{kind} of shape {shape}"


def _check_ids(name: str, spec: tf.TensorSpec, values: Any) -> None:
    """Every id of a Python/object container is of the feature's id type: else a TypeError naming one."""
    if spec.dtype == tf.string:
        wrong = next((v for v in values if not isinstance(v, (str, bytes, np.str_, np.bytes_))), _NONE)
        kind = "string ids"
    else:
        wrong = next(
            (v for v in values if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer))), _NONE
        )
        kind = "int64 ids"
    if wrong is not _NONE:
        raise TypeError(f"feature {name!r} expects {kind}; found {wrong!r} ({type(wrong).__name__})")


def _check_numbers(name: str, array: np.ndarray) -> None:
    wrong = next(
        (v for v in array.reshape(-1) if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number))),
        _NONE,
    )
    if wrong is not _NONE:
        raise TypeError(f"feature {name!r} expects float values; found {wrong!r} ({type(wrong).__name__})")


_NONE = object()


def conform_input(name: str, spec: tf.TensorSpec, value: Any, *, padded: bool) -> Any:
    """One input of :meth:`Schema.conform`: checked and converted to a tensor shaped as ``spec`` (see there)."""
    if isinstance(value, (tf.RaggedTensor, tf.SparseTensor)):
        raise TypeError(f"feature {name!r}: expected a dense tensor, got {type(value).__name__}")
    width = spec.shape[1] if spec.shape.rank == 2 else None
    pad = PAD_STRING if spec.dtype == tf.string else PAD_INT64
    tensor = value if tf.is_tensor(value) else None  # tf.Tensor, Variable or Keras symbolic tensor
    if value is None:
        raise TypeError(f"feature {name!r} is None; expected {_expected(spec)}")
    if tensor is None:
        rows = isinstance(value, (list, tuple)) or (
            isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype == object
        )
        if padded and rows and spec.dtype.is_floating:  # per-example weight lists
            try:
                rows_values = [np.asarray(row, dtype=np.float32).reshape(-1) for row in value]
            except (TypeError, ValueError) as error:
                raise TypeError(f"feature {name!r} expects lists of float values: {error}") from None
            value = pad_rows(rows_values, width, 0.0, np.float32)
            rows = False
        if padded and rows and not spec.dtype.is_floating:  # per-example id lists
            bad = next((row for row in value if isinstance(row, (str, bytes)) or not hasattr(row, "__len__")), None)
            if bad is not None or (isinstance(value, np.ndarray) and len(value) and not hasattr(value[0], "__len__")):
                raise ValueError(
                    f"feature {name!r} expects {_expected(spec)} or one list of ids per example; got a flat list "
                    f"of single ids ({bad!r}, ...)"
                )
            rows_ids = [list(row) for row in value]
            _check_ids(name, spec, [v for row in rows_ids for v in row])
            array = pad_sequences(rows_ids, width, IdType.STRING if spec.dtype == tf.string else IdType.INT64)
        else:
            try:
                array = np.asarray(value)
            except ValueError as error:  # e.g. ragged nested lists
                raise ValueError(f"feature {name!r}: expected {_expected(spec)}; {error}") from None
        if spec.dtype.is_floating and array.dtype.kind == "b":
            raise TypeError(f"feature {name!r} expects float values, got booleans")
        if spec.dtype.is_floating and array.dtype.kind in "iuf":
            array = array.astype(np.float32)
        if array.dtype == object and spec.dtype.is_floating:
            _check_numbers(name, array)
        elif array.dtype == object:
            _check_ids(name, spec, array.reshape(-1))
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
    if shape.rank is None:  # e.g. a traced function relaxed to any shape: check when it runs
        if width is None:
            rank, last = tf.rank(tensor), tf.shape(tensor)[-1]
            one_value = tf.logical_or(tf.equal(rank, 1), tf.logical_and(tf.equal(rank, 2), tf.equal(last, 1)))
            with tf.control_dependencies([tf.debugging.Assert(one_value, [
                f"feature {name!r} expects one value per example, shape [batch] or [batch, 1]; got shape",
                tf.shape(tensor)])]):
                return tf.reshape(tensor, [-1])
        tensor = tf.ensure_shape(tensor, [None, None])
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
