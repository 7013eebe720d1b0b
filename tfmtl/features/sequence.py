"""Behaviour sequences: the spec, its padded layout, its lookup and the masked pooling that encodes it.

A :class:`Sequence` is up to ``max_len`` ids per example, most recent first, padded at
the end. It shares its vocabulary rules and tables with :class:`~tfmtl.features.Categorical`
(:mod:`tfmtl.features.categorical`). This module also holds the pooling layers
(:class:`SequencePooling`: mean, sum, max; :class:`TargetAttention`: DIN), which
:class:`~tfmtl.features.MultiValued` uses too.

Pooling shapes: ``B`` batch, ``L`` positions (``max_len``), ``D`` embedding size.
``mask`` is ``[B, L]`` bool, True at real (non-padding) positions. Every reduction
returns zeros for a row with no real position, never NaN.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, Sequence as SequenceType

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.features.categorical import Categorical
from tfmtl.features.kinds import FeatureKind, IdType, Pooling, TableEncoding, _positive, checked_numbers, int_tuple


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
    padded = True

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self.name, "max_len", self.max_len)
        if not isinstance(self.pooling, Pooling):
            object.__setattr__(self, "pooling", Pooling(self.pooling))
        units = int_tuple(self.attention_units, f"feature {self.name!r}: attention_units")
        object.__setattr__(self, "attention_units", units)
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

    def check_in(self, features: Mapping[str, Any]) -> None:
        if self.query is None:
            return
        query = features.get(self.query)
        if not isinstance(query, Categorical) or query.padded:
            raise ValueError(
                f"feature {self.name!r}: its attention query {self.query!r} must be a Categorical feature of the schema"
            )
        if query.embedding_dim != self.embedding_dim:
            raise ValueError(
                f"feature {self.name!r}: its attention query {self.query!r} has embedding_dim "
                f"{query.embedding_dim}, expected {self.embedding_dim}"
            )

    def preprocess(self, features: Mapping[str, tf.Tensor], lookups: Mapping[str, Any]) -> dict[str, tf.Tensor]:
        """``{name: [B, max_len] int64}`` rows, ``-1`` at padding; ``<name>_weights`` checked for NaN/Inf."""
        value = features[self.name]
        present = tf.not_equal(value, tf.constant(self.id_type.pad, value.dtype))  # [B, L]
        rows = tf.cast(lookups[self.table_name](value), tf.int64)
        out = {self.name: tf.where(present, rows, tf.constant(-1, tf.int64))}
        if self.weighted:
            out[self.weights_name] = checked_numbers(features[self.weights_name], self.weights_name)  # [B, L]
        return out

    @property
    def depends_on(self) -> tuple[str, ...]:
        return (self.query,) if self.query is not None else ()

    def encoder(self, tables: Mapping[str, Any]) -> "SequenceEncoder":
        return SequenceEncoder(self, tables[self.table_name])


class SequenceEncoder(TableEncoding):
    """``[B, L]`` rows (``-1`` at padding) -> the table's rows, pooled (or attended by the query) to ``[B, D]``."""

    def __init__(self, spec: Sequence, table: Any, **kwargs: Any) -> None:
        super().__init__(spec, table, **kwargs)
        if spec.pooling is Pooling.ATTENTION:
            self.pooling = TargetAttention(spec.attention_units, name=f"{spec.name}_attention")
        else:
            self.pooling = SequencePooling(spec.pooling, name=f"{spec.name}_pooling")

    def call(self, features: Mapping[str, tf.Tensor], encoded: Mapping[str, tf.Tensor]) -> tf.Tensor:
        spec = self.spec
        rows = features[spec.name]  # [B, L], -1 at padding
        mask = rows >= 0  # [B, L]
        keys = self.table(tf.maximum(rows, 0), valid=mask)  # [B, L, D]
        if spec.pooling is Pooling.ATTENTION:
            return self.pooling(encoded[spec.query], keys, mask)  # [B, D]
        weights = features[spec.weights_name] if spec.weighted else None
        return self.pooling(keys, mask, weights)  # [B, D]


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
    return pad_rows(rows, max_len, id_type.pad, object if id_type is IdType.STRING else np.int64)


def pad_rows(rows: Iterable[Any], width: int, pad: Any, dtype: Any) -> np.ndarray:
    """``[len(rows), width]``: each row's first ``width`` values, then ``pad`` (ids, or 0.0 for weights)."""
    rows = list(rows)
    out = np.full((len(rows), width), pad, dtype=dtype)
    for index, row in enumerate(rows):
        values = list(row)[:width]
        out[index, : len(values)] = values
    return out


