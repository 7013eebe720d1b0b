"""Multi-valued ids: a bag per example, mean- or sum-pooled, optionally weighted."""

import numpy as np
import pytest

from tfmtl._compat import tf
from tfmtl.features import MultiValued, Schema


def test_weighted_mean_of_a_bag_matches_numpy(raw_encoder):
    schema = Schema([MultiValued("tags", max_len=3, embedding_dim=1, vocabulary=("x", "y"), weighted=True)])
    encoder = raw_encoder(schema)
    encoder({"tags": np.array([["x", "", ""]]), "tags_weights": np.ones([1, 3], np.float32)})
    encoder.embeddings["tags"].set_weights([np.array([[7.0], [2.0], [4.0]], np.float32)])  # OOV, x, y
    weights = np.array([[1.0, 3.0, 9.0], [2.0, 0.0, 5.0]], np.float32)
    out = encoder({"tags": np.array([["x", "y", ""], ["y", "", ""]]), "tags_weights": weights}).numpy()[:, 0]
    np.testing.assert_allclose(out, [(1 * 2.0 + 3 * 4.0) / 4.0, 4.0], rtol=1e-6)  # padding's weight ignored


def test_weights_with_nan_are_refused_naming_the_input(raw_encoder):
    schema = Schema([MultiValued("tags", max_len=2, embedding_dim=1, vocabulary=("x",), weighted=True)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="'tags_weights' contains NaN"):
        raw_encoder(schema)({"tags": np.array([["x", ""]]), "tags_weights": np.array([[np.nan, 1.0]], np.float32)})


def test_only_mean_or_sum_pooling():
    with pytest.raises(ValueError, match="'t': multi-valued features pool by 'mean' or 'sum'"):
        MultiValued("t", pooling="max")
