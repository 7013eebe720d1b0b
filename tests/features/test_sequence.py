"""Behaviour sequences: padded layout, lookup with -1 at padding, masked pooling and target attention."""

import numpy as np

from tfmtl._compat import tf
from tfmtl.features import IdType, Schema, Sequence, SequencePooling, TargetAttention, pad_sequences


def test_preprocess_marks_padding_with_minus_one_and_looks_up_the_rest():
    spec = Sequence("history", max_len=3, vocabulary=("a", "b"))
    rows = spec.preprocess({"history": tf.constant([["b", "zz", ""], ["", "", ""]])}, {"history": spec.lookup()[1]()})
    assert rows["history"].numpy().tolist() == [[2, 0, -1], [-1, -1, -1]]


def test_mean_pooling_through_the_encoder_matches_numpy(raw_encoder):
    schema = Schema([Sequence("h", max_len=3, embedding_dim=2, vocabulary=(1, 2), id_type=IdType.INT64)])
    encoder = raw_encoder(schema)
    encoder({"h": np.array([[1, -1, -1]])})
    table = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 5.0]], np.float32)  # OOV, 1, 2
    encoder.embeddings["h"].set_weights([table])
    out = encoder({"h": np.array([[1, 2, -1], [2, -1, -1], [-1, -1, -1]])}).numpy()
    np.testing.assert_allclose(out, [[2.0, 3.5], [3.0, 5.0], [0.0, 0.0]])

def test_pad_sequences_truncates_to_the_first_most_recent_ids():
    assert pad_sequences([[9, 8, 7, 6]], 2, IdType.INT64).tolist() == [[9, 8]]


def test_masked_pooling_matches_numpy():
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(3, 4, 2)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 1, 1]], bool)
    weights = rng.uniform(0.1, 2.0, size=(3, 4)).astype(np.float32)
    m, w = mask[:, :, None], (mask * weights)[:, :, None]
    count = np.maximum(mask.sum(1, keepdims=True), 1)
    expected = {
        "sum": (embeddings * m).sum(1),
        "mean": (embeddings * m).sum(1) / count,
        "max": np.where(mask.any(1, keepdims=True), np.where(m, embeddings, -np.inf).max(1), 0.0),
    }
    for pooling, value in expected.items():
        np.testing.assert_allclose(SequencePooling(pooling)(embeddings, mask).numpy(), value, rtol=1e-6, atol=1e-6)
    weighted_mean = (embeddings * w).sum(1) / np.where(w.sum(1) > 0, w.sum(1), 1.0)
    np.testing.assert_allclose(SequencePooling("mean")(embeddings, mask, weights).numpy(), weighted_mean, rtol=1e-5)
    np.testing.assert_allclose(SequencePooling("sum")(embeddings, mask, weights).numpy(), (embeddings * w).sum(1), rtol=1e-5)


def test_target_attention_matches_numpy_masked_softmax_and_empty_rows_are_zero():
    rng = np.random.default_rng(2)
    query = rng.normal(size=(3, 2)).astype(np.float32)
    keys = rng.normal(size=(3, 4, 2)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0], [0, 0, 0, 0], [0, 1, 0, 1]], bool)
    attention = TargetAttention(hidden_units=())
    out = attention(query, keys, mask).numpy()
    kernel, bias = (w.numpy() for w in attention.score.weights)
    q = np.broadcast_to(query[:, None, :], keys.shape)
    scores = (np.concatenate([q, keys, q - keys, q * keys], -1) @ kernel)[..., 0] + bias[0]
    expected = np.zeros_like(query)
    for row in range(3):
        if mask[row].any():
            s = np.exp(scores[row][mask[row]] - scores[row][mask[row]].max())
            expected[row] = (s / s.sum()) @ keys[row][mask[row]]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert not np.isnan(out).any() and np.all(out[1] == 0.0)
