import numpy as np
import pytest

from tfmtl._compat import tf
from tfmtl.features import Categorical, FeatureEncoder, IdType, Numeric, Schema


def _encoder(raw_encoder):
    schema = Schema([
        Categorical("item", embedding_dim=2, vocabulary=("a", "b"), num_oov_buckets=1),
        Categorical("shop", embedding_dim=1, vocabulary=(10, 20), id_type=IdType.INT64),
        Numeric("price", mean=3.0, variance=4.0),
    ])
    encoder = raw_encoder(schema)
    encoder({"item": np.array(["a"]), "shop": np.array([10]), "price": np.array([1.0], np.float32)})
    # Hand-set tables: row 0 is the OOV bucket, then the vocabulary in order.
    encoder.embeddings["item"].set_weights([np.array([[9.0, 9.0], [1.0, 2.0], [3.0, 4.0]], np.float32)])
    encoder.embeddings["shop"].set_weights([np.array([[-1.0], [0.5], [0.25]], np.float32)])
    return encoder


def test_output_matches_hand_computation_including_oov(raw_encoder):
    encoder = _encoder(raw_encoder)
    out = encoder({
        "item": np.array(["b", "unseen", "a"]),
        "shop": np.array([20, 10, 999]),
        "price": np.array([7.0, 3.0, -1.0], np.float32),
    }).numpy()
    expected = np.array([
        [3.0, 4.0, 0.25, (7.0 - 3.0) / 2.0],
        [9.0, 9.0, 0.5, 0.0],
        [1.0, 2.0, -1.0, (-1.0 - 3.0) / 2.0],
    ])
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert encoder.output_dim == 4


def test_nan_numeric_raises_naming_the_feature(raw_encoder):
    encoder = _encoder(raw_encoder)
    with pytest.raises(tf.errors.InvalidArgumentError, match="numeric feature 'price' contains NaN or Inf"):
        encoder({"item": np.array(["a"]), "shop": np.array([10]), "price": np.array([np.nan], np.float32)})


def test_unadapted_schema_is_refused_with_advice():
    with pytest.raises(ValueError, match=r"\['item'\].*schema.adapt"):
        FeatureEncoder(Schema([Categorical("item")]))