@keras.utils.register_keras_serializable(package="tfmtl")
class SequencePooling(keras.layers.Layer):
    """Mean, sum or max of ``[B, L, D]`` embeddings over the positions where ``mask`` is True.

    With ``weights`` (``[B, L]``), ``sum`` is ``sum_l m_l w_l e_l`` and ``mean`` is that
    divided by ``sum_l m_l w_l`` (0 when the row has no weight).

    Args:
      pooling: ``"mean"``, ``"sum"`` or ``"max"`` (a :class:`~tfmtl.features.Pooling`).

    Call args:
      embeddings: ``[B, L, D]`` float tensor.
      mask: ``[B, L]`` bool tensor.
      weights: Optional ``[B, L]`` float tensor (mean and sum only).

    Returns:
      ``[B, D]`` float tensor; zeros for rows without a real position.

    Example:

    >>> import numpy as np, tfmtl
    >>> pool = tfmtl.features.SequencePooling("mean")
    >>> e = np.array([[[1.0], [3.0], [100.0]]], np.float32)
    >>> pool(e, np.array([[True, True, False]])).numpy().tolist()
    [[2.0]]
    """

    def __init__(self, pooling: Pooling | str = Pooling.MEAN, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pooling = Pooling(pooling)
        if self.pooling is Pooling.ATTENTION:
            raise ValueError("SequencePooling does mean, sum or max; use TargetAttention for attention")

    def call(self, embeddings: tf.Tensor, mask: tf.Tensor, weights: tf.Tensor | None = None) -> tf.Tensor:
        mask = tf.cast(mask, tf.bool)
        present = tf.reduce_any(mask, axis=1, keepdims=True)  # [B, 1]
        if self.pooling is Pooling.MAX:
            lowest = tf.fill(tf.shape(embeddings), embeddings.dtype.min)
            pooled = tf.reduce_max(tf.where(mask[:, :, None], embeddings, lowest), axis=1)  # [B, D]
            return tf.where(present, pooled, tf.zeros_like(pooled))
        scale = tf.cast(mask, embeddings.dtype)  # [B, L]
        if weights is not None:
            scale *= tf.cast(weights, embeddings.dtype)
        total = tf.reduce_sum(embeddings * scale[:, :, None], axis=1)  # [B, D]
        if self.pooling is Pooling.SUM:
            return total
        return tf.math.divide_no_nan(total, tf.reduce_sum(scale, axis=1, keepdims=True))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pooling": self.pooling.value}


@keras.utils.register_keras_serializable(package="tfmtl")
class TargetAttention(keras.layers.Layer):
    """DIN-style target attention: a query (the candidate item) attends over a sequence.

    Each position's score is an MLP of ``[q, k, q - k, q * k]`` (ReLU hidden layers,
    then one linear unit); scores at padding positions are masked out of a softmax
    over the sequence, and the output is ``sum_l softmax(score)_l k_l``. A row with
    no real position returns zeros.

    Args:
      hidden_units: Hidden units of the scoring MLP (``()`` = a linear score).

    Call args:
      query: ``[B, D]`` float tensor.
      keys: ``[B, L, D]`` float tensor.
      mask: ``[B, L]`` bool tensor, True at real positions.

    Returns:
      ``[B, D]`` float tensor.

    References:
      Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD 2018.

    Example:

    >>> import numpy as np, tfmtl
    >>> attention = tfmtl.features.TargetAttention(hidden_units=(4,))
    >>> keys = np.ones([2, 3, 8], np.float32)
    >>> out = attention(np.ones([2, 8], np.float32), keys, np.array([[True, False, False], [False] * 3]))
    >>> out.numpy()[:, 0].tolist()  # one real position: its key; empty history: zeros
    [1.0, 0.0]
    """

    def __init__(self, hidden_units: SequenceType[int] = (32,), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hidden_units = int_tuple(hidden_units, "TargetAttention hidden_units")
        self.hidden = [keras.layers.Dense(u, activation="relu", name=f"hidden_{i}") for i, u in enumerate(self.hidden_units)]
        self.score = keras.layers.Dense(1, name="score")

    def attention_weights(self, query: tf.Tensor, keys: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """The ``[B, L]`` attention weights: masked softmax of the scores (all 0 on an empty row)."""
        mask = tf.cast(mask, tf.bool)
        queries = tf.broadcast_to(query[:, None, :], tf.shape(keys))  # [B, L, D]
        hidden = tf.concat([queries, keys, queries - keys, queries * keys], axis=-1)  # [B, L, 4D]
        for layer in self.hidden:
            hidden = layer(hidden)
        scores = tf.squeeze(self.score(hidden), axis=-1)  # [B, L]
        # The dtype's lowest finite value (not -1e9, which is -inf in float16 under mixed precision).
        scores = tf.where(mask, scores, tf.fill(tf.shape(scores), scores.dtype.min))
        # An all-padding row has a uniform softmax, zeroed by the mask: no NaN.
        return tf.nn.softmax(scores, axis=-1) * tf.cast(mask, scores.dtype)

    def call(self, query: tf.Tensor, keys: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        weights = self.attention_weights(query, keys, mask)  # [B, L]
        return tf.reduce_sum(keys * weights[:, :, None], axis=1)  # [B, D]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "hidden_units": list(self.hidden_units)}


__all__ = ["Sequence", "SequenceEncoder", "SequencePooling", "TargetAttention", "pad_rows", "pad_sequences"]
