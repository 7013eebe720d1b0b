"""Masked pooling of padded id sequences: mean, sum, max and DIN-style target attention.

Shapes: ``B`` batch, ``L`` positions (``max_len``), ``D`` embedding size. ``mask`` is
``[B, L]`` bool, True at real (non-padding) positions. Every reduction returns zeros
for a row with no real position, never NaN.
"""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl._compat import keras, tf
from tfmtl.features.kinds import Pooling


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

    def __init__(self, hidden_units: Sequence[int] = (32,), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hidden_units = tuple(int(u) for u in hidden_units)
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
