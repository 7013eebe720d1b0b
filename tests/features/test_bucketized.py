"""Bucketized numbers: quantile boundaries, bucketing and bucket embeddings."""

import numpy as np

from tfmtl._compat import tf
from tfmtl.features import Bucketized, Schema


def test_preprocess_gives_the_bucket_index_of_the_transformed_value():
    spec = Bucketized("x", boundaries=(1.0, 2.0), log=True)
    buckets = spec.preprocess({"x": tf.constant([0.0, np.e - 1, 10.0])}, {})["x"].numpy()
    assert buckets.tolist() == [0, 1, 2]  # log1p: 0, 1, 2.4

def test_bucketized_learns_quantiles_of_the_transformed_values():
    values = np.arange(1.0, 1001.0)
    schema = Schema([Bucketized("x", num_buckets=4, log=True)]).adapt({"x": values})
    expected = np.quantile(np.log1p(values), [0.25, 0.5, 0.75])
    np.testing.assert_allclose(schema["x"].boundaries, expected)


def test_bucketized_embeds_the_discretized_bucket(raw_encoder):
    schema = Schema([Bucketized("age", boundaries=(10.0, 20.0), embedding_dim=1)])
    encoder = raw_encoder(schema)
    encoder({"age": np.array([0.0])})
    encoder.embeddings["age"].set_weights([np.array([[100.0], [200.0], [300.0]], np.float32)])
    out = encoder({"age": np.array([-5.0, 10.0, 19.9, 20.0, 1e9], np.float32)}).numpy()[:, 0]
    np.testing.assert_array_equal(out, [100.0, 200.0, 200.0, 300.0, 300.0])
